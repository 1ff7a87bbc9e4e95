"""The training run's figure: `rewards.png`.

Per-step training figures are noisy (one batch each), so the raw curve is drawn faint with a
moving average over it. The pass rate is drawn only where it differs from the reward (with the
default environment, correctness is the whole reward and both curves coincide). The pass@1 of
the held-out evaluations (before, during and after training) is marked at its step with its
bootstrap confidence interval: the figure the run is judged by, not the training batches.
"""

from __future__ import annotations

import sys
from pathlib import Path


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing moving average (the first points average what exists so far).

    >>> smooth([0, 2, 4, 6], 2)
    [0.0, 1.0, 3.0, 5.0]
    """
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def eval_points(evaluations: dict[str, dict | None], last_step: int) -> list[tuple[str, int, float, float, float]]:
    """(tag, step, pass@1, ci low, ci high) of each evaluation: `before` at step 0, `stepN` at N,
    `after` at the last step."""
    points = []
    for tag, report in evaluations.items():
        entry = (report or {}).get("metrics", {}).get("pass@k", {}).get("1") or {}
        if entry.get("value") is None:
            continue
        step = 0 if tag == "before" else last_step if tag == "after" else int(tag.removeprefix("step"))
        low, high = entry.get("ci") or (entry["value"], entry["value"])
        points.append((tag, step, entry["value"], low, high))
    return points


def plot_rewards(history: list[dict], evaluations: dict[str, dict | None], path: Path, title: str) -> Path | None:
    """rewards.png: training reward per step (raw and smoothed), pass rate when it differs, and
    the evaluations' pass@1 with confidence intervals."""
    if not history:
        return None
    try:
        import matplotlib
    except ImportError:  # a declared dependency, but a bare GPU image may lack it: the run's results stand
        print(f"matplotlib is not installed: no {path.name}", file=sys.stderr, flush=True)
        return None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    window = min(len(history), max(5, len(history) // 25))   # 40 steps for the default 1000
    fig, ax = plt.subplots(figsize=(7, 4))
    rewards = [h["reward_mean"] for h in history]
    ax.plot(steps, rewards, color="C0", alpha=0.25, lw=0.8)
    ax.plot(steps, smooth(rewards, window), color="C0", label=f"batch mean reward ({window}-step average)")
    passes = [h["pass_rate"] for h in history]
    if any(abs(p - r) > 1e-9 for p, r in zip(passes, rewards)):
        ax.plot(steps, smooth(passes, window), color="C1", label=f"batch pass rate ({window}-step average)")
    points = eval_points(evaluations, steps[-1])
    if points:
        xs, ys = [p[1] for p in points], [p[2] for p in points]
        errors = [[y - p[3] for y, p in zip(ys, points)], [p[4] - y for y, p in zip(ys, points)]]
        ax.errorbar(xs, ys, yerr=errors, fmt="o", color="C3", capsize=4, label="held-out pass@1 (bootstrap CI)")
        for tag, x, y, _, _ in points:
            ax.annotate(f"{tag} {y:.3f}", (x, y), textcoords="offset points", xytext=(6, -12), fontsize=8)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("reward / pass rate")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
