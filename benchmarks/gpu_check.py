"""The Python side of `benchmarks/gpu_check.sh` (read its header first): build the model, train
with it in this process, pick the CUDA tests, and turn what the parts left into the figures.

    python3 benchmarks/gpu_check.py build MODEL_DIR [--smoke]
    python3 benchmarks/gpu_check.py train MODEL_DIR RUN_DIR [--smoke] [--max-minutes M]
    python3 benchmarks/gpu_check.py report WORK_DIR RESULTS_DIR [--smoke]
    python3 -m pytest -p benchmarks.gpu_check ...   (keeps only the tests that need CUDA)

The model has Qwen2.5-0.5B's shape (hidden 896, 24 layers, 14 query and 2 key/value heads,
intermediate 4864, vocabulary 151936, tied embeddings, rope theta 1e6), random weights, built
from a config: nothing comes from the hub. Its tokenizer is the project's character-level one
(`models.tiny.build_tokenizer`): 22 tokens, so the model samples mostly ids that decode to
nothing and rarely the EOS; completions run to `max_new_tokens`, which is what a throughput
figure wants. Every reward is then 0, which changes no work: the update still runs forward and
backward over every token. The full vocabulary stays, so the logits, the embedding and their
memory are a real 0.5B model's (494.0M parameters, as Qwen2.5-0.5B). `--smoke` scales the
layers down (hidden 64, 2 layers) and the run to 2 float32 steps of 4 x 2 samples, for a CPU.

The figures, from the trainer's own `metrics.jsonl` after the warm-up steps:
- generation tokens/s: completion tokens sampled / `generation_s` (the transformers sampler,
  `models.hf_sampler.sample_loop`, on the trainer's own module; prompts are 6-8 tokens);
- update tokens/s: completion tokens trained on / `update_s` (forward, backward and optimizer
  step on the whole batch; the shared prompts are run once per group besides);
- peak GPU memory: `torch.cuda.max_memory_allocated()` (and reserved) over the whole run,
  generation and update together. On CPU, the process's peak RSS instead.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

QWEN25_05B = dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                  intermediate_size=4864, vocab_size=151936, tie_word_embeddings=True, rope_theta=1e6,
                  max_position_embeddings=32768, rms_norm_eps=1e-6)
SMOKE_MODEL = {**QWEN25_05B, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
               "intermediate_size": 128}
# 32 prompts x 8 samples of up to 64 tokens: a usual GRPO batch for a 0.5B model on one GPU.
# async_steps: the steps of the `--rollout async` run (a rollout worker beside the trainer, staleness 1).
GPU_RUN = dict(steps=20, prompts_per_step=32, group_size=8, max_new_tokens=64, bf16=True, warmup=2, async_steps=12)
SMOKE_RUN = dict(steps=2, prompts_per_step=4, group_size=2, max_new_tokens=8, bf16=False, warmup=1, async_steps=2)
PARTS = ("build", "train", "train_async", "cuda_tests")


def build(model_dir: str, smoke: bool) -> dict:
    """Save the random model and the offline tokenizer into `model_dir`; its figures."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from models.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    # The tokenizer's ids: <pad> 0, <s> 1, </s> 2; generation stops at this EOS.
    config = Qwen2Config(**(SMOKE_MODEL if smoke else QWEN25_05B), pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    # Initialised on the GPU where there is one: 0.5B normal draws take seconds on a CPU.
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Qwen2ForCausalLM(config)
    if not smoke:
        model = model.to(torch.bfloat16)
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return {"parameters": sum(p.numel() for p in model.parameters()), "shape": "smoke" if smoke else "Qwen2.5-0.5B",
            "dtype": str(model.dtype).removeprefix("torch.")}


def train(model_dir: str, run_dir: str, smoke: bool, max_minutes: float, rollout: str = "sync") -> dict:
    """GRPO on the model through `trainers.grpo.train`, in this process so the peak memory is
    the trainer's own; writes `RUN_DIR/driver.json`. `rollout="async"`: a rollout worker
    process samples beside the trainer on the same GPU, one step stale (its memory is its own)."""
    import torch

    from trainers import grpo

    shape = SMOKE_RUN if smoke else GPU_RUN
    cfg = grpo.GRPOConfig(model=model_dir, warm_start=False, env="arithmetic", generation_backend="hf",
                          bf16=shape["bf16"], steps=shape["async_steps" if rollout == "async" else "steps"],
                          prompts_per_step=shape["prompts_per_step"],
                          group_size=shape["group_size"], max_new_tokens=shape["max_new_tokens"],
                          learning_rate=1e-6, eval_samples=0, checkpoint_every=0, max_minutes=max_minutes,
                          log_every=5, output_dir=run_dir, rollout=rollout, max_staleness=1)
    cfg.validate()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    grpo.train(cfg)  # without matplotlib (the GPU image) it skips rewards.png with a line
    figures = {"wall_s": round(time.perf_counter() - t0, 1), **memory_figures(cuda)}
    Path(run_dir, "driver.json").write_text(json.dumps(figures, indent=1))
    return figures


def memory_figures(cuda: bool) -> dict:
    import torch

    if not cuda:
        import resource

        return {"device": "cpu", "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    props = torch.cuda.get_device_properties(0)
    return {"device": props.name, "device_memory_gib": props.total_memory / 2**30,
            "peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30,
            "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30,
            "torch": torch.__version__, "cuda": torch.version.cuda}


def train_figures(rows: list[dict], group_size: int, warmup: int) -> dict:
    """Throughput over the steps after `warmup` (all steps when there are no more)."""
    skip = warmup if len(rows) > warmup else 0
    measured = rows[skip:]
    tokens = [r["completion_len_mean"] * r["groups"] * group_size for r in measured]
    generation_s = sum(r["generation_s"] for r in measured)
    update_s = sum(r["update_s"] for r in measured)
    # A step's wall time is the gap between its elapsed_s and the previous step's (the first
    # step's elapsed_s also holds the set-up, so it has none).
    gaps = [rows[i]["elapsed_s"] - rows[i - 1]["elapsed_s"] for i in range(max(skip, 1), len(rows))]
    samples = sum(r["groups"] * group_size for r in measured)
    # Training tokens/s: the tokens of the steps with a gap over those gaps (what sync vs async compares).
    gapped = tokens[len(tokens) - len(gaps):] if gaps else []
    return {"steps_done": len(rows), "steps_measured": len(measured), "warmup_skipped": skip,
            "completion_tokens": round(sum(tokens)), "completion_len_mean": sum(tokens) / samples,
            "generation_s": generation_s, "update_s": update_s,
            "generation_tokens_per_s": sum(tokens) / generation_s if generation_s else None,
            "update_tokens_per_s": sum(tokens) / update_s if update_s else None,
            "step_s_median": statistics.median(gaps) if gaps else None,
            "tokens_per_s": sum(gapped) / sum(gaps) if gaps and sum(gaps) else None}


def test_figures(xml_path: Path) -> dict:
    """Counts and failures of the pytest run (its JUnit XML)."""
    root = ET.parse(xml_path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    problems = []
    for case in root.iter("testcase"):
        for bad in (*case.findall("failure"), *case.findall("error")):
            message = (bad.get("message") or bad.text or "").strip().splitlines()
            problems.append(f"{case.get('classname')}::{case.get('name')}: {message[0] if message else bad.tag}")
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return {**counts, "problems": problems}


def read_status(work: Path) -> dict:
    """Each part's status and seconds, as gpu_check.sh wrote them (`name<TAB>status<TAB>seconds`)."""
    status = {name: {"status": "not run", "seconds": None} for name in PARTS}
    path = work / "status.tsv"
    for line in path.read_text().splitlines() if path.exists() else []:
        name, text, seconds = line.split("\t")
        status[name] = {"status": text, "seconds": int(seconds)}
    return status


def collect(work: Path, smoke: bool) -> dict:
    """Everything the parts left in `work`, as one JSON-able dict."""
    import yaml

    shape = SMOKE_RUN if smoke else GPU_RUN
    result = {"smoke": smoke, "parts": read_status(work), "run": shape, "model": None, "train": None,
              "train_async": None, "async_ratio": None, "memory": None, "cuda_tests": None}
    if (work / "build.json").exists():
        result["model"] = json.loads((work / "build.json").read_text())
    run = work / "run"
    for key, folder in (("train", run), ("train_async", work / "run_async")):
        if (folder / "metrics.jsonl").exists() and (folder / "config.yaml").exists():
            rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
            group_size = yaml.safe_load((folder / "config.yaml").read_text())["group_size"]
            result[key] = train_figures(rows, group_size, shape["warmup"]) if rows else None
    rates = [(result[k] or {}).get("tokens_per_s") for k in ("train", "train_async")]
    if all(rates):
        result["async_ratio"] = rates[1] / rates[0]
    if (run / "driver.json").exists():
        result["memory"] = json.loads((run / "driver.json").read_text())
    if (work / "cuda_tests.xml").exists():
        result["cuda_tests"] = test_figures(work / "cuda_tests.xml")
    return result


def _num(value, spec: str = ".0f", unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def markdown(result: dict) -> str:
    """The figures as two markdown tables: the parts, then the figures."""
    lines = ["| part | status | seconds |", "| --- | --- | --- |"]
    lines += [f"| {name} | {p['status']} | {_num(p['seconds'], 'd')} |" for name, p in result["parts"].items()]
    run, model, tr, mem, tests = (result[k] for k in ("run", "model", "train", "memory", "cuda_tests"))
    rows = []
    if mem:
        where = mem["device"] if mem["device"] == "cpu" else (
            f"{mem['device']} ({mem['device_memory_gib']:.0f} GiB), torch {mem['torch']}, CUDA {mem['cuda']}")
        rows.append(("device", where))
    if model:
        rows.append(("model", f"{model['shape']} shape, random weights, {model['parameters'] / 1e6:.1f}M "
                              f"parameters, {'bf16' if run['bf16'] else 'float32'}"))
    rows.append(("batch", f"{run['prompts_per_step']} prompts x {run['group_size']} samples, <= "
                          f"{run['max_new_tokens']} new tokens, arithmetic env, transformers sampler"))
    if tr:
        rows += [("steps", f"{tr['steps_done']} of {run['steps']} done, first {tr['warmup_skipped']} skipped "
                           f"as warm-up; mean completion {tr['completion_len_mean']:.1f} tokens"),
                 ("generation", f"**{_num(tr['generation_tokens_per_s'])} tokens/s** "
                                f"({tr['completion_tokens']} tokens in {tr['generation_s']:.2f} s)"),
                 ("update", f"**{_num(tr['update_tokens_per_s'])} tokens/s** "
                            f"({tr['completion_tokens']} tokens in {tr['update_s']:.2f} s)"),
                 ("step (median)", _num(tr["step_s_median"], ".2f", " s"))]
    if tr and result["train_async"]:
        ta = result["train_async"]
        rows.append(("async (staleness 1)", f"**{_num(ta['tokens_per_s'])} tokens/s** of training against sync's "
                                            f"{_num(tr['tokens_per_s'])}: ratio {_num(result['async_ratio'], '.2f')} "
                                            f"({ta['steps_done']} steps; a rollout worker on the same GPU)"))
    if mem and mem["device"] != "cpu":
        rows.append(("peak GPU memory", f"**{mem['peak_allocated_gib']:.1f} GiB** allocated, "
                                        f"{mem['peak_reserved_gib']:.1f} GiB reserved"))
    elif mem:
        rows.append(("peak RSS (no GPU)", f"{mem['peak_rss_gib']:.2f} GiB"))
    if tests:
        rows.append(("CUDA tests", f"{tests['passed']} passed, {tests['failures']} failed, {tests['errors']} errors, "
                                   f"{tests['skipped']} skipped" + "".join(f"; {p}" for p in tests["problems"])))
    lines += ["", "| figure | value |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines)


def report(work: str, results_dir: str, smoke: bool) -> int:
    """Print and write the figures; 0 when every part passed."""
    result = collect(Path(work), smoke)
    out = Path(results_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(result)
    (out / "gpu_check.md").write_text(text + "\n")
    (out / "gpu_check.json").write_text(json.dumps(result, indent=1) + "\n")
    print(text)
    print(json.dumps(result, indent=1))
    print(f"wrote {out / 'gpu_check.md'} and {out / 'gpu_check.json'}")
    return 0 if all(p["status"] == "ok" for p in result["parts"].values()) else 1


# ---------------------------------------------------------------- the pytest plugin
CUDA_WORDS = re.compile(r"cuda|gpu|bf16", re.IGNORECASE)


def needs_cuda(item) -> bool:
    """A test marked `gpu`, skipped on a reason that names CUDA or a GPU, or named after them;
    never this script's own tests (which would run it again)."""
    if item.path.name == "test_gpu_check.py":
        return False
    if item.get_closest_marker("gpu"):
        return True
    if any(CUDA_WORDS.search(str(m.kwargs.get("reason", ""))) for m in item.iter_markers("skipif")):
        return True
    return bool(CUDA_WORDS.search(item.name))


def pytest_collection_modifyitems(config, items) -> None:
    keep = [item for item in items if needs_cuda(item)]
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="save the random model and tokenizer")
    b.add_argument("model_dir")
    t = sub.add_parser("train", help="GRPO on the model, in process")
    t.add_argument("model_dir")
    t.add_argument("run_dir")
    t.add_argument("--max-minutes", type=float, default=3.0, help="the trainer's own time cap [3.0]")
    t.add_argument("--rollout", choices=("sync", "async"), default="sync", help="rollout mode [sync]")
    r = sub.add_parser("report", help="print and write the figures")
    r.add_argument("work_dir")
    r.add_argument("results_dir")
    for sp in (b, t, r):
        sp.add_argument("--smoke", action="store_true", help="scaled-down CPU run")
    args = p.parse_args(argv)
    if args.command == "build":
        figures = build(args.model_dir, args.smoke)
        Path(args.model_dir).parent.joinpath("build.json").write_text(json.dumps(figures))
        print(json.dumps(figures))
        return 0
    if args.command == "train":
        print(json.dumps(train(args.model_dir, args.run_dir, args.smoke, args.max_minutes, args.rollout)))
        return 0
    return report(args.work_dir, args.results_dir, args.smoke)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
