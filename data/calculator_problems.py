"""Offline problems for the `calculator` environment: products too large for a small model to
work out in its head, alone or mixed with a sum or a difference.

Forms (`FORMS`), with `a` and `c` of `big_digits` digits and `b` of `small_digits` digits
(3 and 2 by default):

    mul      a*b        482*67
    mul_add  a*b+c      482*67+315
    mul_sub  a*b-c      482*67-315
    add_mul  c+a*b      315+482*67
    sub_mul  c-a*b      315-482*67   (negative answers)

Answers are exact integers. Splits as in `data.arithmetic_problems`: a problem's split is a
hash of its printed expression (with this module's own salt), so train and test never share a
problem.
"""

from __future__ import annotations

import random
from typing import Iterator

from data.arithmetic_problems import Problem, problems

FORMS = {
    "mul": ("{a}*{b}", lambda a, b, c: a * b),
    "mul_add": ("{a}*{b}+{c}", lambda a, b, c: a * b + c),
    "mul_sub": ("{a}*{b}-{c}", lambda a, b, c: a * b - c),
    "add_mul": ("{c}+{a}*{b}", lambda a, b, c: c + a * b),
    "sub_mul": ("{c}-{a}*{b}", lambda a, b, c: c - a * b),
}
_SALT = b"verirl-calculator-split:"


def _digits(rng: random.Random, digits: int) -> int:
    return rng.randint(10 ** (digits - 1), 10 ** digits - 1)


def draw(rng: random.Random, forms: tuple[str, ...], big_digits: int, small_digits: int) -> Problem:
    """One problem of a form drawn uniformly among `forms`."""
    template, value = FORMS[rng.choice(forms)]
    a, b, c = _digits(rng, big_digits), _digits(rng, small_digits), _digits(rng, big_digits)
    expression = template.format(a=a, b=b, c=c)
    product = f"{a}*{b}={a * b}"
    steps = (product,) if expression == f"{a}*{b}" else (product, f"{expression}={value(a, b, c)}")
    return Problem(expression, str(value(a, b, c)), steps)


def calculator_problems(split: str, seed: int, test_fraction: float, size: int | None,
                        forms: tuple[str, ...] = ("mul", "mul_add", "mul_sub"), big_digits: int = 3,
                        small_digits: int = 2) -> Iterator[Problem]:
    """Distinct problems of `split` (endless when `size` is None), as
    `data.arithmetic_problems.problems`."""
    unknown = sorted(set(forms) - set(FORMS))
    if not forms or unknown:
        raise ValueError(f"forms must be a non-empty list of {sorted(FORMS)}, got {list(forms)!r}")
    for name, d in (("big_digits", big_digits), ("small_digits", small_digits)):
        if isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= 9:
            raise ValueError(f"option {name} must be an int in 1..9, got {d!r}")
    return problems(None, split, seed, test_fraction, size, salt=_SALT,
                    draw=lambda rng: draw(rng, tuple(forms), big_digits, small_digits))
