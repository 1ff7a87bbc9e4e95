"""Data-parallel GRPO on CPU: 1 process against 2 (or more), the same global batch, in one run,
alternating (1, 2, 1, 2, ...), each run a whole `torchrun` launch.

    python benchmarks/bench_distributed.py [--nprocs 1,2] [--steps 30] [--warmup 3] [--reps 3]
        [--prompts-per-step 32] [--group-size 8] [--max-new-tokens 8] [--model PATH]
        [--trainer-args "--parallelism fsdp"] [--json PATH]

Each run is exactly the command a user types (gloo on CPU, `--standalone`: a free local port):

    python -m torch.distributed.run --standalone --nproc_per_node N -m trainers.grpo --model PATH
        --steps 30 --prompts-per-step 32 --group-size 8 --max-new-tokens 8 --eval-samples 0
        --generation-backend hf --checkpoint-every 0 --max-minutes 0 --torch-threads 1
        --learning-rate 1e-4 --output-dir TMP

`prompts_per_step` is the global count: with N processes each rank draws P / N prompts, so a
step does the same work whatever N. The model is the project's tiny model, warm-started (built
once and cached), and every process uses one torch thread (`--torch-threads 1`; torchrun's own
default for N > 1), so N processes use N cores.

Figures per run, from rank 0's `metrics.jsonl`, after the first `--warmup` steps:
- steps/s: measured steps / (elapsed_s of the last step - elapsed_s of the last warm-up step);
- generation, verification, update and all-reduce seconds per step (`generation_s`,
  `verification_s`, `update_s`, `comm_s`:
  the step's time in collectives, gradient all-reduce and metric reductions; a trainer that
  does not log `comm_s`, one process, counts 0);
- all-reduce share: sum of `comm_s` / sum of the step times;
- whole process: wall time of the launch (imports, model load, final save included).
The table gives the median over repetitions per N and the ratio N-process / 1-process of the
median steps/s, with the range of the ratios paired by repetition. A run whose lines lack
`world_size`, or carry another, did not train data-parallel: it is reported as failed, with
the launcher's last lines, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nprocs", default="1,2", help="process counts, comma-separated; the first is the base [1,2]")
    p.add_argument("--steps", type=int, default=30, help="optimizer steps per run [30]")
    p.add_argument("--warmup", type=int, default=3, help="first steps left out of the figures [3]")
    p.add_argument("--reps", type=int, default=3, help="repetitions of each process count [3]")
    p.add_argument("--prompts-per-step", type=int, default=32, help="global prompts per step [32]")
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=8)
    p.add_argument("--model", help="local model folder (default: the warm-started tiny model)")
    p.add_argument("--trainer-args", default="", help="more trainer flags, e.g. '--parallelism fsdp'")
    p.add_argument("--timeout", type=float, default=600, help="seconds one launch may take [600]")
    p.add_argument("--json", metavar="PATH", help="also write every run's figures here")
    args = p.parse_args(argv)
    try:
        args.nprocs = [int(n) for n in args.nprocs.split(",") if n.strip()]
    except ValueError:
        p.error(f"--nprocs: comma-separated positive integers, got {args.nprocs!r}")
    if not args.nprocs or min(args.nprocs) < 1:
        p.error(f"--nprocs: comma-separated positive integers, got {args.nprocs}")
    bad = [n for n in args.nprocs if args.prompts_per_step % n]
    if bad:
        p.error(f"--prompts-per-step {args.prompts_per_step} must divide by every process count; not by {bad}")
    if args.warmup < 1 or args.steps < args.warmup + 2 or args.reps < 1:
        p.error("need --warmup >= 1, --steps >= warmup + 2 and --reps >= 1")
    return args


def launch_command(args: argparse.Namespace, n: int, model: str, out: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n),
            "-m", "trainers.grpo", "--model", model, "--steps", str(args.steps),
            "--prompts-per-step", str(args.prompts_per_step), "--group-size", str(args.group_size),
            "--max-new-tokens", str(args.max_new_tokens), "--eval-samples", "0", "--generation-backend", "hf",
            "--checkpoint-every", "0", "--max-minutes", "0", "--torch-threads", "1", "--learning-rate", "1e-4",
            "--output-dir", out, *shlex.split(args.trainer_args)]


def check_world_size(rows: list[dict], n: int) -> str | None:
    """Why `rows` (rank 0's metrics) are not an n-process run, or None when they are. One
    process may omit `world_size`; more must log it on every line."""
    if not rows:
        return "no step was logged"
    sizes = {row.get("world_size", 1 if n == 1 else None) for row in rows}
    if sizes != {n}:
        shown = ", ".join("missing" if s is None else str(s) for s in sorted(sizes, key=str))
        return (f"metrics.jsonl has world_size {shown}, not {n}: the trainer did not train on {n} "
                "processes (is distributed training on this branch?)")
    steps = [row["step"] for row in rows]
    if steps != list(range(1, len(rows) + 1)):
        return f"steps {steps[:8]}... are not 1, 2, ...: more than one process wrote metrics.jsonl"
    return None


def run_figures(rows: list[dict], warmup: int) -> dict:
    """Steps/s and the per-step split after `warmup` steps (rows: rank 0's metrics, steps 1..S)."""
    measured = rows[warmup:]
    span = rows[-1]["elapsed_s"] - rows[warmup - 1]["elapsed_s"]
    comm = sum(row.get("comm_s", 0.0) for row in measured)
    per_step = lambda key: sum(row.get(key, 0.0) for row in measured) / len(measured)  # noqa: E731
    return {"steps_measured": len(measured), "steps_per_s": len(measured) / span, "step_s": span / len(measured),
            "generation_s": per_step("generation_s"), "verification_s": per_step("verification_s"),
            "update_s": per_step("update_s"),
            "comm_s": comm / len(measured), "comm_share": comm / span,
            "comm_logged": any("comm_s" in row for row in measured)}


def run_once(args: argparse.Namespace, n: int, model: str) -> dict:
    """One launch of n processes; its figures, or {"error": ...}."""
    with tempfile.TemporaryDirectory(prefix=f"bench_dist_{n}_") as out:
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(launch_command(args, n, model, out), cwd=ROOT, capture_output=True, text=True,
                                  timeout=args.timeout)
        except subprocess.TimeoutExpired:
            return {"nprocs": n, "error": f"timed out after {args.timeout:.0f} s"}
        wall = time.perf_counter() - t0
        path = Path(out) / "metrics.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    if proc.returncode != 0:
        tail = "\n    ".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        return {"nprocs": n, "error": f"exit {proc.returncode}; the launcher's last lines:\n    {tail}"}
    problem = check_world_size(rows, n)
    if problem:
        return {"nprocs": n, "error": problem}
    return {"nprocs": n, "wall_s": wall, **run_figures(rows, args.warmup)}


def summarise(runs: list[dict], nprocs: list[int]) -> list[dict]:
    """Per process count: medians over repetitions, and the ratio of steps/s to the first count."""
    ok = {n: [r for r in runs if r["nprocs"] == n and "error" not in r] for n in nprocs}
    base = nprocs[0]
    rows = []
    for n in nprocs:
        if not ok[n]:
            errors = [r["error"] for r in runs if r["nprocs"] == n]
            rows.append({"nprocs": n, "error": errors[0] if errors else "not run"})
            continue
        row = {"nprocs": n, "reps": len(ok[n])}
        for key in ("steps_per_s", "step_s", "generation_s", "verification_s", "update_s", "comm_s", "comm_share",
                    "wall_s"):
            row[key] = statistics.median(r[key] for r in ok[n])
        row["comm_logged"] = any(r["comm_logged"] for r in ok[n])
        if ok[base]:
            row["ratio"] = row["steps_per_s"] / statistics.median(r["steps_per_s"] for r in ok[base])
            # Pair by repetition: the two counts alternate, so a pair ran side by side.
            base_by_rep = {r["rep"]: r["steps_per_s"] for r in ok[base]}
            paired = [r["steps_per_s"] / base_by_rep[r["rep"]] for r in ok[n] if r["rep"] in base_by_rep]
            row["ratio_range"] = [min(paired), max(paired)] if paired else None
        rows.append(row)
    return rows


def markdown(rows: list[dict], base: int) -> str:
    ms = lambda s: f"{1000 * s:.1f} ms"  # noqa: E731
    lines = [f"| processes | steps/s | ratio vs {base} (range) | step | generation / step | verification / step "
             "| update / step | all-reduce / step | all-reduce share | whole process |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['nprocs']} | failed: {row['error'].splitlines()[0]} |" + " |" * 8)
            continue
        ratio = "n/a" if "ratio" not in row else f"**{row['ratio']:.2f}**"
        if row.get("ratio_range"):
            ratio += f" ({row['ratio_range'][0]:.2f}-{row['ratio_range'][1]:.2f})"
        comm = ("0 (not logged)",) * 2
        if row["comm_logged"]:
            comm = (ms(row["comm_s"]), f"{100 * row['comm_share']:.1f} %")
        lines.append(f"| {row['nprocs']} | {row['steps_per_s']:.2f} | {ratio} | {ms(row['step_s'])} | "
                     f"{ms(row['generation_s'])} | {ms(row['verification_s'])} | {ms(row['update_s'])} | "
                     f"{comm[0]} | {comm[1]} | "
                     f"{row['wall_s']:.1f} s |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.model:
        model = args.model
    else:
        sys.path.insert(0, str(ROOT))
        from models.tiny import ensure_tiny_model

        model = ensure_tiny_model(warm_start=True)
    runs = []
    for rep in range(args.reps):
        for n in args.nprocs:
            result = run_once(args, n, model)
            runs.append({"rep": rep, **result})
            shown = result.get("error") or f"{result['steps_per_s']:.2f} steps/s, all-reduce " \
                                            f"{100 * result['comm_share']:.1f} % of a step"
            print(f"rep {rep + 1}/{args.reps}, {n} process{'es' * (n > 1)}: {shown}", file=sys.stderr, flush=True)
    rows = summarise(runs, args.nprocs)
    print(f"GRPO, {args.prompts_per_step} prompts (global) x {args.group_size}, <= {args.max_new_tokens} tokens, "
          f"{args.steps} steps ({args.warmup} warm-up), {args.reps} repetitions, model {model}\n")
    print(markdown(rows, args.nprocs[0]))
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k != "json"}
        Path(args.json).write_text(json.dumps({"settings": {**settings, "model": model}, "summary": rows,
                                               "runs": runs}, indent=1))
    failed = [r for r in rows if "error" in r]
    for row in failed:
        print(f"bench_distributed: {row['nprocs']} processes failed: {row['error']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
