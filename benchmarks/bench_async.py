"""Asynchronous against synchronous rollouts, the `make train` run and the calculator demo.

    python benchmarks/bench_async.py [--pairs 1] [--envs arithmetic,calculator] [--json out.json]

For each environment, runs `python -m trainers.grpo` with the defaults of `make train` as whole
processes, `--rollout sync` and `--rollout async --max-staleness 1` alternating (`--pairs`
pairs, pair i with `--seed i`, and with more than one pair the seeds' after-reports are also pooled
per task; the first mode alternates too), each with its default off-policy correction (`auto`:
none in sync mode, tis on the async run's stale rows), and reports:

- training steps/s of each run (steps after the first over the seconds between the first and
  the last logged step: the evaluations and the start-up are left out) and the async/sync ratio
  of the medians;
- each run's pass@1 before and after, and the paired comparison of the two after-reports
  (async - sync on the same 200 test tasks x 8 samples: bootstrap 95% interval, sign test);
- the idle-time split: in sync mode the trainer samples and verifies (`generation_s +
  verification_s`) while nothing updates, and updates (`update_s + sync_s`) while nothing
  samples; in async mode `trainer_wait_s` and `worker_wait_s` are the seconds each side waited
  for the other; each as a share of the training time.

Departures from `make train`, the same for both modes: `--max-minutes 0` (the 7-minute cap
would stop a slower run at fewer steps and confound the comparison), and on `calculator` a fixed
`--calculator-steps` (default 40: its default 1000 steps take hours; `make train`-like runs of it
are capped at 7 minutes). The warm starts are built first (cached), outside any timing. A
machine whose other jobs load the cores gives meaningless speed figures: the load average is
printed at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODES = {"sync": ["--rollout", "sync"], "async": ["--rollout", "async", "--max-staleness", "1"]}


def load() -> str:
    """The load averages over 1, 5 and 15 minutes."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run(env: str, mode: str, out: Path, extra: list[str], seed: int = 0) -> dict:
    """One training run as a whole process; its figures."""
    cmd = [sys.executable, "-m", "trainers.grpo", "--env", env, "--max-minutes", "0", "--output-dir", str(out),
           "--seed", str(seed), *MODES[mode], *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return figures(out, wall)


def figures(out: Path, wall: float) -> dict:
    """Steps/s, pass@1 and the idle split of a finished run in `out`."""
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    report = json.loads((out / "report.json").read_text())
    span = rows[-1]["elapsed_s"] - rows[0]["elapsed_s"]
    total = lambda *keys: sum(r.get(k, 0.0) for r in rows[1:] for k in keys)   # noqa: E731 - the same steps as span
    return {"steps": len(rows), "steps_per_s": (len(rows) - 1) / span, "train_s": span, "wall_s": wall,
            "pass1_before": report["before"]["metrics"]["pass@k"]["1"]["value"],
            "pass1_after": report["after"]["metrics"]["pass@k"]["1"]["value"],
            "generating_s": total("generation_s", "verification_s"), "updating_s": total("update_s", "sync_s"),
            "trainer_wait_s": total("trainer_wait_s"), "worker_wait_s": total("worker_wait_s"),
            "after": str(out / "eval_after" / "report.json")}


def warm_up(env: str) -> None:
    """Build the env's warm-started tiny model (cached) before anything is timed."""
    from models.loading import resolve_model

    resolve_model("tiny", env=env, log=lambda *a: print(*a, file=sys.stderr))


def pooled(paths: list[str]) -> dict:
    """The after-reports of several runs (one per seed, on the same test tasks) as one report:
    each task's samples and passes summed, so that the paired comparison of two pooled reports
    averages each task over the seeds before it resamples the tasks. One seed's run is one
    training trajectory; the pooled interval still resamples tasks only, not seeds."""
    from evals.comparison import check_comparable
    from evals.report import load_report

    reports = [load_report(p) for p in paths]
    merged = json.loads(json.dumps(reports[0]))
    for other in reports[1:]:
        check_comparable(merged, other)  # the same test tasks under every seed, or no pooling
        for task, counts in other["tasks"].items():
            merged["tasks"][task] = {"n": merged["tasks"][task]["n"] + counts["n"],
                                     "c": merged["tasks"][task]["c"] + counts["c"]}
    return merged


def bench_env(env: str, pairs: int, extra: list[str], work: Path) -> dict:
    """`pairs` sync/async pairs; pair i trains with `--seed i` (both modes), so that the pairs
    differ in their training trajectories (with one seed every pair would repeat the same
    learning figures: the schedule makes a run's metrics independent of timing)."""
    from evals.comparison import compare

    warm_up(env)
    runs: dict[str, list[dict]] = {"sync": [], "async": []}
    for i in range(pairs):
        order = ("sync", "async") if i % 2 == 0 else ("async", "sync")
        for mode in order:
            print(f"{env}: pair {i + 1}/{pairs} (seed {i}), {mode} (load {load()})", file=sys.stderr, flush=True)
            runs[mode].append(run(env, mode, work / f"{env}-{mode}-{i}", extra, seed=i))
            print(f"  {json.dumps({k: v for k, v in runs[mode][-1].items() if k != 'after'})}", file=sys.stderr)
    comparisons = [compare(s["after"], a["after"])["metrics"]["pass@k"]["1"]
                   for s, a in zip(runs["sync"], runs["async"])]
    if pairs > 1:
        comparisons.append(compare(pooled([r["after"] for r in runs["sync"]]),
                                   pooled([r["after"] for r in runs["async"]]))["metrics"]["pass@k"]["1"])
    rate = {m: statistics.median(r["steps_per_s"] for r in runs[m]) for m in runs}
    return {"runs": runs, "steps_per_s": rate, "ratio": rate["async"] / rate["sync"], "after_async_minus_sync": [
        {k: c[k] for k in ("before", "after", "difference", "ci", "wins", "losses", "ties", "p_value")}
        for c in comparisons]}


def table(env: str, result: dict) -> str:
    lines = [f"### {env}", "", "| run | steps | steps/s | train s | pass@1 before | pass@1 after | "
             "trainer idle | sampler idle |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for mode, runs in result["runs"].items():
        for i, r in enumerate(runs):
            # sync: the trainer idles while it samples, the sampler while it updates; async: the waits.
            idle = (r["generating_s"], r["updating_s"]) if mode == "sync" else (r["trainer_wait_s"], r["worker_wait_s"])
            lines.append(f"| {mode} {i + 1} | {r['steps']} | {r['steps_per_s']:.2f} | {r['train_s']:.0f} | "
                         f"{r['pass1_before']:.3f} | {r['pass1_after']:.3f} | {idle[0] / r['train_s']:.0%} | "
                         f"{idle[1] / r['train_s']:.0%} |")
    rate = result["steps_per_s"]
    lines += ["", f"steps/s, medians: sync {rate['sync']:.2f}, async {rate['async']:.2f}: "
              f"**ratio {result['ratio']:.2f}**", ""]
    pairs = len(result["runs"]["sync"])
    for i, c in enumerate(result["after_async_minus_sync"]):
        label = f"pair {i + 1} (seed {i})" if i < pairs else f"all {pairs} seeds pooled"
        lines.append(f"{label}: pass@1 after, async - sync = {c['difference']:+.3f}, 95% CI [{c['ci'][0]:+.3f}, "
                     f"{c['ci'][1]:+.3f}], {c['wins']}/{c['losses']}/{c['ties']} tasks, "
                     f"sign test p = {c['p_value']:.3g}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=1, help="sync/async pairs per environment; pair i uses seed i")
    parser.add_argument("--envs", default="arithmetic,calculator")
    parser.add_argument("--calculator-steps", type=int, default=40)
    parser.add_argument("--steps", type=int, default=0, help="steps of every run (0: the defaults above)")
    parser.add_argument("--work", default="", help="folder for the runs (default: a temporary one)")
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_async."))
    results = {"load_start": load(), "cpus": os.cpu_count(), "envs": {}}
    for env in args.envs.split(","):
        steps = args.steps or (args.calculator_steps if env == "calculator" else 0)
        results["envs"][env] = bench_env(env, args.pairs, ["--steps", str(steps)] if steps else [], work)
        print(table(env, results["envs"][env]), flush=True)
    results["load_end"] = load()
    print(f"\nload average (1, 5, 15 min): {results['load_start']} at the start, {results['load_end']} at the end; "
          f"{results['cpus']} CPUs; runs in {work}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
