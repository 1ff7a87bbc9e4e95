"""Peak memory of PPO against GRPO on the same model and batch: the value model is what GRPO saves.

    python benchmarks/bench_memory.py [--size small] [--steps 2] [--json PATH]

Each trainer runs in a fresh process, exactly as a user runs it:

    python -m trainers.{grpo,ppo} --model PATH --steps 2 --prompts-per-step 32 --group-size 8
        --max-new-tokens 8 --minibatch-size 64 --eval-samples 0 --generation-backend hf
        --max-minutes 0 --checkpoint-every 0 --output-dir TMP [--critic head|separate]

so the batch (256 completions of at most 8 tokens, forward/backward in chunks of 64 rows) and
the model are the same for every row; everything else is each trainer's defaults (GRPO: one
optimizer step per batch, no reference model; PPO: 2 epochs x 2 minibatches, kl_coef 0, so no
reference model either). Generation goes through transformers on the trainer's own module
(vLLM would add its engine's weights and KV cache to both sides alike).

The model is a random Llama of the tiny model's character vocabulary in one of `SIZES`
(weights do not matter for memory; `tiny` is the 0.53M-parameter model of the default run,
whose few MB disappear under the interpreter's ~0.5 GB of libraries, hence the bigger default).
Figures per run, from the child process itself:
- `peak_rss_mb`: the peak resident set size of the whole process (`getrusage` `ru_maxrss`);
- `baseline_mb`: the resident set size right before `train(cfg)` (interpreter, torch,
  transformers' Llama, matplotlib and the project imported), and `train_peak_mb` = peak -
  baseline, the memory training added;
- `state_mb`: the bytes of trainable parameters, their gradients and AdamW's two moments
  (policy, plus the critic's own parameters for PPO), 16 bytes per float32 parameter.
The ratios are PPO / GRPO. `ru_maxrss` is a high-water mark of pages actually touched, so it
also counts the allocator's caching; repeated runs here agreed within a few MB.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name -> (hidden size, layers, heads, MLP width)
SIZES = {"tiny": (128, 2, 4, 512), "small": (384, 6, 6, 1536), "medium": (768, 12, 12, 3072)}
RUNS = [("grpo", []), ("ppo", ["--critic", "head"]), ("ppo", ["--critic", "separate"])]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="small", choices=sorted(SIZES), help="model size [small]")
    p.add_argument("--steps", type=int, default=2, help="optimizer steps per run [2]")
    p.add_argument("--prompts-per-step", type=int, default=32)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--minibatch-size", type=int, default=64, help="rows per forward/backward, both trainers [64]")
    p.add_argument("--json", metavar="PATH", help="also write the figures here")
    p.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def build_model(size: str, path: Path) -> str:
    """A random Llama with the tiny model's tokenizer, saved where both trainers load it."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from models.tiny import build_tokenizer

    hidden, layers, heads, mlp = SIZES[size]
    tok = build_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=heads, intermediate_size=mlp,
                         max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                         tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def child(argv: list[str]) -> None:
    """Run one trainer in this process and print its memory figures as one JSON line."""
    algorithm, flags = argv[0], argv[1:]
    module = __import__(f"trainers.{algorithm}", fromlist=["train"])
    from evals.config_cli import parse_config

    config_cls = module.GRPOConfig if algorithm == "grpo" else module.PPOConfig
    cfg = parse_config(config_cls, flags, algorithm, "")
    # What every run imports anyway goes into the baseline, not into the training peak.
    for name in ("matplotlib.pyplot", "transformers.models.llama.modeling_llama", "envs", "evals.harness"):
        importlib.import_module(name)
    baseline = _rss_mb()
    report = module.train(cfg)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"baseline_mb": baseline, "peak_rss_mb": peak, "train_peak_mb": peak - baseline,
                      "state_mb": _state_mb(cfg, report), "steps": report["summary"]["steps"]}))


def _state_mb(cfg, report) -> float:
    """Trainable parameters x (weight + gradient + 2 Adam moments) x 4 bytes, policy and critic
    (a separate critic is the policy's trunk, without `lm_head`, plus a head)."""
    from safetensors import safe_open

    with safe_open(str(Path(report["summary"]["final_model"]) / "model.safetensors"), "pt") as f:
        shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}
    policy = sum(math.prod(shape) for shape in shapes.values())
    vocab, hidden = shapes["lm_head.weight"]
    critic = {"head": hidden + 1, "separate": policy - vocab * hidden + hidden + 1}
    return (policy + critic.get(getattr(cfg, "critic", None), 0)) * 16 / 2**20


def run_one(algorithm: str, extra: list[str], model: str, args, out: Path) -> dict:
    flags = ["--model", model, "--steps", str(args.steps), "--prompts-per-step", str(args.prompts_per_step),
             "--group-size", str(args.group_size), "--max-new-tokens", "8", "--minibatch-size",
             str(args.minibatch_size), "--eval-samples", "0", "--generation-backend", "hf", "--max-minutes", "0",
             "--checkpoint-every", "0", "--log-every", "1000", "--output-dir", str(out), *extra]
    proc = subprocess.run([sys.executable, __file__, "--child", algorithm, *flags], cwd=ROOT,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{algorithm} {' '.join(extra)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        model = build_model(args.size, Path(tmp) / "model")
        rows = []
        for i, (algorithm, extra) in enumerate(RUNS):
            name = algorithm + (f" ({extra[1]} critic)" if extra else "")
            rows.append({"run": name, **run_one(algorithm, extra, model, args, Path(tmp) / f"run{i}")})
            print(f"done: {name}", file=sys.stderr, flush=True)
    grpo = rows[0]
    print(f"model: random Llama `{args.size}` {SIZES[args.size]}, batch {args.prompts_per_step} x "
          f"{args.group_size} completions, chunks of {args.minibatch_size}, {args.steps} steps\n")
    print("| run | state MB | peak RSS MB | training peak MB (over baseline) | peak / GRPO | training peak / GRPO |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['run']} | {r['state_mb']:.0f} | {r['peak_rss_mb']:.0f} | {r['train_peak_mb']:.0f} | "
              f"{r['peak_rss_mb'] / grpo['peak_rss_mb']:.2f} | {r['train_peak_mb'] / grpo['train_peak_mb']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"size": args.size, "args": vars(args), "runs": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
