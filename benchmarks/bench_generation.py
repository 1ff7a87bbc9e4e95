"""Sampling throughput: the vLLM backend (the CPU build here) against transformers `generate`,
on the same model, prompts and sampling parameters, in one run.

    python benchmarks/bench_generation.py [--model PATH] [--prompts 32] [--n 8] [--max-new-tokens 16]

Both backends go through `models.backends.make_sampler`, the path the eval harness and
the trainers use. Each runs in its own fresh interpreter (vLLM's CPU backend pins torch to
fewer threads for the whole process, which would slow a transformers run sharing it), does one
untimed warm-up call, then `--repeats` timed calls of `--prompts` prompts x `--n` samples; the
median and the best call are reported (the best is the steadier figure on a shared machine,
where other work inflates some calls). Start-up (model load, engine start) is timed separately.

By default the model is the project's tiny model *untrained* (`warm_start=False`): it rarely
emits EOS, so almost every sample runs to `--max-new-tokens` and both backends do the same
work; tokens/s is reported beside samples/s for models that stop early. Prompts are the
`arithmetic` test split's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("hf", "vllm")


def measure(args: argparse.Namespace) -> dict:
    """Time one backend in this process; returns its figures."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import envs
    from models.backends import make_sampler

    env = envs.get_env("arithmetic")
    prompts = [env.render(t) for t in env.tasks("test")[: args.prompts]]
    start = time.perf_counter()
    generator = make_sampler(args.model, args.backend, dtype="float32", seed=0)
    startup = time.perf_counter() - start
    kw = dict(temperature=args.temperature, top_p=1.0, max_new_tokens=args.max_new_tokens)
    generator.generate(prompts, args.n, seed=0, **kw)   # warm-up: allocations, lazy kernels
    times, tokens = [], []
    for r in range(args.repeats):
        start = time.perf_counter()
        out = generator.generate(prompts, args.n, seed=r + 1, **kw)
        times.append(time.perf_counter() - start)
        tokens.append(sum(len(s.token_ids) for group in out for s in group))
    generator.close()
    samples = len(prompts) * args.n
    seconds = statistics.median(times)
    import torch

    return {"backend": args.backend, "startup_s": round(startup, 2), "seconds": [round(t, 4) for t in times],
            "samples": samples, "samples_per_s": round(samples / seconds, 1),
            "best_samples_per_s": round(samples / min(times), 1),
            "tokens_per_s": round(statistics.median(tokens) / seconds, 1),
            "mean_tokens_per_sample": round(statistics.mean(tokens) / samples, 2),
            "torch_threads_after": torch.get_num_threads()}


def run_isolated(args: argparse.Namespace, backend: str) -> dict:
    """`measure` for one backend in a fresh interpreter (JSON on the last stdout line)."""
    cmd = [sys.executable, __file__, "--only", backend, "--model", args.model, "--prompts", str(args.prompts),
           "--n", str(args.n), "--max-new-tokens", str(args.max_new_tokens), "--repeats", str(args.repeats),
           "--temperature", str(args.temperature)]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
           "VLLM_LOGGING_STREAM": "ext://sys.stderr"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode != 0:
        return {"backend": backend, "error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(results: list[dict], args: argparse.Namespace) -> str:
    rows = ["| backend | start-up (s) | samples/s (median) | samples/s (best) | tokens/s (median) | tokens/sample |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        if "error" in r:
            rows.append(f"| {r['backend']} | error: {r['error']} | | | | |")
            continue
        rows.append(f"| {r['backend']} | {r['startup_s']} | {r['samples_per_s']} | {r['best_samples_per_s']} | "
                    f"{r['tokens_per_s']} | {r['mean_tokens_per_sample']} |")
    ok = {r["backend"]: r for r in results if "error" not in r}
    if len(ok) == 2:
        rows.append(f"\nvllm / hf samples/s: {ok['vllm']['samples_per_s'] / ok['hf']['samples_per_s']:.2f}x")
    setting = (f"{args.prompts} prompts x {args.n} samples, max {args.max_new_tokens} new tokens, "
               f"temperature {args.temperature}, {args.repeats} timed calls; {os.cpu_count()} CPU cores, "
               f"{platform.processor() or platform.machine()}, load average {os.getloadavg()[0]:.1f} at the end")
    return "\n".join(rows) + "\n" + setting


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="local model folder (default: the untrained tiny model)")
    parser.add_argument("--warm-start", action="store_true", help="use the warm-started tiny model instead")
    parser.add_argument("--prompts", type=int, default=32, help="arithmetic test prompts per call")
    parser.add_argument("--n", type=int, default=8, help="samples per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per backend (median and best reported)")
    parser.add_argument("--backends", default="hf,vllm", help="comma-separated, of: " + ", ".join(BACKENDS))
    parser.add_argument("--output", help="also write the figures as JSON here")
    parser.add_argument("--only", choices=BACKENDS, help=argparse.SUPPRESS)   # internal: one backend, JSON out
    args = parser.parse_args(argv)
    if args.only:
        args.backend = args.only
        print(json.dumps(measure(args)))
        return 0
    if args.model is None:
        sys.path.insert(0, str(ROOT))
        from models.tiny import ensure_tiny_model

        args.model = ensure_tiny_model(warm_start=args.warm_start, log=lambda m: print(m, file=sys.stderr))
    results = [run_isolated(args, b) for b in args.backends.split(",")]
    print(table(results, args))
    if args.output:
        Path(args.output).write_text(json.dumps({"args": vars(args), "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":   # vLLM starts engine processes that re-import this file
    sys.exit(main())
