"""Offline integer polynomials for the synthetic code task: "write `f(x)` that returns 3*x+1".

All polynomials of a degree with integer coefficients in [-max_coef, max_coef] (leading
coefficient non-zero) are enumerated — 342 linear ones for the defaults — and assigned to the
train or test split by a hash of their printed form, like the arithmetic problems
(`data.arithmetic_problems.split_of`), so the splits never share a function. Each comes with its
values on fixed inputs: the hidden test cases, and the examples a prompt may show.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import product

from data.arithmetic_problems import split_of

INPUTS = (-3, -1, 0, 1, 2, 5, 10)  # where every function is checked
_SALT = b"verirl-functions-split:"


@dataclass(frozen=True)
class Function:
    expression: str                  # Python, no spaces: "3*x+1", "-x*x+2*x-5"
    coefficients: tuple[int, ...]    # highest degree first

    def __call__(self, x: int) -> int:
        value = 0
        for c in self.coefficients:
            value = value * x + c
        return value


def _term(c: int, power: int, first: bool) -> str:
    if c == 0:
        return ""
    sign = "-" if c < 0 else ("" if first else "+")
    if power == 0:
        return f"{sign}{abs(c)}"
    body = "*".join(["x"] * power)
    return f"{sign}{body}" if abs(c) == 1 else f"{sign}{abs(c)}*{body}"


def format_polynomial(coefficients: tuple[int, ...]) -> str:
    """Python text of a polynomial, highest degree first.

    >>> format_polynomial((3, 1)), format_polynomial((-1, 0))
    ('3*x+1', '-x')
    >>> format_polynomial((2, -1, 0)), format_polynomial((1, 0, -5))
    ('2*x*x-x', 'x*x-5')
    """
    degree, terms = len(coefficients) - 1, []
    for i, c in enumerate(coefficients):
        terms.append(_term(c, degree - i, not "".join(terms)))
    return "".join(terms) or "0"


def enumerate_functions(degree: int, max_coef: int) -> list[Function]:
    """Every polynomial of exactly `degree` with coefficients in [-max_coef, max_coef]."""
    coefs = range(-max_coef, max_coef + 1)
    return [Function(format_polynomial(cs), cs)
            for cs in product(*([c for c in coefs if c != 0],) + (coefs,) * degree)]


def functions(split: str, degree: int = 1, max_coef: int = 9, seed: int = 0, test_fraction: float = 0.2,
              size: int | None = None) -> list[Function]:
    """The functions of `split` in a seed-determined order, at most `size` of them."""
    chosen = [f for f in enumerate_functions(degree, max_coef)
              if split_of(f.expression, test_fraction, salt=_SALT) == split]
    random.Random(f"{seed}/{split}").shuffle(chosen)
    return chosen if size is None else chosen[:size]
