"""benchmarks/bench_async.py's pooling of several seeds' after-reports: each task's samples and
passes summed over the seeds, then the paired comparison of two pooled reports; numbers worked
by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmark_module import load_benchmark

from evals.comparison import compare
from evals.report import REPORT_FORMAT, ReportError


def _bench():
    return load_benchmark("bench_async")


def _report(tmp_path: Path, name: str, counts: dict, dataset_hash: str = "h") -> str:
    """A report.json with just what the comparison reads: the manifest's identity and per-task counts."""
    report = {"format": REPORT_FORMAT, "ks": [1], "confidence": 0.95, "n_bootstrap": 200,
              "manifest": {"env": {"name": "toy", "options": {}}, "split": "test", "verifier": {"name": "v"},
                           "dataset_hash": dataset_hash, "model": name, "run_key": name, "sampling": {},
                           "completions": None, "finished": True},
              "tasks": {task: {"n": n, "c": c} for task, (n, c) in counts.items()}}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(report))
    return str(path)


def test_seeds_are_pooled_per_task_and_compared_on_the_pooled_rates(tmp_path):
    bench = _bench()
    sync = [_report(tmp_path, "s0", {"a": (8, 2), "b": (8, 8)}), _report(tmp_path, "s1", {"a": (8, 4), "b": (8, 6)})]
    asyn = [_report(tmp_path, "a0", {"a": (8, 3), "b": (8, 7)}), _report(tmp_path, "a1", {"a": (8, 5), "b": (8, 3)})]
    pooled_sync = bench.pooled(sync)
    assert pooled_sync["tasks"] == {"a": {"n": 16, "c": 6}, "b": {"n": 16, "c": 14}}
    result = compare(pooled_sync, bench.pooled(asyn))["metrics"]["pass@k"]["1"]
    # pass@1 per task: sync a 6/16, b 14/16; async a 8/16, b 10/16. Means: sync 20/32, async 18/32.
    assert result["before"] == pytest.approx(20 / 32) and result["after"] == pytest.approx(18 / 32)
    assert result["difference"] == pytest.approx(-2 / 32)
    assert (result["wins"], result["losses"], result["ties"]) == (1, 1, 0)   # a: better, b: worse


def test_seeds_that_were_not_scored_on_the_same_tasks_are_not_pooled(tmp_path):
    bench = _bench()
    other = [_report(tmp_path, "s0", {"a": (8, 2)}), _report(tmp_path, "s1", {"a": (8, 2)}, dataset_hash="other")]
    with pytest.raises(ReportError, match="task contents differ"):
        bench.pooled(other)
