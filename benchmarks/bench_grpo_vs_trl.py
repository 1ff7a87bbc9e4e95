"""Our GRPO trainer against TRL's `GRPOTrainer`: same model, prompts, reward and settings, in one
run, alternating (ours, TRL, ours, TRL, ...), each side as a whole fresh process.

    python benchmarks/bench_grpo_vs_trl.py [--steps 100] [--reps 2] [--backends hf,vllm] [--threads default,1]
        [--model PATH] [--json PATH]

The work per step: 4 prompts x 8 completions (32) of at most 16 tokens, temperature 1.0, top_p 1,
beta 0 (no reference model), learning rate 1e-4, one optimizer step per generation batch, the
`grpo` loss (mean over each completion's tokens, then over completions), group-scaled
advantages, no evaluation, no checkpoint inside the run. The model is the project's tiny model,
warm-started (`models.tiny.ensure_tiny_model()`, built once and cached); both sides
load it from the same folder. Our side is exactly the command line a user types:

    python -m trainers.grpo --model PATH --prompts-per-step 4 --group-size 8 --max-new-tokens 16
        --steps 100 --learning-rate 1e-4 --beta 0 --eval-samples 0 --generation-backend hf
        --max-minutes 0 --checkpoint-every 0 --output-dir TMP

(`--checkpoint-every 0`: no checkpoint inside the run, as TRL's `save_strategy="no"`; ours still
saves its final checkpoint, model and reward plot, and that time counts against it.) TRL's side
is `benchmarks/_trl_grpo.py`, whose docstring lists every setting changed from TRL's defaults to
match ours (loss_type, constant learning rate, no bf16, no gradient checkpointing, ...).

Two figures per side:
- whole process: wall time from spawning the interpreter to its exit (imports, model load,
  training, and for ours the final save; TRL spends most of its overhead importing);
- training loop: from each side's own step timings, (end of the last step - end of the first)
  + the first step's own duration. Ours from `metrics.jsonl` (`elapsed_s` and, for step 1, its
  generation + verification + update + sync seconds); TRL's from a `TrainerCallback`'s
  `on_step_begin`/`on_step_end`.
The table gives the median over repetitions and the ratio ours / TRL of the medians, with the
range of the paired (same repetition) ratios. `--backends hf,vllm` adds a row with our trainer
generating through vLLM (the CPU build here; its engine start is in the whole-process time)
against the same TRL runs, which generate with transformers.

`--threads default,1` repeats everything with each thread setting, the same for both sides
(`OMP_NUM_THREADS`/`MKL_NUM_THREADS`; `default` leaves the environment as it is, so torch uses
one thread per core). It matters far more than either trainer here: the tiny model's matrices
are too small for two threads to help, and on a CPU shared with other jobs a thread that
waits at a parallel region's barrier for a descheduled sibling can stretch a 50 ms update
to seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"wall": 0.7, "loop": 0.8}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="local model folder (default: the warm-started tiny model)")
    p.add_argument("--steps", type=int, default=100, help="optimizer steps per run [100]")
    p.add_argument("--reps", type=int, default=2, help="repetitions of each side [2]")
    p.add_argument("--backends", default="hf,vllm", help="our generation backends, comma-separated [hf,vllm]")
    p.add_argument("--prompts-per-step", type=int, default=4)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", default="default,1",
                   help="comma-separated thread settings for both sides: default and/or a number [default,1]")
    p.add_argument("--json", metavar="PATH", help="also write every run's figures here")
    args = p.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.threads = [t.strip() for t in args.threads.split(",") if t.strip()]
    bad = [b for b in args.backends if b not in ("hf", "vllm")]
    bad += [t for t in args.threads if t != "default" and not (t.isdigit() and int(t) > 0)]
    if bad or not args.backends or not args.threads or args.reps < 1 or args.steps < 2:
        p.error(f"--backends takes hf and/or vllm, --threads default and/or positive numbers (bad: {bad or 'none'}); "
                "--reps >= 1; --steps >= 2")
    return args


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _run(cmd: list[str], what: str, threads: str) -> float:
    """Run `cmd` from the repository root; its wall time in seconds. Output is kept for errors only."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}
    if threads != "default":
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall


def _tail_mean(values: list[float], share: float = 0.2) -> float:
    tail = values[-max(1, int(len(values) * share)):]
    return sum(tail) / len(tail)


def run_ours(args: argparse.Namespace, model: str, backend: str, threads: str) -> dict:
    """One whole `python -m trainers.grpo` process; figures from its wall time and metrics.jsonl."""
    with tempfile.TemporaryDirectory(prefix="ours-grpo-") as out:
        cmd = [sys.executable, "-m", "trainers.grpo", "--model", model, "--prompts-per-step",
               str(args.prompts_per_step), "--group-size", str(args.group_size), "--max-new-tokens",
               str(args.max_new_tokens), "--steps", str(args.steps), "--learning-rate", str(args.learning_rate),
               "--beta", "0", "--eval-samples", "0", "--generation-backend", backend, "--max-minutes", "0",
               "--checkpoint-every", "0", "--seed", str(args.seed), "--output-dir", out]
        wall = _run(cmd, f"ours ({backend})", threads)
        metrics = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    first = metrics[0]
    step1 = sum(first.get(k, 0.0) for k in ("generation_s", "verification_s", "update_s", "sync_s"))
    steps = [step1] + [b["elapsed_s"] - a["elapsed_s"] for a, b in zip(metrics, metrics[1:])]
    return {"side": f"ours-{backend}", "threads": threads, "wall_s": wall, "loop_s": sum(steps),
            "steps": len(metrics), "step_s": [round(x, 4) for x in steps],
            "step1_s": step1, "median_step_s": statistics.median(steps),
            **{k: sum(m.get(k, 0.0) for m in metrics)
               for k in ("generation_s", "verification_s", "update_s", "sync_s")},
            "completion_len": statistics.mean(m["completion_len_mean"] for m in metrics),
            "final_reward": _tail_mean([m["reward_mean"] for m in metrics])}


def run_trl(args: argparse.Namespace, model: str, threads: str) -> dict:
    """One whole `benchmarks/_trl_grpo.py` process; figures from its wall time and its step callback."""
    with tempfile.TemporaryDirectory(prefix="trl-grpo-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(ROOT / "benchmarks" / "_trl_grpo.py"), "--model", model, "--steps", str(args.steps),
               "--prompts-per-step", str(args.prompts_per_step), "--group-size", str(args.group_size),
               "--max-new-tokens", str(args.max_new_tokens), "--learning-rate", str(args.learning_rate),
               "--seed", str(args.seed), "--out", str(out)]
        wall = _run(cmd, "TRL", threads)
        res = json.loads(out.read_text())
    begin, end = res["step_begin"], res["step_end"]
    steps = [end[0] - begin[0]] + [b - a for a, b in zip(end, end[1:])]
    expected = res["expected_prompts"]
    n = args.prompts_per_step
    same = res["step_prompts"] == [expected[i:i + n] for i in range(0, len(expected), n)]
    return {"side": "trl", "threads": threads, "wall_s": wall, "loop_s": sum(steps), "steps": len(end),
            "step_s": [round(x, 4) for x in steps], "step1_s": steps[0],
            "median_step_s": statistics.median(steps), "import_s": res["import_s"], "setup_s": res["setup_s"],
            "train_runtime_s": res["train_runtime"], "completion_len": statistics.mean(res["completion_len"]),
            "final_reward": _tail_mean(res["reward"]), "same_prompts_as_ours": same}


def summarize(runs: list[dict], backends: list[str], threads: list[str]) -> list[dict]:
    """One row per (our backend, thread setting): medians, ratios of the medians, paired-ratio range."""
    rows, ok = [], [r for r in runs if "error" not in r]
    for setting in threads:
        trl = [r for r in ok if r["side"] == "trl" and r["threads"] == setting]
        for backend in backends:
            ours = [r for r in ok if r["side"] == f"ours-{backend}" and r["threads"] == setting]
            if not ours or not trl:
                continue
            row = {"ours": f"ours ({backend})", "threads": setting, "reps": f"{len(ours)}/{len(trl)}"}
            by_rep = {r["rep"]: r for r in trl}
            for key in ("wall", "loop"):
                o, t = (statistics.median(r[f"{key}_s"] for r in side) for side in (ours, trl))
                paired = [a[f"{key}_s"] / by_rep[a["rep"]][f"{key}_s"] for a in ours if a["rep"] in by_rep] or [o / t]
                row.update({f"ours_{key}_s": o, f"trl_{key}_s": t, f"{key}_ratio": o / t,
                            f"{key}_ratio_range": [min(paired), max(paired)], f"{key}_target": TARGETS[key],
                            f"{key}_met": o / t <= TARGETS[key]})
            for key in ("step1_s", "median_step_s", "completion_len", "final_reward"):
                row[f"ours_{key}"] = statistics.median(r[key] for r in ours)
                row[f"trl_{key}"] = statistics.median(r[key] for r in trl)
            rows.append(row)
    return rows


def table(rows: list[dict], runs: list[dict]) -> str:
    lines = ["| ours | threads | runs ours/TRL | whole process: ours / TRL (s) | ratio (paired range) "
             "| training loop: ours / TRL (s) | ratio (paired range) | step 1: ours / TRL (s) "
             "| median step: ours / TRL (s) | completion tokens: ours / TRL | reward, last 20%: ours / TRL |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        cells = [r["ours"], r["threads"], r["reps"]]
        for key in ("wall", "loop"):
            lo, hi = r[f"{key}_ratio_range"]
            mark = "meets" if r[f"{key}_met"] else "misses"
            cells += [f"{r[f'ours_{key}_s']:.1f} / {r[f'trl_{key}_s']:.1f}",
                      f"**{r[f'{key}_ratio']:.2f}** ({lo:.2f}-{hi:.2f}; {mark} <= {r[f'{key}_target']})"]
        cells += [f"{r['ours_step1_s']:.2f} / {r['trl_step1_s']:.2f}",
                  f"{r['ours_median_step_s']:.3f} / {r['trl_median_step_s']:.3f}",
                  f"{r['ours_completion_len']:.1f} / {r['trl_completion_len']:.1f}",
                  f"{r['ours_final_reward']:.2f} / {r['trl_final_reward']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    trl = [r for r in runs if r["side"] == "trl" and "error" not in r]
    failed = [f"{r['side']} (threads {r['threads']}, rep {r['rep'] + 1})" for r in runs if "error" in r]
    lines.append("")
    if failed:
        lines.append(f"Failed and left out: {', '.join(failed)} (errors in the JSON).")
    if not trl:
        return "\n".join(lines)
    lines.append(f"TRL: imports {statistics.median(r['import_s'] for r in trl):.1f} s, trainer set-up "
                 f"{statistics.median(r['setup_s'] for r in trl):.1f} s (medians over all its runs); same prompts "
                 f"as ours at every step: {all(r['same_prompts_as_ours'] for r in trl)}.")
    return "\n".join(lines)


def run_one(args: argparse.Namespace, model: str, side: str, threads: str) -> dict:
    """One run; a failed one (the checkout may be mid-edit, the machine short of memory) is
    retried once, then recorded with its error and left out of the table."""
    for attempt in (1, 2):
        try:
            if side == "trl":
                return run_trl(args, model, threads)
            return run_ours(args, model, side.split("-", 1)[1], threads)
        except (RuntimeError, OSError, ValueError, KeyError) as exc:
            _log(f"  attempt {attempt} failed: {str(exc)[-600:]}")
            error = str(exc)[-2000:]
            time.sleep(30 if attempt == 1 else 0)
    return {"side": side, "threads": threads, "error": error}


def run_all(args: argparse.Namespace, model: str) -> list[dict]:
    """Every run, alternating ours and TRL within each repetition and thread setting."""
    runs = []
    order = [f"ours-{args.backends[0]}", "trl", *[f"ours-{b}" for b in args.backends[1:]]]
    for rep in range(args.reps):
        for threads in args.threads:
            for side in order:
                _log(f"rep {rep + 1}/{args.reps}, threads {threads}: {side} ({args.steps} steps) ...")
                result = run_one(args, model, side, threads) | {"rep": rep}
                if "error" not in result:
                    _log(f"  whole {result['wall_s']:.1f} s, loop {result['loop_s']:.1f} s, "
                         f"median step {result['median_step_s']:.3f} s")
                runs.append(result)
    return runs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model = args.model
    if model is None:
        sys.path.insert(0, str(ROOT))
        from models.tiny import ensure_tiny_model

        model = ensure_tiny_model(log=_log)
    runs = run_all(args, model)
    rows = summarize(runs, args.backends, args.threads)
    print(f"GRPO, {args.prompts_per_step} prompts x {args.group_size} completions of <= {args.max_new_tokens} "
          f"tokens per step, {args.steps} steps, {args.reps} repetition(s) of each side, alternating; "
          f"{platform.machine()}, {os.cpu_count()} CPUs; model {model}\n")
    print(table(rows, runs))
    if args.json:
        config = {k: v for k, v in vars(args).items() if k != "json"} | {"model": model}
        Path(args.json).write_text(json.dumps({"config": config, "rows": rows, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
