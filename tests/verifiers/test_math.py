"""verifiers.math (verifier, normalize, compare): the case table, extraction and
normalisation units, hostile inputs, threads, worker life-cycle, misuse, and the CLI."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from verifiers import Task, VerifierError, get_verifier
from verifiers.__main__ import main as cli_main
from verifiers.math.extract import extract_answer
from verifiers.math.normalize import normalize, parse_number

_spec = importlib.util.spec_from_file_location("math_cases", Path(__file__).parents[1] / "math_cases.py")
math_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(math_cases)
CASES = math_cases.CASES
REPO = Path(__file__).resolve().parents[2]
HANG_BOUND = 20.0   # seconds: "does not hang", never a speed claim
TIMEOUT = 20.0      # per check in the decision tests


def _task(gold, task_id: str = "t") -> Task:
    return Task(task_id, "prompt", gold)


@pytest.fixture(scope="module")
def verifier():
    """Default options but a generous timeout: these tests judge decisions, and a loaded
    machine must not turn a 100 ms check into a timeout (the timeout has its own test)."""
    with get_verifier("math", timeout=TIMEOUT) as v:
        yield v


@pytest.fixture(scope="module")
def verifiers_by_options(verifier):
    """One verifier per option set of the table; all share the module verifier's workers."""
    built: dict[tuple, object] = {(): verifier}

    def get(options: dict):
        key = tuple(sorted(options.items()))
        if key not in built:
            built[key] = get_verifier("math", timeout=TIMEOUT, **options)
        return built[key]

    yield get
    for key, v in built.items():
        if key:
            v.close()


# --------------------------------------------------------------------------- the table


def test_table_is_large_and_balanced():
    assert len(CASES) >= 300
    assert len({c.id for c in CASES}) == len(CASES)
    groups = {c.id.rsplit("-", 1)[0] for c in CASES}
    for group in groups:   # every rule has cases that must pass and cases that must not
        assert {c.expected for c in CASES if c.id.rsplit("-", 1)[0] == group} == {True, False}, group


def test_realistic_table_is_large_and_balanced():
    """tests/math_realistic.py is the benchmark's held-out-style table: the verifier is not
    tested row by row against it (benchmarks/bench_math.py reports it), only its shape is."""
    spec = importlib.util.spec_from_file_location("math_realistic", Path(__file__).parents[1] / "math_realistic.py")
    realistic = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(realistic)
    rows = realistic.CASES
    assert len(rows) >= 60 and len({r.id for r in rows}) == len(rows)
    for group in {r.id.rsplit("-", 1)[0] for r in rows}:
        assert {r.expected for r in rows if r.id.startswith(group + "-")} == {True, False}, group
    assert {r.finish_reason for r in rows} <= {None, "stop", "length"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case, verifiers_by_options):
    verdict = verifiers_by_options(case.options).verify(case.completion, _task(case.gold, case.id))
    assert verdict.passed is case.expected, (case.gold, case.completion, verdict.info)
    assert verdict.reward == (1.0 if case.expected else 0.0)
    assert verdict.info["status"] in ("passed", "failed", "error")


# --------------------------------------------------------------------------- extraction units

EXTRACT = [
    (r"a \boxed{1} b \boxed{2}", "2", "boxed"),
    (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}", "boxed"),
    (r"\boxed{\{1,2\}}", r"\{1,2\}", "boxed"),
    (r"\fbox{7}", "7", "boxed"),
    (r"\boxed{7} \boxed{8", "7", "boxed"),
    ("x\n#### 1,234\nmore", "1,234", "gsm8k"),
    ("<answer>\\boxed{3}</answer>", "3", "answer_tag"),
    ("<answer>The answer is 4.</answer>", "4", "answer_tag"),
    ("<answer>x+1</answer>", "x+1", "answer_tag"),
    ("The answer is 12.", "12", "answer_is"),
    ("Final answer: $\\frac{1}{2}$", "\\frac{1}{2}", "answer_is"),
    ("The answer is 3.5 hours because it is.", "3.5", "answer_is"),
    ("46", "46", "whole"),
    ("  -3/4 ", "-3/4", "whole"),
    ("Monday", "Monday", "whole"),
    ("we add 1 and 2 to get 3", "3", "last_number"),
    ("so it is 50%", "50%", "last_number"),
    ("it is \u22125 today", "-5", "last_number"),
    ("1,234,567 things", "1,234,567", "last_number"),
    ("no digits here at all", None, "none"),
    ("", None, "none"),
]


@pytest.mark.parametrize("completion, answer, method", EXTRACT)
def test_extract_answer(completion, answer, method):
    assert extract_answer(completion, "last_number") == (answer, method)


def test_extract_without_fallback():
    assert extract_answer("we add 1 and 2 to get 3", "none") == (None, "none")


NORMALIZE = [
    ("7,425,000", "7425000", False),
    ("1\\,000", "1000", False),
    ("\\$12.50", "12.50", False),
    ("25\\%", "25", True),
    ("30^{\\circ}", "30", False),
    ("\\left( 1, 2 \\right)", "( 1, 2 )", False),
    ("\\dfrac{1}{2}", "\\frac{1}{2}", False),
    ("\\frac34", "\\frac{3}{4}", False),
    ("5 \\text{ cm}", "5", False),
    ("**5**.", "5", False),
    ("\u22123", "-3", False),
    ("1.5e-3", "1.5\\times10^{-3}", False),
    ("1 and 2", "1, 2", False),
    ("\\text{Monday}", "Monday", False),
    ("$x$", "x", False),
]


@pytest.mark.parametrize("text, normal, percent", NORMALIZE)
def test_normalize(text, normal, percent):
    got = normalize(text)
    assert (got.text, got.percent) == (normal, percent)


@pytest.mark.parametrize("text, value", [
    ("46", 46), ("-22", -22), ("3/4", 0.75), ("\\frac{-1}{2}", -0.5), ("2\\frac{1}{2}", 2.5),
    ("2 1/2", 2.5), ("1.5\\times10^{3}", 1500), ("0.1", 0.1), ("x", None), ("1/0", None), ("1, 2", None),
])
def test_parse_number(text, value):
    got = parse_number(text)
    assert (got and float(got.value)) == value if value is not None else got is None


# --------------------------------------------------------------------------- info and gold forms


def test_info_explains_the_decision(verifier):
    info = verifier.verify(r"so \boxed{(x+1)^2}", _task("x^2+2x+1")).info
    assert info["answer"] == "(x+1)^2" and info["method"] == "boxed" and info["path"] == "sympy"
    assert info["gold_parsed"] == "x**2 + 2*x + 1" and info["answer_parsed"] == "(x + 1)**2"
    assert info["status"] == "passed" and info["reason"]
    fast = verifier.verify("0.75", _task("3/4")).info
    assert fast["path"] == "fast" and fast["reason"] == "equal numbers"
    assert (fast["gold_parsed"], fast["answer_parsed"]) == ("3/4", "3/4")


@pytest.mark.parametrize("gold, completion, expected", [
    (46, "46", True), (-22, "-22", True), (0.75, "3/4", True), (1.5, "1.50", True), (46, "47", False),
])
def test_numeric_gold_answers(verifier, gold, completion, expected):
    assert verifier.verify(completion, _task(gold)).passed is expected


# --------------------------------------------------------------------------- hostile inputs

PATHOLOGICAL = {
    "power tower": r"\boxed{10^{10^{10^{10}}}}",
    "2-tower": r"\boxed{2^{2^{2^{2^{2^{2}}}}}}",
    "factorial of a factorial": r"\boxed{(10!)!}",
    "huge binomial": r"\boxed{\binom{10^{8}}{10^{7}}}",
    "nested parentheses": r"\boxed{" + "(" * 10_000 + "1" + ")" * 10_000 + "}",
    "nested fractions": r"\boxed{" + r"\frac{1}{" * 200 + "2" + "}" * 200 + "}",
    "1 MB box": r"\boxed{" + "1+" * 500_000 + "1}",
    "1 MB of digits": "1" * 1_000_000,
    "huge polynomial power": r"\boxed{(x+1)^{100000}}",
}


@pytest.mark.parametrize("name", list(PATHOLOGICAL))
def test_pathological_answers_are_refused_quickly(verifier, name):
    start = time.monotonic()
    verdict = verifier.verify(PATHOLOGICAL[name], _task("10"))
    assert time.monotonic() - start < HANG_BOUND
    assert verdict.passed is False
    assert verdict.info["status"] in ("timeout", "error") and verdict.info["error"]


@pytest.mark.parametrize("completion", ["x" * 1_000_000, "(" * 1_000_000, "\\boxed{" * 100_000, "\u0000\ud800"])
def test_hostile_text_fails_without_raising(verifier, completion):
    verdict = verifier.verify(completion, _task("10"))
    assert verdict.passed is False and verdict.info["status"] in ("failed", "error")


def test_overrunning_check_times_out_and_worker_is_replaced(verifier):
    slow = r"\boxed{0.2}"                                 # SymPy tries to integrate the gold
    with get_verifier("math", timeout=0.3) as v:          # shares the (warm) module workers
        start = time.monotonic()
        verdict = v.verify(slow, _task(r"\int_0^1 e^{-x^2}\sin(x^3) dx"))
        assert time.monotonic() - start < HANG_BOUND
        assert verdict.info["status"] == "timeout" and not verdict.passed
        assert "0.3 s" in verdict.info["error"]
    assert verifier.verify_batch([r"\boxed{(x+1)^2}"] * 3, [_task("x^2+2x+1")] * 3)[2].passed   # replaced


# --------------------------------------------------------------------------- threads and workers


def test_verify_from_many_threads(verifier):
    """Eight threads share one verifier (fast paths and SymPy checks mixed)."""
    cases = [c for c in math_cases.DEFAULT_CASES if c.id.startswith(("number", "container", "trap"))][::3]
    results: dict[int, bool] = {}

    def work(offset: int) -> None:
        for i in range(offset, len(cases), 8):
            results[i] = verifier.verify(cases[i].completion, _task(cases[i].gold, cases[i].id)).passed

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HANG_BOUND)
    wrong = [(c.id, results.get(i)) for i, c in enumerate(cases) if results.get(i) is not c.expected]
    assert not wrong


def test_batches_spread_over_shared_workers_that_die_with_their_last_user(monkeypatch):
    monkeypatch.setattr("verifiers.math.verifier.free_cores", lambda: 2)   # as on an idle machine
    a = get_verifier("math", workers=2, memory_mb=640, timeout=TIMEOUT)   # a pool no other test uses
    b = get_verifier("math", workers=2, memory_mb=640, timeout=TIMEOUT, rel_tol=0.5)
    assert a._pool is b._pool and a._pool.users == 2
    golds = [f"{k}x+{k}" for k in range(1, 17)]
    verdicts = a.verify_batch([rf"\boxed{{{k}(x+1)}}" for k in range(1, 17)], [_task(g) for g in golds])
    assert all(v.passed and v.info["path"] == "sympy" for v in verdicts)
    procs = set(a._pool._procs)
    assert len(procs) == 2                                   # 16 SymPy checks: both workers ran
    a.close()
    assert all(p.poll() is None for p in procs)              # b still uses them
    assert b.verify(r"\boxed{\pi}", _task("3")).passed      # b's own tolerance, the same workers
    assert b._pool._procs == procs
    b.close()
    assert all(p.poll() is not None for p in procs) and not b._pool._procs
    assert b.verify(r"\boxed{\sqrt{4}}", _task("2")).passed  # a fresh worker after close
    b.close()
    assert not b._pool._procs


def test_a_forked_child_uses_its_own_workers(verifier):
    import os

    assert verifier.verify(r"\boxed{\sqrt{16}}", _task("4")).passed      # the parent's workers run
    parent_procs = set(verifier._pool._procs)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                                                         # the child
        ok = verifier.verify(r"\boxed{\sqrt{9}}", _task("3")).passed and not (verifier._pool._procs & parent_procs)
        verifier._pool.close()
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert all(p.poll() is None for p in parent_procs)                  # the child left them alone
    assert verifier.verify(r"\boxed{(x+1)^2}", _task("x^2+2x+1")).passed


@pytest.mark.slow
def test_workers_die_with_the_interpreter():
    script = ("from verifiers import get_verifier, Task\n"
              "v = get_verifier('math')\n"
              "v.verify('\\\\boxed{x}', Task('t', 'p', 'y'))\n"
              "print(*[p.pid for p in v._pool._procs])\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=60)
    pids = [int(p) for p in out.stdout.split()]
    assert pids, out.stderr
    time.sleep(0.2)
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


# --------------------------------------------------------------------------- misuse


@pytest.mark.parametrize("options, named", [
    ({"rel_tol": -0.1}, "rel_tol"), ({"rel_tol": "big"}, "rel_tol"), ({"timeout": 0}, "timeout"),
    ({"fallback": "first_number"}, "last_number"), ({"workers": 0}, "workers"), ({"sig_digits": 2.5}, "sig_digits"),
    ({"memory_mb": 10}, "memory_mb"), ({"tolerance": 0.1}, "rel_tol"),
])
def test_bad_options_raise_listing_valid_values(options, named):
    with pytest.raises(VerifierError, match=named):
        get_verifier("math", **options)


@pytest.mark.parametrize("answer, message", [
    (None, "no gold answer"), (True, "string or a number"), ([1, 2], "string or a number"), ("", "empty"),
])
def test_missing_or_invalid_gold_raises_naming_the_task(verifier, answer, message):
    with pytest.raises(VerifierError, match=f"'task-7'.*{message}|{message}.*'task-7'"):
        verifier.verify("42", Task("task-7", "p", answer))


def test_a_completion_that_is_not_text_is_misuse(verifier):
    with pytest.raises(VerifierError, match="'task-8'.*string"):
        verifier.verify(None, Task("task-8", "p", "1"))


def test_unparseable_gold_raises_naming_the_task(verifier):
    with pytest.raises(VerifierError, match="task-9"):
        verifier.verify(r"\boxed{1}", Task("task-9", "p", r"\frac{1}{"))
    with pytest.raises(VerifierError, match="task-9"):
        verifier.verify_batch(["1", r"\boxed{1}"], [_task("1"), Task("task-9", "p", r"\frac{1}{")])


# --------------------------------------------------------------------------- command line


def _cli(tmp_path, rows, *options):
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = [sys.executable, "-m", "verifiers", "score", "--verifier", "math", "--input", str(path)]
    for option in options:
        args += ["--option", option]
    return subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=120)


@pytest.mark.slow
def test_cli_scores_a_jsonl_file(tmp_path):
    rows = [
        {"completion": "46", "task": {"id": "a", "prompt": "20+26=", "answer": "46"}},
        {"completion": r"so \boxed{\frac{3}{4}}", "task": {"id": "b", "prompt": "p", "answer": "0.75"}},
        {"completion": r"\boxed{(x+1)^2}", "task": {"id": "c", "prompt": "p", "answer": "x^2+2x+1"}},
        {"completion": r"\boxed{4\sqrt{2}}", "task": {"id": "d", "prompt": "p", "answer": "4"}},
        {"completion": "100.5", "task": {"id": "e", "prompt": "p", "answer": "100"}},
        {"completion": "x", "task": {"id": "f", "prompt": "p"}},
    ]
    out = _cli(tmp_path, rows, "workers=1")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["passed"] for r in lines] == [True, True, True, False, False, False]
    assert lines[5]["info"]["status"] == "verifier_error" and "'f'" in lines[5]["info"]["error"]
    tolerant = _cli(tmp_path, rows[4:5], "rel_tol=0.01", "fallback=none")
    assert [json.loads(line)["passed"] for line in tolerant.stdout.splitlines()] == [True], tolerant.stderr


def test_cli_rejects_a_bad_option(tmp_path, capsys):
    (tmp_path / "empty.jsonl").write_text("")
    args = ["score", "--verifier", "math", "--option", "fallback=first", "--input", str(tmp_path / "empty.jsonl")]
    assert cli_main(args) == 2
    assert "last_number" in capsys.readouterr().err
