"""`python -m verifiers`: list, score (order, one line per input line, errors), entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(args, stdin=None, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "verifiers", *args], cwd=ROOT, input=stdin, capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_list_shows_names_descriptions_and_options():
    proc = _run(["list"])
    assert proc.returncode == 0
    assert "tags: XML-tag structure reward" in proc.stdout
    assert "    max_length: [int, default: 1024]" in proc.stdout       # the help shape every option has
    assert "    parts: [json, required]" in proc.stdout
    assert "math:" in proc.stdout and "composite:" in proc.stdout


def test_score_keeps_order_and_emits_a_line_per_input_line(tmp_path):
    good = {"completion": "<think>x</think><answer>1</answer>", "task": {"id": "a", "prompt": "p"}}
    lines = [json.dumps(good), "not json", json.dumps({"completion": "x"}), "", json.dumps([1, 2]),
             json.dumps({"completion": 3, "task": {"id": "b", "prompt": "p"}}),
             json.dumps({"completion": "<think>x</think>", "task": {"id": "c", "prompt": "p", "colour": 1}}),
             json.dumps({**good, "task": {"id": "d", "prompt": "p"}})]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    proc = _run(["score", "--verifier", "tags", "--input", str(src), "--output", str(out)])
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 7  # the blank line is not a record
    assert [r["passed"] for r in rows] == [True, False, False, False, False, False, True]
    errors = [r["info"].get("error", "") for r in rows]
    assert errors[1].startswith("line 2: invalid JSON")
    assert errors[2] == "line 3: missing field(s) ['task']"
    assert errors[3] == "line 5: expected a JSON object, got list"
    assert errors[4] == "line 6: field 'completion' must be a string"
    assert "line 7: field 'task': unknown task field(s) ['colour']" in errors[5]
    assert all(r["info"]["status"] == "verifier_error" for r in rows[1:6])  # a bad record: no judgement


def test_score_reads_stdin_and_writes_stdout_with_options():
    line = json.dumps({"completion": "x" * 50, "task": {"id": "a", "prompt": "p"}})
    proc = _run(["score", "--verifier", "length", "--option", "max_length=40", "--option", "buffer=10",
                 "--input", "-"], stdin=line + "\n")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["reward"] == -1.0


def test_task_the_verifier_cannot_judge_spoils_only_its_line(tmp_path):
    rows = [{"completion": "\\boxed{4}", "task": {"id": "a", "prompt": "p", "answer": "4"}},
            {"completion": "\\boxed{4}", "task": {"id": "b", "prompt": "p"}},            # no gold answer
            {"completion": "\\boxed{5}", "task": {"id": "c", "prompt": "p", "answer": "5"}}]
    proc = _run(["score", "--verifier", "math", "--input", "-"], stdin="".join(json.dumps(r) + "\n" for r in rows))
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [r["passed"] for r in out] == [True, False, True]
    assert out[1]["info"]["status"] == "verifier_error" and "line 2:" in out[1]["info"]["error"]


def test_misuse_exits_2_with_a_clear_message(tmp_path):
    proc = _run(["score", "--verifier", "nope", "--input", "-"], stdin="")
    assert proc.returncode == 2 and "unknown verifier 'nope'; known verifiers:" in proc.stderr
    proc = _run(["score", "--verifier", "tags", "--option", "partal=1", "--input", "-"], stdin="")
    assert proc.returncode == 2 and "unknown option 'partal' for verifier 'tags'" in proc.stderr
    proc = _run(["score", "--verifier", "tags", "--option", "partial", "--input", "-"], stdin="")
    assert proc.returncode == 2 and "expected k=v" in proc.stderr
    proc = _run(["score", "--verifier", "tags", "--input", str(tmp_path / "missing.jsonl")])
    assert proc.returncode == 2 and "No such file" in proc.stderr


def test_progress_on_stderr_for_long_inputs():
    line = json.dumps({"completion": "<think>a</think><answer>b</answer>", "task": {"id": "a", "prompt": "p"}})
    proc = _run(["score", "--verifier", "tags", "--input", "-"], stdin=(line + "\n") * 2100)
    assert proc.returncode == 0
    assert len(proc.stdout.splitlines()) == 2100
    assert "scored 1024 lines" in proc.stderr and "scored 2048 lines" in proc.stderr


def test_entry_point_group_registers_third_party_verifiers(tmp_path):
    """A package that declares `[project.entry-points."verirl.verifiers"]` shows up by name."""
    (tmp_path / "thirdparty_rewards.py").write_text(
        "def shouty(completion, task):\n    '''Rewards upper case.'''\n    return float(completion.isupper())\n")
    dist = tmp_path / "thirdparty_rewards-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-rewards\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[verirl.verifiers]\nshouty = thirdparty_rewards:shouty\n")
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    proc = _run(["list"], env=env)
    assert "shouty: Rewards upper case." in proc.stdout
    line = json.dumps({"completion": "YES", "task": {"id": "a", "prompt": "p"}})
    proc = _run(["score", "--verifier", "shouty", "--input", "-"], stdin=line + "\n", env=env)
    assert json.loads(proc.stdout)["passed"] is True
