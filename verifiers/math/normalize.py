"""String normalisation and the exact-number fast path of the `math` verifier (extraction
is `verifiers.math.extract`). Pure standard library, so the caller never
imports SymPy for the common case (integers, decimals, fractions, percentages, lists).

Normalisation makes equal answers equal strings and gives the parser standard LaTeX:
markdown, `\\left`/`\\right`, spacing, currency and degree signs and units go; `>=`, `<=`,
`!=`, `\\lt`, `\\gt` become relations; an `array` becomes a `pmatrix`; thousands separators
(`1,000`, `1\\,000`, `11,\\!111`, `14{,}916`) go; a doubled backslash before a command name
(`\\\\frac`, an escaping slip) becomes one; a percent sign is recorded and removed.

Forms that would lose a distinction or miss an equality:
* a trig function of degrees becomes one of radians (`\\sin 60^\\circ` is
  `\\sin(\\frac{60\\pi}{180})`, so it equals `\\frac{\\sqrt3}{2}`); any other degree sign is dropped
  and recorded (`degrees`);
* a number with a number subscript is in that base (`1011_2` is 11, `1011_3` is 31, `4C_{16}`
  is 76; `base` records it): digits valid in the base, at least one of them a decimal digit,
  a base from 2 to 36. A subscript that is not a number, or digits the base cannot hold, make
  a label (`x_2`, `A_{12}`, `S_{10}`), left as written;
* a trailing quantifier is no part of the value (`2x+1 \\text{ for all } x \\in \\mathbb{R}`,
  `2x+1, x \\in \\mathbb{R}`, `2k\\pi, k \\in \\mathbb{Z}`, `\\forall x`): it goes;
* sets in words: "all real numbers", `\\mathbb{R}`, `x \\in \\mathbb{R}`, ℝ are
  `(-\\infty, \\infty)`; ∅, `\\varnothing`, `\\{\\}`, "the empty set", "no solution" and
  "none" are `\\emptyset`.

The numeric rule (`values_match`) is shared with the SymPy worker so that both paths decide
alike: equal exact values pass; `rel_tol` admits a relative error; and a decimal answer for
a gold that no finite decimal writes (1/3, sqrt 2, pi) passes when it agrees with the gold
to `sig_digits` significant digits (0.333333 for 1/3, 3.14159 for pi).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from verifiers.math.extract import last_boxed

MAX_NESTING = 60           # brackets deeper than this are refused before any parser sees them

# --------------------------------------------------------------------------- normalisation

_UNICODE = str.maketrans({
    "\u2212": "-", "\u2013": "-", "\u00d7": r" \times ", "\u22c5": r" \cdot ", "\u00b7": r" \cdot ",
    "\u00f7": r" \div ", "\u03c0": r"\pi ", "\u221a": r"\sqrt ", "\u221e": r"\infty ", "\u2264": r" \le ",
    "\u2265": r" \ge ", "\u2260": r" \ne ", "\u00b0": r"^\circ", "\u00a0": " ", "\u202f": " ",
    "\u2009": " ", "\u222a": r" \cup ", "\u2229": r" \cap ", "\u2205": r"\emptyset ", "\u00bd": "1/2",
    "\u00bc": "1/4", "\u00be": "3/4", "\u2032": "'", "\uff0c": ",", "\u2248": "=",
    "\u211d": r"\mathbb{R}", "\u2208": r" \in ", "\u2200": r"\forall ",
})
_DEGREE_SIGN = r"(?:\^\s*\{?\s*\\circ\s*\}?|\\degree)"
_TRIG_DEGREES = re.compile(
    rf"(?:\\|(?<![A-Za-z\\]))(sin|cos|tan|cot|sec|csc)(\s*\^\s*(?:\{{[^{{}}]*\}}|\d))?\s*(?:\(\s*(?P<p>-?\d+(?:\.\d+)?)\s*{_DEGREE_SIGN}\s*\)"
    rf"|\{{\s*(?P<b>-?\d+(?:\.\d+)?)\s*{_DEGREE_SIGN}\s*\}}|(?P<n>-?\d+(?:\.\d+)?)\s*{_DEGREE_SIGN})")
_TEXT_CMD = r"\\(?:text|textbf|textit|textrm|textnormal|mathrm|mathbf|mathit|mathsf|mbox|boldsymbol)"
# A doubled backslash before a command name is an escaping slip (`\\frac` for `\frac`),
# not a row break followed by text: matrices write `\\ 0` or `\\0`, never `\\frac`.
_DOUBLED = re.compile(r"(?<!\\)\\\\(?=(?:frac|dfrac|tfrac|left|right|sqrt|boxed|text|le|ge|leq|geq|neq|ne|lt|gt|"
                      r"pi|cdot|times|infty|in|cup|cap|quad|qquad|pm|mp|mathrm|begin|end)(?![A-Za-z]))")
_RELATIONS = [(re.compile(r">="), r" \\geq "), (re.compile(r"<="), r" \\leq "), (re.compile(r"!="), r" \\neq "),
              (re.compile(r"=<"), r" \\leq "), (re.compile(r"=>"), r" \\geq "),
              (re.compile(r"\\lt(?![A-Za-z])"), " < "), (re.compile(r"\\gt(?![A-Za-z])"), " > ")]
_SIMPLE_SUBS = [
    (re.compile(r"\*\*|__|`"), ""),                                     # markdown
    *_RELATIONS,
    (re.compile(r"\\begin\{array\}\{[^{}]*\}"), r"\\begin{pmatrix}"),
    (re.compile(r"\\end\{array\}"), r"\\end{pmatrix}"),
    (re.compile(r"\\\\\s*(?=\\end\{)"), ""),                                # a last row break before \end
    (re.compile(r"(?<=\d)\s*(?:,\s*\\!|\{\s*,\s*\})\s*(?=\d{3}(?!\d))"), ""),     # 11,\!111 and 14 {,}916
    (re.compile(r"(?<=[)\]])\s*(?:and|or)\s*(?=[(\[])"), ", "),           # (11,7)or(7,11)
    (re.compile(r"\\[dtc]frac"), r"\\frac"),
    (re.compile(r"\\(?:displaystyle|textstyle|left\.|right\.|limits)|^\s*\\approx"), ""),
    (re.compile(r"\\(?:left|right|[Bb]igg?[lrm]?)(?![A-Za-z])\s*"), ""),
    (re.compile(r"\\(?:varnothing)"), r"\\emptyset"),
    (re.compile(r"\^\s*\{?\s*\\circ\s*\}?|(?<=[\d}])\s*\\circ|\\degree|\\textdegree"), ""),
    (re.compile(r"\\?\$|\\euro|\u20ac|\u00a3|\u00a5|\u20b9|^(?:USD|US|EUR|Rs\.?|INR)(?![A-Za-z])\s*"), ""),
    (re.compile(r"(?<=\d)(?:\\,|\\!|\{,\}|\\;|~|\\ )(?=\d{3}(?!\d))"), ""),   # 1\,000 and 1{,}000
    (re.compile(r"(?<=\d)(?: |\\ )(?=\d{3}(?!\d))"), ""),                  # 1 000
    (re.compile(r"(?<!\\)((?:\\\\)*)(?:\\[,;:! ]|\\q?quad)|~"), r"\1 "),   # spacing, not the row break `\\`
    (re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[eE]([+-]?\d+)(?![\d.])"), r"\1\\times10^{\2}"),
    (re.compile(r"\\frac\s*(\d)\s*(\d)"), r"\\frac{\1}{\2}"),
    (re.compile(r"\\frac\s*(\d)\s*\{"), r"\\frac{\1}{"),
    (re.compile(r"\\frac\s*(\{[^{}]*\})\s*(\d)"), r"\\frac\1{\2}"),
    (re.compile(r"\\sqrt\s*(\d+|[a-zA-Z])"), r"\\sqrt{\1}"),
    (re.compile(r"(?<![\d.])\.(\d)"), r"0.\1"),
    (re.compile(r"\b(?:negative|minus)\s+(?:infinity|\\infty)"), r"-\\infty"),
    (re.compile(r"\binfinity\b|\binf\b"), r"\\infty"),
    (re.compile(r"(?<![\\A-Za-z])pi(?![A-Za-z])"), r"\\pi "),                # a plain-text pi
]
_UNIT_TEXT = re.compile(rf"(?<=[\d}}a-zA-Z)])\s*{_TEXT_CMD}\{{\s*[^{{}}\d]*\}}(?:\s*\^\s*\{{?\d\}}?)?\s*$")
_UNWRAP_TEXT = re.compile(rf"{_TEXT_CMD}\{{([^{{}}]*)\}}")
_PLAIN_UNIT = re.compile(r"^([-+]?\d[\d,]*(?:\.\d+)?(?:/\d+)?)(\s*)([A-Za-z]+)(?:[\s./^]+[A-Za-z\d]+)*$")
# Words after a number that are units, even when short or glued to it ("5cm"); any other
# word must have 4+ letters and a space before it ("5 apples"), so that "2xy" or "3 x^2"
# stay algebra. Single letters count only after a space ("2 m").
_UNITS = frozenset(
    "m g s h l cm mm km kg mg lb lbs oz ft yd mi in ms hr hrs min mins sec secs day days yr yrs mph kmh kph "
    "ml cc sq usd eur".split())
_PERCENT = re.compile(r"\\%|%|\\text\{\s*percent\s*\}|\s*\bpercent\b|\s*\bpct\b")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ|(?<=[\d}])\s*\\circ|\\degree|\\textdegree")
_QUANTIFIED = re.compile(r"(?<=\S)\s*[,;]?\s*(?:(?:for\s+(?:all|every|any|each|real)|\\forall)\b.*"
                         r"|(?:for|where)\s+[a-z]\s*\\in\b.*"
                         r"|\(?\s*[a-z]\s*\\in\s*\\mathbb\s*\{?[RCQZN]\}?\s*\)?)$", re.IGNORECASE)
_ALL_REALS = re.compile(r"(?:the\s+set\s+of\s+)?(?:all|every|any)\s+real(?:\s+numbers?|s)?(?:\s+[a-z])?"
                        r"|(?:[a-z]\s*\\in\s*)?(?:\\mathbb\s*\{?R\}?|\\R|\\Reals)", re.IGNORECASE)
_EMPTY = re.compile(r"(?:the\s+)?empty\s+set|\\emptyset|\\\{\s*\\\}|\{\s*\}|no\s+(?:real\s+)?solutions?|none",
                    re.IGNORECASE)
_BASE = re.compile(r"(?<![\w\\^_.{])\(?([0-9A-Z]{1,64})\)?_(?:\{(\d{1,2})\}|(\d{1,2}))(?![\w}])")
_AND_OR = re.compile(r"\s*,?\s+(?:and|or)\s+")


@dataclass(frozen=True)
class Normal:
    """A normalised answer: `text` for the parser, `key` for string equality."""

    text: str
    percent: bool
    degrees: bool = False
    base: int | None = None    # the number base of an answer that is one based numeral (`1011_2`)

    @property
    def key(self) -> str:
        key = re.sub(r"(?<!\d)\s+|\s+(?!\d)", "", self.text)   # "1 1" is not "11"
        return key.lower() if key.isalpha() else key


def _is_unit(word: str, spaced: bool) -> bool:
    if word.lower() in _UNITS:
        return spaced or len(word) > 1
    return spaced and len(word) >= 4


def _strip_delimiters(s: str) -> str:
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
            s = s[len(left):len(s) - len(right)].strip()
    return s


def normalize(text: str) -> Normal:
    """Canonical string of an answer (gold or extracted); see the module docstring."""
    s = _DOUBLED.sub(r"\\", text.translate(_UNICODE)).strip()
    s = _strip_delimiters(s.replace("**", "").strip())
    boxed = last_boxed(s)
    if boxed is not None:
        s = boxed
    elif re.match(r"\\(?:boxed|fbox)\s*\{", s):
        s = s[s.index("{") + 1:]   # a box never closed (a truncated gold): its content
    s = _TRIG_DEGREES.sub(_trig_in_radians, s)
    degrees = bool(_DEGREES.search(s))
    for rx, repl in _SIMPLE_SUBS:
        s = rx.sub(repl, s)
    percent = bool(_PERCENT.search(s))
    s = _PERCENT.sub("", s)
    for _ in range(3):
        s = _UNIT_TEXT.sub("", s).strip()
    for _ in range(3):
        s = _UNWRAP_TEXT.sub(r"\1", s)
    s = _AND_OR.sub(", ", s)
    s = re.sub(r"\s+", " ", s).strip()
    m = _PLAIN_UNIT.match(s)
    if m and _is_unit(m.group(3), spaced=bool(m.group(2))):
        s = m.group(1)
    s = re.sub(r"[\s.,;:]+$", "", s)   # not "!": 5! is a factorial
    s = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", s) if re.fullmatch(r"-?[1-9]\d{0,2}(,\d{3})+(\.\d+)?", s) else s
    s, base = _words_and_bases(s.strip())
    return Normal(s, percent, degrees, base)


def _trig_in_radians(m: re.Match) -> str:
    number = m.group("p") or m.group("b") or m.group("n")
    return f"\\{m.group(1)}{m.group(2) or ''}(\\frac{{{number}\\pi}}{{180}})"


def in_base(digits: str, base: int) -> int | None:
    """The value of `digits` in `base` (2-36), or None when the base cannot hold them or they
    are no numeral (no decimal digit: `A_{12}` is a label)."""
    if not 2 <= base <= 36 or not re.search(r"\d", digits):
        return None
    try:
        return int(digits, base)
    except ValueError:
        return None


def _to_decimal(m: re.Match) -> str:
    value = in_base(m.group(1), int(m.group(2) or m.group(3)))
    return m.group(0) if value is None else str(value)


def _words_and_bases(s: str) -> tuple[str, int | None]:
    """Trailing quantifiers dropped, sets in words as sets, based numerals in decimal."""
    s = _QUANTIFIED.sub("", s).strip() or s
    if _ALL_REALS.fullmatch(s):
        return r"(-\infty, \infty)", None
    if _EMPTY.fullmatch(s):
        return r"\emptyset", None
    whole = _BASE.fullmatch(s)
    base = int(whole.group(2) or whole.group(3)) if whole and _to_decimal(whole) != s else None
    return _BASE.sub(_to_decimal, s), base


def nesting_depth(text: str) -> int:
    """Deepest bracket nesting of (), [], {} (a guard before any recursive parser)."""
    depth = deepest = 0
    for c in text:
        if c in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in ")]}":
            depth -= 1
    return deepest


# --------------------------------------------------------------------------- exact numbers

_DEC = r"(?:\d+(?:\.\d*)?|\.\d+)"
_SCI = rf"({_DEC})\s*(?:\\times|\\cdot|\*)\s*10\s*\^\s*\{{?\s*([+-]?\d+)\s*\}}?"
_RX_NUMBER = [
    ("sci", re.compile(rf"^{_SCI}$")),
    ("dec", re.compile(rf"^({_DEC})$")),
    ("slash", re.compile(rf"^({_DEC})\s*/\s*({_DEC})$")),
    ("frac", re.compile(rf"^\\frac\{{\s*(-?{_DEC})\s*\}}\{{\s*(-?{_DEC})\s*\}}$")),
    ("mixed", re.compile(r"^(\d+)\s*(?:\\frac\{\s*(\d+)\s*\}\{\s*(\d+)\s*\}|\s(\d+)\s*/\s*(\d+))$")),
    ("repeat", re.compile(r"^(\d*)\.(\d{0,50})\\overline\{\s*(\d{1,50})\s*\}$")),   # 0.1\overline{6} = 1/6
]


@dataclass(frozen=True)
class Number:
    """An exact value read from plain text; `decimal` when written with a decimal point."""

    value: Fraction
    decimal: bool
    percent: bool = False


def parse_number(text: str, percent: bool = False) -> Number | None:
    """The exact value of a plain number (int, decimal, a/b, \\frac{a}{b}, mixed, m×10^k, a
    repeating decimal `0.\\overline{3}`)."""
    s = text.strip()
    sign = 1
    while s[:1] in ("-", "+") and len(s) > 1:
        sign, s = (-sign if s[0] == "-" else sign), s[1:].lstrip()
    if not s or len(s) > 200:
        return None
    for kind, rx in _RX_NUMBER:
        m = rx.match(s)
        if not m:
            continue
        try:
            if kind == "sci":
                if abs(int(m.group(2))) > 400:
                    return None
                value = Fraction(m.group(1)) * Fraction(10) ** int(m.group(2))
            elif kind == "dec":
                value = Fraction(m.group(1))
            elif kind == "repeat":
                head, fixed, cycle = m.group(1) or "0", m.group(2), m.group(3)
                value = int(head) + Fraction(int(fixed + cycle) - int(fixed or "0"),
                                             10 ** len(fixed) * (10 ** len(cycle) - 1))
                return Number(sign * value, False, percent)   # exact: a repeating decimal is a fraction
            elif kind == "mixed":
                num, den = (m.group(2), m.group(3)) if m.group(2) else (m.group(4), m.group(5))
                value = int(m.group(1)) + Fraction(int(num), int(den))
            else:
                value = Fraction(m.group(1)) / Fraction(m.group(2))
        except ZeroDivisionError:
            return None
        return Number(sign * value, "." in s, percent)
    return None


_TUPLE = re.compile(r"\(([^()]*)\)")
_TUPLE_LIST = re.compile(r"^\s*\([^()]*\)(?:\s*[,;]\s*\([^()]*\))+\s*$")


def parse_tuples(text: str) -> list[tuple[Number, ...]] | None:
    """Exact values of a list of two or more tuples of plain numbers (`(1,2), (3;4)`), else None."""
    if len(text) > 2000 or not _TUPLE_LIST.match(text):
        return None
    tuples = []
    for m in _TUPLE.finditer(text):
        numbers = tuple(parse_number(x) for x in re.split(r"[,;]", m.group(1)))
        if None in numbers:
            return None
        tuples.append(numbers)
    return tuples


def terminates(value: Fraction) -> bool:
    """True when a finite decimal writes `value` exactly (denominator 2^a 5^b)."""
    den = value.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    return den == 1


def _exponent10(value: Fraction) -> int:
    """floor(log10 |value|) for a non-zero value, exactly."""
    v = abs(value)
    e = len(str(v.numerator)) - len(str(v.denominator))
    while v >= Fraction(10) ** (e + 1):
        e += 1
    while v < Fraction(10) ** e:
        e -= 1
    return e


def values_match(gold: Fraction, pred: Fraction, *, approx: bool, rel_tol: float, sig_digits: int) -> bool:
    """The numeric rule. `approx`: the prediction is a decimal and the gold has no finite
    decimal expansion, so agreement to `sig_digits` significant digits is enough."""
    if gold == pred:
        return True
    if rel_tol and abs(gold - pred) <= Fraction(repr(rel_tol)) * abs(gold):
        return True
    if approx and sig_digits and gold != 0:
        return abs(gold - pred) <= Fraction(1, 2) * Fraction(10) ** (_exponent10(gold) - sig_digits + 1)
    return False


def percent_candidates(gold: Number, pred: Number) -> list[tuple[Fraction, Fraction]]:
    """(gold, pred) value pairs to try: a percent sign on one side only may mean x or x/100."""
    if gold.percent == pred.percent:
        return [(gold.value, pred.value)]
    if gold.percent:
        return [(gold.value, pred.value), (gold.value / 100, pred.value)]
    return [(gold.value, pred.value), (gold.value, pred.value / 100)]


def numbers_match(gold: Number, pred: Number, rel_tol: float, sig_digits: int) -> bool:
    for g, p in percent_candidates(gold, pred):
        if values_match(g, p, approx=pred.decimal and not terminates(g), rel_tol=rel_tol, sig_digits=sig_digits):
            return True
    return False
