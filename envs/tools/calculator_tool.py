"""`calculator`: exact arithmetic on one expression, with the `arithmetic_steps` verifier's
evaluator, so the tool and the checker of worked steps agree on every value.

The expression may use integers, decimals, `+ - * /`, parentheses and powers (`**` or `^`);
`×`, `÷` and `−` are read as in the verifier. The value is exact (SymPy rationals) and shown
as an integer (`5535`) or a reduced fraction (`7/2`).

Bounds, all checked before or during evaluation, so no input costs more than a few
milliseconds of CPU (no separate process is needed): at most `max_chars` characters (200),
brackets nested at most as deep as the `math` verifier parses (60), powers whose result
would exceed 1,000 digits refused by the evaluator, and a value of more than `max_digits`
digits (1,000) refused. A division by zero, a power of zero to a negative exponent, or
anything that is not arithmetic (names, calls, comparisons) is an error the model is shown.
"""

from __future__ import annotations

from fractions import Fraction

from data.arithmetic_problems import format_number
from envs.tools.base import Tool, ToolError, register_tool
from verifiers.math.normalize import MAX_NESTING, nesting_depth
from verifiers.parse_lock import parse
from verifiers.process import SUBSTITUTIONS, Unverifiable, evaluate_arithmetic

_LOG2_10 = 3.321928094887362


@register_tool("calculator")
class Calculator(Tool):
    """Evaluate an arithmetic expression exactly: + - * / ** and parentheses."""

    tag = "calc"
    description = "Evaluate an arithmetic expression exactly (+ - * / ** and parentheses), e.g. 123*45+6."
    argument = "expression"
    bounds_time = True

    def __init__(self, max_chars: int = 200, max_digits: int = 1000):
        if not (isinstance(max_chars, int) and 0 < max_chars <= 1000):  # the verifier's own bound is 1,000
            raise ValueError(f"option max_chars must be an int in 1..1000, got {max_chars!r}")
        if not (isinstance(max_digits, int) and max_digits > 0):
            raise ValueError(f"option max_digits must be a positive int, got {max_digits!r}")
        self.max_chars, self.max_digits = max_chars, max_digits

    def run(self, arguments: dict, timeout: float) -> str:
        return format_number(self.evaluate(arguments[self.argument]))

    def evaluate(self, expression: str) -> Fraction:
        """The exact value of `expression`; `ToolError` saying why when there is none."""
        text = expression.strip()
        for old, new in SUBSTITUTIONS:
            text = text.replace(old, new)
        if not text:
            raise ToolError("empty expression")
        if len(text) > self.max_chars:
            raise ToolError(f"expression longer than {self.max_chars} characters")
        if nesting_depth(text) > MAX_NESTING:
            raise ToolError(f"brackets nested deeper than {MAX_NESTING}")
        try:
            tree = parse(text, mode="eval")
        except SyntaxError:
            raise ToolError(f"not an arithmetic expression: {expression[:60]!r}") from None
        try:
            value = evaluate_arithmetic(tree)
        except Unverifiable as exc:
            raise ToolError(str(exc)) from None
        except RecursionError:
            raise ToolError("expression nested too deeply") from None
        # Digits from the bit length: converting a huge int to text is itself bounded by Python.
        if max(int(value.p).bit_length(), int(value.q).bit_length()) > self.max_digits * _LOG2_10:
            raise ToolError(f"result has more than {self.max_digits} digits")
        return Fraction(int(value.p), int(value.q))
