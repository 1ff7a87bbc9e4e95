"""benchmarks/gpu_check.sh: its smoke mode end to end through the shell, with an interpreter that
sees only what the GPU machine has (torch, transformers, accelerate, peft, pytest and what they
require), the report of failed parts, and the throughput arithmetic."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from benchmark_module import load_benchmark
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
GPU_MACHINE = ("torch", "transformers", "accelerate", "peft", "pytest")


def _gpu_check():
    return load_benchmark("gpu_check")


def _closure(roots) -> dict:
    """The installed distributions `roots` need, transitively, extras left out."""
    seen, todo = {}, [canonicalize_name(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            seen[name] = dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return seen


@pytest.fixture(scope="module")
def gpu_machine_python(tmp_path_factory) -> str:
    """An interpreter that imports only GPU_MACHINE's distributions: `python -S` (no
    site-packages, no editable install) on a folder of links to their files."""
    base = tmp_path_factory.mktemp("gpu-machine")
    site = base / "site"
    site.mkdir()
    for dist in _closure(GPU_MACHINE).values():
        for top in {Path(str(f)).parts[0] for f in dist.files or []}:
            src = Path(dist.locate_file(top))
            if top not in ("..", "bin", "__pycache__") and src.exists() and not (site / top).exists():
                (site / top).symlink_to(src)
    wrapper = base / "python"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{site}${{PYTHONPATH:+:$PYTHONPATH}}" exec {sys.executable} -S "$@"\n')
    wrapper.chmod(0o755)
    probe = subprocess.run([str(wrapper), "-c", "import matplotlib"], capture_output=True, text=True)
    assert probe.returncode != 0, "the restricted interpreter still sees matplotlib"
    return str(wrapper)


def _run(tmp_path, python: str, timeout: int = 300, **env_vars) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": python, "OUT": str(tmp_path / "out"), "TMPDIR": str(tmp_path), **env_vars}
    env.pop("PYTHONPATH", None)
    return subprocess.run(["bash", str(SCRIPT), "--smoke"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
def test_smoke_mode_end_to_end_on_what_the_gpu_machine_has(tmp_path, gpu_machine_python):
    proc = _run(tmp_path, gpu_machine_python, timeout=600)   # the parts' own limits come first
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert {name: part["status"] for name, part in result["parts"].items()} == {
        "build": "ok", "train": "ok", "train_async": "ok", "cuda_tests": "ok"}
    assert result["smoke"] is True and result["run"]["bf16"] is False
    # Smoke shape: embedding 151936 x 64 (tied) + 2 layers of
    # q 64x64+64, k and v 64x32+32 each, o 64x64, MLP 3 x 64x128, two norms 2x64, final norm 64.
    layer = (64 * 64 + 64) + 2 * (64 * 32 + 32) + 64 * 64 + 3 * 64 * 128 + 2 * 64
    assert result["model"]["parameters"] == 151936 * 64 + 2 * layer + 64
    train = result["train"]
    assert (train["steps_done"], train["steps_measured"], train["warmup_skipped"]) == (2, 1, 1)
    # 4 prompts x 2 samples, each at most 8 tokens; a random model over 151936 ids almost never
    # samples the EOS, so the completions run to the limit.
    assert 0 < train["completion_tokens"] <= 4 * 2 * 8
    assert train["generation_tokens_per_s"] > 0 and train["update_tokens_per_s"] > 0
    assert train["step_s_median"] > 0
    assert result["memory"]["device"] == "cpu" and result["memory"]["peak_rss_gib"] > 0
    tests = result["cuda_tests"]
    assert tests["tests"] >= 1 and tests["failures"] == tests["errors"] == 0
    assert tests["skipped"] >= 1   # test_core_ppo's CUDA test, on this CPU
    table = (tmp_path / "out" / "gpu_check.md").read_text()
    assert "| generation | **" in table and "| cuda_tests | ok |" in table
    assert table.strip() in proc.stdout
    logs = tmp_path / "out" / "gpu_check_logs"
    assert sorted(p.name for p in logs.iterdir()) == ["build.log", "cuda_tests.log", "metrics.jsonl",
                                                      "metrics_async.jsonl", "status.tsv", "train.log",
                                                      "train_async.log"]
    assert len((logs / "metrics.jsonl").read_text().splitlines()) == 2
    # The async run: 2 steps, the second sampled by the first version while the trainer updated.
    assert [json.loads(x)["staleness_max"] for x in (logs / "metrics_async.jsonl").read_text().splitlines()] == [0, 1]
    assert result["train_async"]["tokens_per_s"] > 0 and result["async_ratio"] > 0
    assert "| async (staleness 1) | **" in table
    assert not list(tmp_path.glob("gpu_check.*")), "the work folder was left behind"


@pytest.mark.slow
def test_a_failed_part_is_named_and_the_others_still_report(tmp_path, gpu_machine_python):
    broken = tmp_path / "python"
    # `build` fails; everything else (pytest, the report) runs on the restricted interpreter.
    broken.write_text(f'#!/bin/sh\ncase "$*" in *gpu_check.py\\ build*) echo boom >&2; exit 3;; esac\n'
                      f'exec {gpu_machine_python} "$@"\n')
    broken.chmod(0o755)
    proc = _run(tmp_path, str(broken))
    assert proc.returncode == 1
    assert "gpu_check: part build failed (exit 3)" in proc.stderr and "boom" in proc.stderr
    result = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert result["parts"]["build"]["status"] == "failed (exit 3)"
    assert result["parts"]["train"]["status"] == "skipped: no model (build failed)"
    assert result["parts"]["train_async"]["status"] == "skipped: no model (build failed)"
    assert result["parts"]["cuda_tests"]["status"] == "ok"
    assert result["train"] is None and result["model"] is None


def test_a_part_that_hangs_is_cut_at_its_limit_and_named(tmp_path):
    hanging = tmp_path / "python"
    # The model builds (a stand-in config.json), then training hangs; no pytest, no report either.
    hanging.write_text('#!/bin/sh\ncase "$*" in\n'
                       '  *gpu_check.py\\ build*) mkdir -p "$3" && touch "$3/config.json";;\n'
                       '  *gpu_check.py\\ train*) sleep 60;;\n'
                       '  *) exit 1;;\nesac\n')
    hanging.chmod(0o755)
    t0 = time.monotonic()
    proc = _run(tmp_path, str(hanging), timeout=60, GPU_CHECK_MAX_PART_S="2")
    assert time.monotonic() - t0 < 30
    assert proc.returncode == 1
    assert "gpu_check: part train timed out after 2s" in proc.stderr
    assert "gpu_check: part cuda_tests skipped" in proc.stderr


def test_report_of_a_run_cut_short_says_so(tmp_path):
    """A train part killed after 3 of 20 steps still reports those steps; no driver.json means no memory figure."""
    work = tmp_path / "work"
    (work / "run").mkdir(parents=True)
    (work / "status.tsv").write_text("build\tok\t9\ntrain\ttimed out after 235s\t240\n"
                                     "cuda_tests\tskipped: pytest is not installed (pip install pytest)\t0\n")
    (work / "run" / "config.yaml").write_text("group_size: 8\n")
    rows = [{"step": i, "elapsed_s": 10.0 + 2 * i, "groups": 32, "completion_len_mean": 64.0,
             "generation_s": 1.5, "update_s": 0.5} for i in (1, 2, 3)]
    (work / "run" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "report", str(work),
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    result = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert result["parts"]["train"] == {"status": "timed out after 235s", "seconds": 240}
    # Step 3 alone after the 2 warm-up steps: 32 x 8 x 64 = 16384 tokens in 1.5 s and 0.5 s.
    assert result["train"]["generation_tokens_per_s"] == pytest.approx(16384 / 1.5)
    assert result["train"]["update_tokens_per_s"] == pytest.approx(16384 / 0.5)
    assert result["memory"] is None and result["cuda_tests"] is None
    assert "| train | timed out after 235s | 240 |" in proc.stdout
    assert "| steps | 3 of 20 done, first 2 skipped as warm-up" in proc.stdout


@pytest.mark.parametrize("n_rows, warmup, expected", [
    # Steps 3 and 4 measured: (64 + 32) * 256 = 24576 tokens in 1.0 + 3.0 s of generation and
    # 0.5 + 1.5 s of update; the step gaps 13 - 11 = 2 and 16 - 13 = 3, median 2.5; training
    # tokens/s 24576 / (2 + 3) = 4915.2.
    (4, 2, dict(steps_measured=2, completion_tokens=24576, generation_tokens_per_s=6144.0,
                update_tokens_per_s=12288.0, step_s_median=2.5, completion_len_mean=48.0, tokens_per_s=4915.2)),
    # Fewer steps than the warm-up: all measured; step 1's gap would hold the set-up, so none.
    (1, 2, dict(steps_measured=1, completion_tokens=16384, generation_tokens_per_s=16384 / 2.0,
                update_tokens_per_s=16384 / 1.0, step_s_median=None, completion_len_mean=64.0, tokens_per_s=None)),
])
def test_train_figures_worked_example(n_rows, warmup, expected):
    lengths, gen, upd, elapsed = [64.0, 32.0, 64.0, 32.0], [2.0, 2.0, 1.0, 3.0], [1.0, 1.0, 0.5, 1.5], [9, 11, 13, 16]
    rows = [{"groups": 32, "completion_len_mean": lengths[i], "generation_s": gen[i], "update_s": upd[i],
             "elapsed_s": elapsed[i]} for i in range(n_rows)]
    figures = _gpu_check().train_figures(rows, group_size=8, warmup=warmup)
    assert {k: figures[k] for k in expected} == pytest.approx(expected)
