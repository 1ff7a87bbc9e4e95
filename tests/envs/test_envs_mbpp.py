"""envs/mbpp.py: sanitized MBPP from a local copy with the hub schema, checked in the sandbox."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

import envs.mbpp
from envs import EnvError, get_env
from envs.mbpp import check_code, entry_point

FIXTURES = Path(__file__).parents[1] / "fixtures" / "envs"
CLONE = str(FIXTURES / "mbpp")
TEST_FILE = str(FIXTURES / "mbpp" / "sanitized" / "test-00000-of-00001.parquet")


pytestmark = pytest.mark.usefixtures("offline")  # conftest.py: no hub retries


def test_doctests():
    assert doctest.testmod(envs.mbpp).failed == 0


@pytest.mark.parametrize("tests, code, name", [
    (["assert f(1) == 2"], "def f(x): return x + 1", "f"),
    (["assert set(g([1])) == set([1])"], "def g(xs): return xs", "g"),
    (["assert math.isclose(area(1), 3.14)"], "", "area"),
    (["assert sorted(h(3)) == [1]"], "def helper(): 0\ndef h(n): return [1]", "h"),
    (["assert len([]) == 0"], "", None),
    (["assert (((("], "", None),  # unparsable test: no name
])
def test_entry_point(tests, code, name):
    assert entry_point(tests, code) == name


def test_check_code_runs_the_asserts():
    code = check_code(["assert f(1) == 2", "assert f(2) == 3"], ["import math"])
    namespace: dict = {"f": lambda x: x + 1}
    exec(compile(code, "<check>", "exec"), namespace)  # our own fixed code
    namespace["check"](namespace["f"])
    namespace["f"] = lambda x: x
    with pytest.raises(AssertionError):
        namespace["check"](namespace["f"])


def test_tasks_from_a_local_copy():
    tasks = get_env("mbpp", path=CLONE).tasks("test")
    assert [t.id for t in tasks] == ["mbpp/601", "mbpp/602", "mbpp/603", "mbpp/604"]
    assert [t.tests["entry_point"] for t in tasks] == ["sum_squares", "is_palindrome", "circle_area", "dedupe"]
    assert tasks[0].prompt.endswith("Your code should pass these tests:\n\nassert sum_squares([1, 2, 3]) == 14")
    assert tasks[2].tests["code"].startswith("import math\n")
    shown = get_env("mbpp", data_files=TEST_FILE, show_tests=0).tasks("test")
    assert shown[0].prompt == "Write a function to return the sum of the squares of a list of numbers."


@pytest.mark.parametrize("options, field", [({"show_tests": -1}, "show_tests"), ({"show_tests": True}, "show_tests"),
                                            ({"tests_shown": 2}, "valid options")])
def test_bad_options(options, field):
    with pytest.raises(EnvError, match=field):
        get_env("mbpp", **options)


@pytest.mark.slow
def test_round_trip_through_the_sandbox():
    env = get_env("mbpp", path=CLONE)
    tasks = env.tasks("test")
    try:
        gold = env.verifier.verify_batch([env.demonstration(t) for t in tasks], tasks)
        raw = env.verifier.verify_batch([t.answer for t in tasks], tasks)  # unfenced whole program
        wrong = env.verifier.verify_batch([f"def {t.tests['entry_point']}(*args):\n    return None\n" for t in tasks],
                                          tasks)
        assert [v.passed for v in gold] == [True] * 4, [v.info for v in gold]
        again = env.verifier.verify_batch([env.demonstration(t) for t in tasks] + [t.answer for t in tasks], tasks * 2)
        assert [(v.passed, v.info["status"]) for v in again] == [(v.passed, v.info["status"]) for v in gold + raw]
        assert all(v.passed for v in raw)
        assert not any(v.passed for v in wrong)
    finally:
        env.close()
