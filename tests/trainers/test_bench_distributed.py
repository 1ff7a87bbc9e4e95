"""benchmarks/bench_distributed.py: one process end to end through torchrun, the checks that a run
really was data-parallel, and the figures' arithmetic. (Two processes need the distributed
trainer; the 2-rank training tests live with it.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from benchmark_module import load_benchmark

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_distributed.py"


def _bench():
    return load_benchmark("bench_distributed")


@pytest.mark.slow
def test_one_process_end_to_end(tmp_path, tiny_model_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--nprocs", "1", "--steps", "4", "--warmup", "1", "--reps", "1",
                           "--prompts-per-step", "4", "--group-size", "2", "--model", tiny_model_path,
                           "--json", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    (run,), (row,) = result["runs"], result["summary"]
    assert run["steps_measured"] == 3 and run["steps_per_s"] > 0
    assert run["step_s"] == pytest.approx(1 / run["steps_per_s"])
    assert 0 <= run["comm_share"] < 0.05   # one process: no collective (or a no-op one)
    assert row["nprocs"] == 1 and row["ratio"] == pytest.approx(1.0)
    assert "| 1 | " in proc.stdout and "| processes | steps/s |" in proc.stdout


@pytest.mark.parametrize("argv, message", [
    (["--nprocs", "1,3"], "must divide by every process count; not by [3]"),
    (["--nprocs", "0,2"], "--nprocs: comma-separated positive integers"),
    (["--nprocs", "one"], "--nprocs: comma-separated positive integers"),
    (["--steps", "3", "--warmup", "2"], "--steps >= warmup + 2"),
])
def test_bad_options_are_refused_before_any_run(argv, message):
    proc = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def _rows(n_steps, **extra):
    return [{"step": i, **extra} for i in range(1, n_steps + 1)]


@pytest.mark.parametrize("rows, n, expected", [
    (_rows(3), 1, None),                                   # one process may omit world_size
    (_rows(3, world_size=1), 1, None),
    (_rows(3, world_size=2), 2, None),
    (_rows(3), 2, "world_size missing, not 2"),            # today's trainer under torchrun: not data-parallel
    (_rows(3, world_size=1), 2, "world_size 1, not 2"),
    (_rows(2, world_size=2) + [{"step": 3}], 2, "world_size 2, missing, not 2"),
    (_rows(2, world_size=2) * 2, 2, "more than one process wrote metrics.jsonl"),   # every rank logged
    ([], 2, "no step was logged"),
])
def test_a_run_that_was_not_data_parallel_is_named(rows, n, expected):
    problem = _bench().check_world_size(rows, n)
    assert problem is None if expected is None else expected in problem, problem


@pytest.mark.parametrize("comm, share, per_step", [
    # Steps 3-5 after 2 warm-up steps: elapsed 2.0 -> 3.6, 3 steps in 1.6 s; comm 0.1 + 0.2 + 0.1 = 0.4 s.
    ([0.5, 0.5, 0.1, 0.2, 0.1], 0.4 / 1.6, 0.4 / 3),
    (None, 0.0, 0.0),                                      # not logged: counts 0
])
def test_run_figures_worked_example(comm, share, per_step):
    elapsed, gen = [1.0, 2.0, 2.5, 3.0, 3.6], [0.3, 0.3, 0.2, 0.2, 0.3]
    rows = [{"step": i + 1, "elapsed_s": elapsed[i], "generation_s": gen[i], "verification_s": 0.05, "update_s": 0.1,
             **({} if comm is None else {"comm_s": comm[i]})} for i in range(5)]
    figures = _bench().run_figures(rows, warmup=2)
    assert figures["steps_per_s"] == pytest.approx(3 / 1.6) and figures["step_s"] == pytest.approx(1.6 / 3)
    assert figures["generation_s"] == pytest.approx(0.7 / 3) and figures["update_s"] == pytest.approx(0.1)
    assert figures["verification_s"] == pytest.approx(0.05)
    assert figures["comm_share"] == pytest.approx(share) and figures["comm_s"] == pytest.approx(per_step)
    assert figures["comm_logged"] is (comm is not None)


def test_summary_pairs_repetitions_and_keeps_a_failed_count():
    def run(n, rep, steps_per_s):
        return {"nprocs": n, "rep": rep, "steps_per_s": steps_per_s, "step_s": 1 / steps_per_s, "generation_s": 0.1,
                "verification_s": 0.02, "update_s": 0.1, "comm_s": 0.0, "comm_share": 0.0, "comm_logged": False,
                "wall_s": 10.0}
    runs = [run(1, 0, 4.0), run(2, 0, 6.0), run(1, 1, 5.0), run(2, 1, 9.0), run(1, 2, 6.0),
            {"nprocs": 2, "rep": 2, "error": "exit 1"}, {"nprocs": 4, "rep": 0, "error": "timed out after 600 s"}]
    base, two, four = _bench().summarise(runs, [1, 2, 4])
    assert base["reps"] == 3 and base["steps_per_s"] == 5.0 and base["ratio"] == pytest.approx(1.0)
    # Medians 7.5 / 5.0; pairs by repetition 6/4 = 1.5 and 9/5 = 1.8 (the failed third has none).
    assert two["reps"] == 2 and two["ratio"] == pytest.approx(1.5) and two["ratio_range"] == pytest.approx([1.5, 1.8])
    assert four == {"nprocs": 4, "error": "timed out after 600 s"}
    table = _bench().markdown([base, two, four], 1)
    assert "| 2 | 7.50 | **1.50** (1.50-1.80) |" in table and "| 4 | failed: timed out after 600 s |" in table


def test_ratios_pair_runs_of_the_same_repetition():
    def run(n, rep, steps_per_s):
        return {"nprocs": n, "rep": rep, "steps_per_s": steps_per_s, "step_s": 1 / steps_per_s, "generation_s": 0.1,
                "verification_s": 0.02, "update_s": 0.1, "comm_s": 0.01, "comm_share": 0.05, "comm_logged": True,
                "wall_s": 10.0}
    # The base's first repetition failed: 2 processes' rep 0 (8/s) has no partner; rep 1: 6 / 4 = 1.5.
    runs = [{"nprocs": 1, "rep": 0, "error": "exit 1"}, run(2, 0, 8.0), run(1, 1, 4.0), run(2, 1, 6.0)]
    _, two = _bench().summarise(runs, [1, 2])
    assert two["ratio"] == pytest.approx(7.0 / 4.0) and two["ratio_range"] == pytest.approx([1.5, 1.5])
    # The step column is the median of the step times, (125 + 166.7) / 2 ms.
    assert "| 2 | 7.00 | **1.75** (1.50-1.50) | 145.8 ms | 100.0 ms | 20.0 ms | 100.0 ms | 10.0 ms | 5.0 % |" \
        in _bench().markdown([two], 1)
