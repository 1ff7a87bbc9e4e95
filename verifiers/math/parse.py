"""Parsing for the SymPy half of the `math` verifier: a normalised answer to a SymPy object
with latex2sympy2_extended (a maintained ANTLR LaTeX parser), inside a worker process.

Before anything is evaluated, a size guard bounds the decimal digits of the numbers in the
unevaluated tree (power towers, factorials of huge numbers) and refuses answers beyond
`MAX_DIGITS`; decimals become exact rationals (0.1 is 1/10).
"""

from __future__ import annotations

from functools import lru_cache

import sympy
from antlr4.atn.PredictionMode import PredictionMode
from latex2sympy2_extended.latex2sympy2 import ConversionConfig, _Latex2Sympy
from sympy.polys.polyerrors import BasePolynomialError

from verifiers.math.normalize import parse_number

MAX_DIGITS = 100_000      # refuse to evaluate numbers with more decimal digits than this
# What SymPy raises on odd but legal input; anything else escaping is a bug and shows.
SYMPY_ERRORS = (ValueError, TypeError, AttributeError, ArithmeticError, NotImplementedError,
                RecursionError, KeyError, IndexError, BasePolynomialError)
_CONFIG = ConversionConfig(interpret_as_mixed_fractions=True, lowercase_symbols=True)
_IMAG = sympy.Symbol("i")


class AnswerError(ValueError):
    """An answer that cannot be parsed or is too large to evaluate."""


# --------------------------------------------------------------------------- parsing


def _magnitude(expr: sympy.Basic) -> float:
    """An integer's |value| (capped), else 10 ** (its digit bound): exponents and factorial
    arguments are judged by this before anything is evaluated."""
    if expr.is_Integer and abs(expr) < 10**9:
        return float(abs(expr))
    if expr.is_Rational and max(abs(expr.p), expr.q) < 10**9:
        return float(max(abs(expr.p), expr.q))
    digits = _digits(expr)
    if digits <= 30 and expr.is_number:   # small enough to evaluate: (-5+sqrt 13)/6 is about -0.23
        try:
            return float(abs(sympy.N(expr, 5)))
        except (TypeError, ValueError, ArithmeticError):
            pass
    return float("inf") if digits > 9 else 10.0 ** digits


def _digits(expr: sympy.Basic) -> float:
    """Upper bound of the decimal digits of the numbers in an unevaluated tree."""
    if expr.is_Rational:
        return max(abs(expr.p), expr.q).bit_length() * 0.30103 + 1
    if expr.is_Float:
        return abs(float(expr._mpf_[2] if expr._mpf_[1] else 0)) * 0.30103 + 16
    if not expr.args:
        return 1
    if expr.is_Pow:
        base, exp = expr.args
        if base in (0, 1, -1) or not exp.is_number:
            return _digits(base)
        return _digits(base) * _magnitude(exp)
    if isinstance(expr, (sympy.factorial, sympy.binomial, sympy.gamma, sympy.factorial2)):
        n = max(_magnitude(a) for a in expr.args)
        return n * max(1.0, float(len(str(int(min(n, 1e300))))))
    parts = [_digits(a) for a in expr.args]
    return sum(parts) if expr.is_Mul else max(parts) + len(parts)


def _exactify(expr):
    """Decimals as exact rationals (0.1 is 1/10); also reports whether there were any."""
    floats = [f for f in expr.atoms(sympy.Float)] if isinstance(expr, sympy.Basic) else []
    if floats:
        expr = expr.xreplace({f: sympy.Rational(str(f)) for f in floats})
    return expr, bool(floats)


class _Converter(_Latex2Sympy):
    """latex2sympy2_extended's converter with ANTLR's two-stage parsing (Parr, Harwell and
    Fisher, "Adaptive LL(*) parsing", 2014): SLL prediction first, several times faster than
    the full LL it uses by default, and full LL when SLL reports a syntax error (SLL may
    reject valid input). On every string of the test table both modes give the same result
    wherever SLL succeeds."""

    def __init__(self, mode: int):
        super().__init__(config=_CONFIG)
        self.mode = mode

    def create_parser(self, latex_str):
        parser = super().create_parser(latex_str)
        parser._interp.predictionMode = self.mode
        return parser


def _syntax_error(exc: Exception) -> str:
    """The parser reports syntax errors as bare `Exception`s; anything else is re-raised."""
    if type(exc) is not Exception:
        raise exc
    return str(exc).splitlines()[0]


def _convert(text: str):
    try:
        return _Converter(PredictionMode.SLL).parse(text)
    except SYMPY_ERRORS:
        pass
    except Exception as exc:  # noqa: BLE001 - narrowed by _syntax_error
        _syntax_error(exc)
    try:
        return _Converter(PredictionMode.LL).parse(text)
    except SYMPY_ERRORS as exc:
        raise AnswerError(f"cannot parse {text!r}: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - narrowed by _syntax_error
        raise AnswerError(f"cannot parse {text!r}: {_syntax_error(exc)}") from None


@lru_cache(maxsize=4096)
def parse(text: str) -> tuple[sympy.Basic, bool]:
    """(SymPy object, written with decimals?) of a normalised answer; AnswerError if not.
    Plain numbers are read exactly as the caller's fast path reads them, without ANTLR."""
    number = parse_number(text)
    if number is not None:
        return sympy.Rational(number.value.numerator, number.value.denominator), number.decimal
    expr = _convert(text)
    if isinstance(expr, sympy.Basic):
        if _digits(expr) > MAX_DIGITS:
            raise AnswerError(f"{text!r} is a number too large to evaluate")
        if expr.free_symbols == {_IMAG}:
            expr = expr.xreplace({_IMAG: sympy.I})
    return _exactify(expr)
