"""The adaptive curriculum on `arithmetic` with the tiny model, against training at a fixed level.

    python benchmarks/bench_curriculum.py [--steps 1000] [--ladder operands] [--base JSON] [--runs adaptive,fixed]
                                          [--band 0.2,0.8] [--start 0] [--out runs/bench_curriculum] [--json PATH]

The claim: the adaptive curriculum keeps the batch pass rate in its band, and pass@1 on the
hardest level rises; and how the curriculum compares with the same number of steps at a fixed
level, as a paired interval.

1. The model. The tiny model's own warm start (`models.tiny`, level 0 only) answers none of
   the harder levels (pass@1 0.000 on `12+34-56`, as on every level above 0): no group has a
   reward to learn from, curriculum or not. So the bench continues that warm start, supervised
   as it is, on the train tasks of every level of `--ladder` together, until its sampled
   accuracy over them reaches `--warm-target` (cached under $VERIRL_CACHE, keyed by the
   settings). Every run starts from that model. `--base` gives arithmetic's options at level 0
   (the ladder climbs from there): `{}` is the default run's two two-digit operands,
   `{"digits": 1}` one-digit sums.
2. The runs, GRPO with the default options otherwise (`--max-minutes 0`, the same seed), each
   evaluated before and after at the hardest level (`--eval-difficulty max`, 200 test tasks x
   8 samples):
   - `adaptive`: `--curriculum adaptive` with `--band` and `--start`;
   - `fixed`: the environment at the hardest level (`difficulty=max`) for every step;
   - `fixed0`: at level 0 (with the default `--base`, the default run's tasks).
3. The figures: each run's pass@1 before and after at the hardest level (with the paired
   interval of the change), its difficulty over the steps, the share of steps whose batch pass
   rate lies in the band (and of the curriculum's window readings), and the paired comparison
   of `adaptive`'s after-report against each fixed one's (`evals.comparison.compare`, what
   `evals/pass_at_k.py --compare` prints). The machine's load average is recorded beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import envs  # noqa: E402
from envs.arithmetic import ArithmeticEnv  # noqa: E402
from envs.base import register_env  # noqa: E402
from envs.difficulty import at_level  # noqa: E402

LADDER: list[str] = ["operands"]
BASE: dict = {}  # arithmetic's options at level 0 (`--base`); {} is the default run's task


@register_env("bench_arithmetic_levels")
class ArithmeticLevels(ArithmeticEnv):
    """`arithmetic`'s tasks of every level of the bench's ladder together (the warm start's data)."""

    def load_tasks(self, split: str):
        base = envs.get_env("arithmetic", **BASE, ladder=LADDER)
        return [t for level in range(base.difficulty_levels) for t in at_level(base, level).tasks(split)]


def warm_start(target: float, max_steps: int, log) -> str:
    """The tiny model warm-started on level 0, then on every level of LADDER together (cached)."""
    from models.tiny import (
        WarmStartConfig,
        _digest,
        _save_atomically,
        cache_root,
        ensure_tiny_model,
        supervised_warm_start,
    )

    start = ensure_tiny_model(log=log)
    warm = WarmStartConfig(env="bench_arithmetic_levels", target_accuracy=target, max_steps=max_steps)
    path = cache_root() / f"tiny-llama-{_digest(start, LADDER, warm.__dict__, *([BASE] if BASE else []))}-levels"
    if not (path / "config.json").exists():
        log(f"warm start on the levels of {LADDER} (once; cached in {path})")
        model, tokenizer, stats = supervised_warm_start(start, warm, log=log)
        _save_atomically(path, lambda p: (model.save_pretrained(p), tokenizer.save_pretrained(p),
                                          (p / "warm_start.json").write_text(json.dumps(stats))))
    return str(path)


def level_accuracy(model: str, samples: int = 4, tasks: int = 100) -> list[float]:
    """pass@1 of `model` on the test split of each level (a quick look, not the runs' evaluation)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from evals.harness import evaluate
    from models.hf_sampler import HFSampler

    sampler = HFSampler(AutoModelForCausalLM.from_pretrained(model), AutoTokenizer.from_pretrained(model))
    base = envs.get_env("arithmetic", **BASE, ladder=LADDER)
    return [evaluate(sampler, at_level(base, level), n=samples, limit=tasks, max_new_tokens=8, seed=1)
            ["metrics"]["pass@k"]["1"]["value"] for level in range(base.difficulty_levels)]


def run(name: str, model: str, out: Path, args) -> dict:
    """One GRPO run (a subprocess, as a user runs it); its report, metrics and wall time."""
    env_options = {**BASE, "ladder": LADDER, **({"difficulty": "max"} if name == "fixed" else {})}
    cmd = [sys.executable, "-m", "trainers.grpo", "--model", model, "--env-options", json.dumps(env_options),
           "--steps", str(args.steps), "--max-minutes", "0", "--eval-difficulty", "max", "--seed", str(args.seed),
           "--output-dir", str(out / name), "--log-every", "100", "--torch-threads", "1"]
    if name == "adaptive":
        cmd += ["--curriculum", "adaptive", "--curriculum-band", json.dumps(args.band),
                "--curriculum-start", str(args.start)]
    t0 = time.time()
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"run {name} failed:\n{done.stderr[-3000:]}")
    metrics = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
    return {"report": json.loads((out / name / "report.json").read_text()), "metrics": metrics,
            "wall_s": round(time.time() - t0, 1)}


def summary(name: str, result: dict, band: list[float]) -> dict:
    from evals.comparison import compare

    low, high = band
    m, report = result["metrics"], result["report"]
    rates = [x["pass_rate"] for x in m]
    readings = [x["difficulty_window_pass_rate"] for x in m if "difficulty_window_pass_rate" in x]
    top = float(len(LADDER))  # `fixed` trains at the hardest level: the ladder's last step
    levels = [x.get("difficulty", top if name == "fixed" else 0.0) for x in m]
    return {"run": name, "before": report["before"]["metrics"]["pass@k"]["1"]["value"],
            "after": report["after"]["metrics"]["pass@k"]["1"]["value"],
            # the rise itself, paired over the same test tasks (what `--compare` prints at k = 1)
            "before_vs_after": compare(report["before"], report["after"])["metrics"]["pass@k"]["1"],
            "steps": len(m), "batch_pass_rate_in_band": sum(low <= r <= high for r in rates) / len(rates),
            "window_readings_in_band": sum(low <= r <= high for r in readings) / len(readings) if readings else None,
            "difficulty_mean": sum(levels) / len(levels), "difficulty_last": levels[-1],
            "difficulty_every_100": levels[::100], "wall_s": result["wall_s"]}


def main(argv: list[str] | None = None) -> int:
    from evals.comparison import compare
    from evals.report import format_comparison_table

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--ladder", default="operands", help="comma-separated ladder steps of arithmetic")
    parser.add_argument("--base", default="{}",
                        help="arithmetic's options at level 0, as JSON (e.g. '{\"digits\": 1}')")
    parser.add_argument("--runs", default="adaptive,fixed", help="among adaptive, fixed, fixed0")
    parser.add_argument("--band", default="0.2,0.8")
    parser.add_argument("--start", type=float, default=0.0)
    parser.add_argument("--warm-target", type=float, default=0.3)
    parser.add_argument("--warm-max-steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/bench_curriculum")
    parser.add_argument("--json", default="", help="also write the result to this file")
    args = parser.parse_args(argv)
    args.band = [float(x) for x in args.band.split(",")]
    LADDER[:] = args.ladder.split(",")
    BASE.update(json.loads(args.base))
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    # One thread, as the default run gives the tiny model (trainers.lifecycle): on the shared
    # 2-core machine a second thread mostly waits for the first.
    import torch
    torch.set_num_threads(1)

    model = warm_start(args.warm_target, args.warm_max_steps, log)
    out = Path(args.out)
    result = {"ladder": LADDER, "base": BASE, "band": args.band, "start": args.start, "steps": args.steps,
              "warm_start_pass@1_per_level": level_accuracy(model), "load_before": os.getloadavg(), "runs": {}}
    log(f"warm start pass@1 per level: {result['warm_start_pass@1_per_level']}")
    runs = {}
    for name in args.runs.split(","):
        log(f"run {name} ...")
        runs[name] = run(name, model, out, args)
        result["runs"][name] = summary(name, runs[name], args.band)
        log(json.dumps(result["runs"][name]))
    result["load_after"] = os.getloadavg()
    for name in [n for n in runs if n != "adaptive"] if "adaptive" in runs else []:
        comparison = compare(runs[name]["report"]["after"], runs["adaptive"]["report"]["after"])
        result[f"adaptive_vs_{name}"] = comparison["metrics"]["pass@k"]["1"]
        print(f"\nafter, at the hardest level: {name} (before) against adaptive (after)")
        print(format_comparison_table(comparison))
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
