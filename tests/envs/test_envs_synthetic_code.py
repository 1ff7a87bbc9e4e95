"""envs/synthetic_code.py and data/functions.py: "write f(x) that returns 3*x+1"."""

from __future__ import annotations

import ast
import doctest

import pytest

import data.functions
from data.functions import INPUTS, enumerate_functions, format_polynomial, functions
from envs import EnvError, get_env
from envs.synthetic_code import SyntheticCodeEnv
from verifiers.process import evaluate_arithmetic


def value_at(text: str, x: int):
    """The polynomial `text` (Python in `x`) at `x`: parsed by Python, evaluated by the
    arithmetic verifier's evaluator, which runs no code, instead of `eval`."""
    return evaluate_arithmetic(ast.parse(text.replace("x", f"({x})"), mode="eval"))


def test_doctests():
    assert doctest.testmod(data.functions).failed == 0


@pytest.mark.parametrize("coefficients, text", [
    ((3, 1), "3*x+1"), ((1, 0), "x"), ((-1, -9), "-x-9"), ((2, 0, 0), "2*x*x"), ((-4, 1, -1), "-4*x*x+x-1"),
    ((1, 0, 0, 7), "x*x*x+7"),
])
def test_format_polynomial_is_python_for_the_same_function(coefficients, text):
    assert format_polynomial(coefficients) == text
    fn = data.functions.Function(text, coefficients)
    for x in INPUTS:
        assert value_at(text, x) == fn(x)


@pytest.mark.parametrize("degree, max_coef, count", [(1, 9, 18 * 19), (2, 2, 4 * 5 * 5), (1, 1, 2 * 3)])
def test_enumeration_size(degree, max_coef, count):
    fns = enumerate_functions(degree, max_coef)
    assert len(fns) == count == len({f.expression for f in fns})


def test_splits_are_disjoint_and_cover_the_space():
    test, train = functions("test"), functions("train")
    assert not {f.expression for f in test} & {f.expression for f in train}
    assert len(test) + len(train) == 342 and 40 < len(test) < 100
    assert [f.expression for f in functions("test", seed=1)] != [f.expression for f in test]
    assert sorted(f.expression for f in functions("test", seed=1)) == sorted(f.expression for f in test)


def test_bare_tasks():
    env = get_env("synthetic_code")
    task = env.tasks("test")[0]
    assert task.prompt == f"# f(x) = {task.answer}\ndef f(x):\n    return "
    assert task.tests["kind"] == "call" and task.tests["entry_point"] == "f"
    assert [c["args"] for c in task.tests["cases"]] == [[x] for x in INPUTS]
    assert all(c["expected"] == value_at(task.answer, c["args"][0]) for c in task.tests["cases"])
    chars = "".join(t.prompt + t.answer for t in env.tasks("test") + env.tasks("train"))
    assert set(chars) <= set(SyntheticCodeEnv.alphabet)
    assert env.stop == ("\n",)


def test_examples_spec_shows_values_not_the_formula():
    env = get_env("synthetic_code", spec="examples", degree=2, test_size=5)
    tasks = env.tasks("test")
    assert len(tasks) == 5
    for task in tasks:
        assert task.answer not in task.prompt and "f(3) = " in task.prompt and "f(4)" not in task.prompt


@pytest.mark.parametrize("options, field", [
    ({"style": "chat"}, "style"), ({"spec": "words"}, "spec"), ({"degree": 4}, "degree"),
    ({"max_coef": 0}, "max_coef"), ({"test_fraction": 0}, "test_fraction"),
])
def test_bad_options(options, field):
    with pytest.raises(EnvError, match=field):
        get_env("synthetic_code", **options)


@pytest.mark.slow
@pytest.mark.parametrize("options", [{}, {"style": "instruct"}, {"spec": "examples", "degree": 2, "test_size": 10}])
def test_round_trip_through_the_sandbox(options):
    env = get_env("synthetic_code", **options)
    tasks = env.tasks("test")
    try:
        gold = env.verifier.verify_batch([env.demonstration(t) for t in tasks], tasks)
        off_by_one = [env.demonstration(t).replace(t.answer, f"{t.answer}+1") for t in tasks]
        wrong = env.verifier.verify_batch(off_by_one, tasks)
        assert all(v.passed for v in gold), [v.info for v in gold if not v.passed][:2]
        assert not any(v.passed for v in wrong)
    finally:
        env.close()
