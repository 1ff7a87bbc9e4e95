"""Offline arithmetic problems: integer and fraction expressions with exact answers.

A problem is an expression tree over non-negative integer leaves (and, with `fractions`,
reduced fraction leaves `p/q`), printed without spaces (`12+34`, `(7-3)*5`). Its answer is
computed exactly with `Fraction` and written as an integer (`-22`) or a reduced fraction
(`3/4`, `-7/2`). Each internal node is one step, `left op right=value`, innermost first —
the reference for process rewards and the text of step-by-step demonstrations.

Splits: a problem belongs to the test split when the hash of its printed expression falls
below `test_fraction`, to the train split otherwise. The assignment depends on the problem
alone, not on the seed or the sampling order, so train and test never share a problem
however they are drawn. The seed only picks which problems of a split are drawn, and in
what order.

Without `fractions`, a division always comes out exact: the divisor is drawn among the
divisors (within the digit range) of the value it divides.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterator

OPERATORS = "+-*/"
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
_SALT = b"verirl-arithmetic-split:"
_MAX_TRIES = 1000


@dataclass(frozen=True)
class ArithmeticSpec:
    """Difficulty of generated problems."""

    digits: int = 2          # digits of each integer leaf (1 digit: 0-9; d digits: 10^(d-1) .. 10^d - 1)
    operands: int = 2        # leaves per expression
    operators: str = "+-"    # drawn uniformly per operation
    fractions: bool = False  # fraction leaves p/q and inexact division (answers "a/b")
    multi_step: bool = False  # random tree shapes with parentheses instead of left-to-right precedence

    def __post_init__(self) -> None:
        if isinstance(self.digits, bool) or not isinstance(self.digits, int) or not 1 <= self.digits <= 9:
            raise ValueError(f"option digits must be an int in 1..9, got {self.digits!r}")
        if isinstance(self.operands, bool) or not isinstance(self.operands, int) or not 2 <= self.operands <= 16:
            raise ValueError(f"option operands must be an int in 2..16, got {self.operands!r}")
        bad = sorted(set(self.operators) - set(OPERATORS)) if isinstance(self.operators, str) else [self.operators]
        if bad or not self.operators:
            raise ValueError(f"option operators must be a non-empty string of {OPERATORS!r}, got {self.operators!r}")

    @property
    def leaf_range(self) -> tuple[int, int]:
        return (0 if self.digits == 1 else 10 ** (self.digits - 1)), 10 ** self.digits - 1


@dataclass(frozen=True)
class Problem:
    expression: str          # printed, canonical: the dedupe key and the split key
    answer: str              # exact: "46", "-22", "3/4"
    steps: tuple[str, ...]   # "12+34=46", innermost first


# --------------------------------------------------------------------------- numbers


def format_number(value: Fraction) -> str:
    """Integers as `46` / `-22`, others as a reduced `a/b` (`Fraction` is always reduced).

    >>> format_number(Fraction(6, 8)), format_number(Fraction(-44, 2))
    ('3/4', '-22')
    """
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def _operand(value: Fraction, right_of: str | None) -> str:
    """A step operand; parenthesised where reading it back would change the value."""
    text = format_number(value)
    if right_of and (value < 0 or (right_of in "*/" and value.denominator != 1)):
        return f"({text})"
    return text


def split_of(expression: str, test_fraction: float, salt: bytes = _SALT) -> str:
    """'test' or 'train', from the expression alone (a stable hash, not Python's `hash`)."""
    digest = hashlib.sha256(salt + expression.encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2 ** 64 < test_fraction else "train"


# --------------------------------------------------------------------------- trees


@dataclass
class _Node:
    op: str | None = None            # None for a leaf
    left: "_Node | None" = None
    right: "_Node | None" = None
    value: Fraction | None = None

    def text(self, parent_op: str | None = None, is_right: bool = False) -> str:
        if self.op is None:
            return format_number(self.value)
        inner = self.left.text(self.op) + self.op + self.right.text(self.op, True)
        if parent_op is not None and (_PRECEDENCE[self.op] < _PRECEDENCE[parent_op]
                                      or (is_right and _PRECEDENCE[self.op] == _PRECEDENCE[parent_op])):
            return f"({inner})"
        return inner


def _precedence_shape(ops: list[str]) -> _Node:
    """The tree of `x op x op x ...` read with the usual precedence, left to right."""
    terms: list[_Node] = [_Node()]
    additive: list[str] = []
    for op in ops:
        if op in "*/":
            terms[-1] = _Node(op, terms[-1], _Node())
        else:
            additive.append(op)
            terms.append(_Node())
    tree = terms[0]
    for op, term in zip(additive, terms[1:]):
        tree = _Node(op, tree, term)
    return tree


def _random_shape(n: int, rng: random.Random, operators: str) -> _Node:
    if n == 1:
        return _Node()
    k = rng.randint(1, n - 1)
    return _Node(rng.choice(operators), _random_shape(k, rng, operators), _random_shape(n - k, rng, operators))


class _Reject(Exception):
    """This draw cannot be completed (no exact divisor); draw again."""


def _divisors_in(value: Fraction, lo: int, hi: int) -> list[int]:
    if value.denominator != 1:
        raise _Reject
    v = abs(value.numerator)
    if v == 0:
        return list(range(max(lo, 1), hi + 1))
    if v > 10 ** 10:  # trial division gets slow; SymPy factorises instead
        from sympy import divisors
        return [d for d in divisors(v) if lo <= d <= hi]
    small = [d for d in range(1, int(v ** 0.5) + 1) if v % d == 0]
    return sorted({x for d in small for x in (d, v // d) if lo <= x <= hi})


class _Filler:
    """Draws leaf values bottom-up (so a divisor can be chosen for the value it divides)
    and records the steps."""

    def __init__(self, spec: ArithmeticSpec, rng: random.Random):
        self.spec, self.rng, self.steps = spec, rng, []
        self.lo, self.hi = spec.leaf_range

    def leaf(self, right_of: str | None, left_value: Fraction | None) -> Fraction:
        if right_of == "/" and not self.spec.fractions:
            divisors = _divisors_in(left_value, self.lo, self.hi)
            if not divisors:
                raise _Reject
            return Fraction(self.rng.choice(divisors))
        lo = 1 if right_of == "/" else self.lo
        if self.spec.fractions and right_of != "/" and self.rng.random() < 0.5:
            q = self.rng.randint(2, max(2, self.hi))
            p = self.rng.randint(1, max(1, self.hi))
            if Fraction(p, q).denominator != 1:
                return Fraction(p, q)
        return Fraction(self.rng.randint(lo, self.hi))

    def fill(self, node: _Node, right_of: str | None = None, left_value: Fraction | None = None) -> Fraction:
        if node.op is None:
            node.value = self.leaf(right_of, left_value)
            return node.value
        a = self.fill(node.left, None, None)
        b = self.fill(node.right, node.op, a)
        if node.op == "/" and (b == 0 or (not self.spec.fractions and (a / b).denominator != 1)):
            raise _Reject
        node.value = {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else None}[node.op]
        self.steps.append(f"{_operand(a, None)}{node.op}{_operand(b, node.op)}={format_number(node.value)}")
        return node.value


def generate(spec: ArithmeticSpec, rng: random.Random) -> Problem:
    """One random problem of the given difficulty."""
    for _ in range(_MAX_TRIES):
        ops = [rng.choice(spec.operators) for _ in range(spec.operands - 1)]
        tree = _random_shape(spec.operands, rng, spec.operators) if spec.multi_step else _precedence_shape(ops)
        filler = _Filler(spec, rng)
        try:
            value = filler.fill(tree)
        except _Reject:
            continue
        return Problem(tree.text(), format_number(value), tuple(filler.steps))
    raise ValueError(f"could not draw an exact problem for {spec} in {_MAX_TRIES} tries; "
                     "allow fractions=True or drop '/' from operators")


# --------------------------------------------------------------------------- splits


def problems(spec: ArithmeticSpec | None, split: str, seed: int, test_fraction: float,
             size: int | None, *, draw: Callable[[random.Random], Problem] | None = None,
             salt: bytes = _SALT) -> Iterator[Problem]:
    """Distinct problems of `split`, in a seed-determined order; endless when `size` is None
    (then problems may repeat, but never cross splits). `draw(rng)` replaces `generate(spec, rng)`
    for other generators (which then pass their own split `salt`).

    A finite split stops early, with fewer than `size` problems, when `size` exceeds what
    its share of the problem space holds (detected as a long run of draws with nothing new).
    """
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; valid splits: ['train', 'test']")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"option test_fraction must be in (0, 1), got {test_fraction!r}")
    rng = random.Random(f"{seed}/{split}")
    seen: set[str] = set()
    misses, patience = 0, max(10_000, 50 * (size or 0))
    while size is None or len(seen) < size:
        problem = draw(rng) if draw else generate(spec, rng)
        if split_of(problem.expression, test_fraction, salt) != split or (
                size is not None and problem.expression in seen):
            misses += 1
            if misses > patience:
                if size is None:
                    raise ValueError(f"split {split!r} of {spec} is empty; change test_fraction or the difficulty")
                return
            continue
        misses = 0
        if size is not None:
            seen.add(problem.expression)
        yield problem
