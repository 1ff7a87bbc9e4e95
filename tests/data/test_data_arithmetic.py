"""data.arithmetic_problems: the offline problem generator (values checked against SymPy)."""

from __future__ import annotations

import random
import re
from fractions import Fraction
from math import gcd

import pytest
import sympy

from data.arithmetic_problems import ArithmeticSpec, format_number, generate, problems, split_of

SPECS = [
    ArithmeticSpec(),
    ArithmeticSpec(digits=1, operands=3, operators="+-*"),
    ArithmeticSpec(digits=2, operands=4, operators="+-*/"),
    ArithmeticSpec(digits=3, operands=2, operators="/"),
    ArithmeticSpec(digits=2, operands=4, operators="+-*/", fractions=True),
    ArithmeticSpec(digits=2, operands=5, operators="+-*/", multi_step=True),
    ArithmeticSpec(digits=1, operands=4, operators="+-*/", multi_step=True, fractions=True),
]


def _exact(text: str) -> sympy.Rational:
    value = sympy.sympify(text)
    assert value.is_Rational, text
    return value


@pytest.mark.parametrize("value, text", [
    (Fraction(46), "46"), (Fraction(-22), "-22"), (Fraction(6, 8), "3/4"), (Fraction(-7, 2), "-7/2"),
    (Fraction(0), "0"), (Fraction(10, 5), "2"),
])
def test_format_number(value, text):
    assert format_number(value) == text


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_answers_and_steps_are_exact(spec):
    rng = random.Random(7)
    for _ in range(50):
        p = generate(spec, rng)
        assert _exact(p.expression) == _exact(p.answer), p
        assert len(p.steps) == spec.operands - 1
        for step in p.steps:
            left, right = step.split("=")  # exactly one '=' per step
            assert _exact(left) == _exact(right), (p, step)
        assert p.steps[-1].split("=")[1] == p.answer


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_answers_are_integers_or_reduced_fractions(spec):
    rng = random.Random(3)
    for _ in range(200):
        answer = generate(spec, rng).answer
        m = re.fullmatch(r"-?(\d+)(?:/(\d+))?", answer)
        assert m, answer
        if m.group(2):
            assert spec.fractions, answer  # without fractions every division is exact
            assert int(m.group(2)) > 1 and gcd(int(m.group(1)), int(m.group(2))) == 1


def test_default_is_the_calibrated_demo():
    rng = random.Random(0)
    for _ in range(300):
        p = generate(ArithmeticSpec(), rng)
        assert re.fullmatch(r"[1-9]\d[+-][1-9]\d", p.expression), p.expression


def test_flat_expressions_have_no_parentheses_and_multi_step_ones_do():
    rng = random.Random(1)
    flat = [generate(ArithmeticSpec(operands=4, operators="+-*/", fractions=True), rng).expression for _ in range(300)]
    assert not any("(" in e for e in flat)
    trees = [generate(ArithmeticSpec(operands=4, operators="+-*/", multi_step=True), rng).expression
             for _ in range(300)]
    assert any("(" in e for e in trees)


@pytest.mark.parametrize("expression", ["12+34", "99-10", "(1+2)*3", "3/4+1/2"])
def test_split_of_is_a_stable_function_of_the_expression(expression):
    assert split_of(expression, 0.1) == split_of(expression, 0.1)
    assert split_of(expression, 1e-12) == "train" and split_of(expression, 1 - 1e-12) == "test"


def test_split_of_reserves_about_test_fraction():
    exprs = [f"{a}+{b}" for a in range(10, 100) for b in range(10, 100)]
    share = sum(split_of(e, 0.1) == "test" for e in exprs) / len(exprs)
    assert 0.08 < share < 0.12, share


def test_problems_are_distinct_deterministic_and_in_their_split():
    spec = ArithmeticSpec()
    test = [p.expression for p in problems(spec, "test", seed=0, test_fraction=0.1, size=300)]
    assert len(test) == len(set(test)) == 300
    assert test == [p.expression for p in problems(spec, "test", seed=0, test_fraction=0.1, size=300)]
    assert all(split_of(e, 0.1) == "test" for e in test)
    other_seed = [p.expression for p in problems(spec, "test", seed=1, test_fraction=0.1, size=300)]
    assert other_seed != test


def test_endless_stream_never_yields_a_test_problem():
    stream = problems(ArithmeticSpec(), "train", seed=5, test_fraction=0.1, size=None)
    drawn = [next(stream).expression for _ in range(3000)]
    assert all(split_of(e, 0.1) == "train" for e in drawn)
    assert len(set(drawn)) < len(drawn)  # a stream repeats (16,200-problem space)


def test_small_space_stops_with_what_it_has():
    # 1-digit a+b: 100 problems, about 10 of them in the test bucket
    spec = ArithmeticSpec(digits=1, operators="+")
    test = list(problems(spec, "test", seed=0, test_fraction=0.1, size=300))
    expected = sum(split_of(f"{a}+{b}", 0.1) == "test" for a in range(10) for b in range(10))
    assert len(test) == expected


@pytest.mark.parametrize("kwargs, field", [
    ({"digits": 0}, "digits"), ({"digits": 10}, "digits"), ({"operands": 1}, "operands"),
    ({"operators": "%"}, "operators"), ({"operators": ""}, "operators"), ({"digits": True}, "digits"),
])
def test_bad_spec_names_the_option(kwargs, field):
    with pytest.raises(ValueError, match=field):
        ArithmeticSpec(**kwargs)


def test_bad_split_and_fraction_are_rejected():
    with pytest.raises(ValueError, match="valid splits"):
        next(problems(ArithmeticSpec(), "dev", 0, 0.1, 10))
    with pytest.raises(ValueError, match="test_fraction"):
        next(problems(ArithmeticSpec(), "test", 0, 1.5, 10))
