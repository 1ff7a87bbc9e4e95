"""The SymPy half of the `math` verifier: parse two normalised answers with
latex2sympy2_extended (a maintained ANTLR LaTeX parser) and decide whether they are equal.

It runs only inside the worker processes of the `math` verifier (`verifiers.math.worker`),
because SymPy work on hostile input cannot be bounded in-process: a Python thread cannot be
stopped, and SIGALRM works only in the main thread. The parent kills a worker that overruns
its deadline. Inside, a size guard refuses numbers too large to evaluate (power towers,
factorials of huge numbers) before anything is evaluated, and an address-space limit turns
runaway allocations into `MemoryError`.

Decision rules, by the gold's type:
* numbers: exact values compared exactly; the numeric rule of `verifiers.math.normalize`
  (`rel_tol`, `sig_digits` for decimal answers to irrational or repeating golds);
* expressions with variables: equal when their difference expands to 0, or vanishes at
  random rational points and simplifies to 0 (a point where they differ settles "no");
* equations: an assignment `x = 3` stands for its value against a non-equation; two
  assignments need the same variable; other equations are equal when one side-difference
  is a non-zero constant multiple of the other (two equations of the same line);
* inequalities: as solution sets when they have one variable;
* sets (braces, or a bare list `1, 2`): unordered; tuples `(a, b)`: ordered; intervals:
  endpoints and openness (an open `(a, b)` also reads as the pair a, b); an inequality in
  one variable against a set or interval compares as its solution set;
* matrices: entry by entry after evaluating sums and products of explicit matrices; a
  one-row or one-column matrix against a tuple is a vector;
* an undefined value (`12:00` read as 12/0) equals nothing; an infinity equals only itself
  (`\\infty` is not `-\\infty`);
* a function's argument is a bound name: the value of `f(t) = t^2` (its argument `t` sent by the
  caller) is renamed to the other side's one variable, so it equals `x^2` and `f(x) = x^2`;
  an unlabelled `t^2` is an expression in another variable and does not;
* `j` is the imaginary unit in an answer whose only symbol it is, against a gold that is a
  non-real number (`3+2j` is `3+2i`); anywhere else it is a variable.

Parsing and its size guard: `verifiers.math.parse`; math-verify for the audit option:
`verifiers.math.reference` (both run in the same workers).
"""

from __future__ import annotations

import random
from fractions import Fraction
from functools import lru_cache

import sympy

from verifiers.math.normalize import Number, numbers_match, terminates, values_match
from verifiers.math.parse import SYMPY_ERRORS, AnswerError, parse

MAX_EXPAND_POWER = 24     # expand() only polynomials of modest degree
SAMPLE_POINTS = 4


# --------------------------------------------------------------------------- equality


def _is_assignment(e) -> bool:
    return isinstance(e, sympy.Eq) and isinstance(e.lhs, sympy.Symbol)


def _is_relation(e) -> bool:
    return isinstance(e, (sympy.Rel, sympy.And))


def _fraction(e) -> Fraction:
    return Fraction(int(e.p), int(e.q))


def _numeric_equal(g, p, ctx) -> str | None:
    """Closed-form numbers: exact rationals exactly, others at 60 digits."""
    g, p = g.doit(), p.doit()
    if g == p:
        return "equal values"
    if any(x.has(sympy.oo, sympy.S.NegativeInfinity, sympy.zoo) for x in (g, p)):
        return None     # at 60 digits oo - (-oo) is no smaller than oo: only identical infinities are equal
    if g.is_Rational and p.is_Rational:
        gold, pred = Number(_fraction(g), False), Number(_fraction(p), ctx["decimal"])
        return "equal within tolerance" if numbers_match(gold, pred, ctx["rel_tol"], ctx["sig_digits"]) else None
    gv, pv = sympy.N(g, 60), sympy.N(p, 60)
    if not (gv.is_number and pv.is_number) or gv.has(sympy.nan, sympy.zoo) or pv.has(sympy.nan, sympy.zoo):
        return None
    diff, scale = abs(sympy.N(gv - pv, 60)), max(abs(gv), sympy.Float(1e-300))
    if diff <= scale * sympy.Float("1e-45"):
        return "equal at 60 digits"
    if gv.is_real and pv.is_real:
        gf, pf = Fraction(str(sympy.Float(gv, 60))), Fraction(str(sympy.Float(pv, 60)))
        approx = ctx["decimal"] and not (g.is_Rational and terminates(_fraction(g)))
        if values_match(gf, pf, approx=approx, rel_tol=ctx["rel_tol"], sig_digits=ctx["sig_digits"]):
            return "equal within tolerance"
    return None


def _max_power(e) -> float:
    powers = [abs(float(a.exp)) for a in e.atoms(sympy.Pow) if a.exp.is_number and a.exp.is_real]
    return max(powers, default=0)


def _points_differ(g, p, rng) -> bool | None:
    """True if g - p is clearly non-zero at a random rational point (relative to the size of
    g and p there), False if ~0 at every point, None if no point could be evaluated."""
    symbols, seen = sorted(g.free_symbols | p.free_symbols, key=str), 0
    for _ in range(SAMPLE_POINTS):
        point = {s: sympy.Rational(rng.randint(-97, 97), rng.randint(7, 31)) for s in symbols}
        gx, px = g.xreplace(point), p.xreplace(point)
        value, scale = sympy.N(gx - px, 30), sympy.N(abs(gx) + abs(px), 15)
        if not (value.is_number and scale.is_number) or value.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo) \
                or scale.has(sympy.nan, sympy.zoo, sympy.oo):
            continue
        seen += 1
        if abs(value) > 1e-20 * max(1, scale):
            return True
    return False if seen else None


def _symbolic_equal(g, p) -> str | None:
    """Random points first: they refute unequal expressions at once, before any expansion."""
    diff = sympy.Add(g, -p)
    if diff.has(sympy.Sum, sympy.Product, sympy.Integral):
        # Random points make symbolic bounds fractional, and simplify() then crawls (a second
        # per pair of sums): closed forms where SymPy knows them, then expansion, decide these.
        return "difference sums to 0" if sympy.expand(diff.doit()) == 0 else None
    differs = _points_differ(g, p, random.Random(0))
    if differs:
        return None
    if _max_power(diff) <= MAX_EXPAND_POWER and sympy.expand(diff) == 0:
        return "difference expands to 0"
    if sympy.simplify(diff) == 0:
        return "difference simplifies to 0"
    return "equal at random points" if differs is False else None


def expr_equal(g, p, ctx) -> str | None:
    """Reason why two (non-container, non-relation) expressions are equal, or None."""
    if g == p:
        return "identical"
    if isinstance(g, (sympy.Set, sympy.Tuple)) or isinstance(p, (sympy.Set, sympy.Tuple)):
        return None
    if not (isinstance(g, sympy.Expr) and isinstance(p, sympy.Expr)):
        return None
    if not g.free_symbols and not p.free_symbols:
        return _numeric_equal(g, p, ctx)
    return _symbolic_equal(g, p)   # sin^2 x + cos^2 x has a variable and equals 1


def _proportional(a, b, sign: int = 0) -> bool:
    """a = c·b for a non-zero constant c (of the given sign, when sign != 0)."""
    if b == 0:
        return a == 0
    ratio = sympy.cancel(sympy.together(a / b))
    if ratio.free_symbols:
        rng = random.Random(0)
        at = lambda: {s: sympy.Rational(rng.randint(-97, 97), rng.randint(7, 31)) for s in ratio.free_symbols}  # noqa: E731
        if _points_differ(ratio.xreplace(at()), ratio.xreplace(at()), rng):
            return False                     # not constant: no simplify() needed to say so
        ratio = sympy.simplify(ratio)
    if ratio.free_symbols or ratio == 0 or not ratio.is_finite:
        return False
    return sign == 0 or (ratio.is_positive if sign > 0 else ratio.is_negative) is True


@lru_cache(maxsize=1024)
def _as_set(rel):
    """The solution set of a relation in one variable (None otherwise); cached, as SymPy's
    inequality solver is slow."""
    if len(rel.free_symbols) != 1:
        return None
    return rel.as_set()


def relation_equal(g, p, ctx) -> str | None:
    if _is_assignment(g) and _is_assignment(p):
        if g.lhs != p.lhs:
            return None
        reason = equal(g.rhs, p.rhs, ctx)
        return reason and f"same variable, {reason}"
    if isinstance(g, sympy.Eq) and isinstance(p, sympy.Eq):
        if (g.lhs - g.rhs).free_symbols != (p.lhs - p.rhs).free_symbols:
            return None
        return "proportional equations" if _proportional(g.lhs - g.rhs, p.lhs - p.rhs) else None
    gs, ps = _as_set(g), _as_set(p)
    if gs is not None and ps is not None and g.free_symbols == p.free_symbols:
        return "same solution set" if gs == ps else None
    if isinstance(g, sympy.Rel) and isinstance(p, sympy.Rel) and not isinstance(g, sympy.Eq):
        same = type(g) is type(p) and _proportional(g.lhs - g.rhs, p.lhs - p.rhs, 1)
        flipped = type(g) is type(p.reversed) and _proportional(g.lhs - g.rhs, p.rhs - p.lhs, 1)
        return "equivalent inequalities" if same or flipped else None
    return None


def _elements(c, ordered: bool):
    if isinstance(c, sympy.Interval):
        return [c.start, c.end]
    if isinstance(c, sympy.FiniteSet) and ordered:
        return list(getattr(c, "_unsorted_args", c.args))
    return list(c.args)


def _match_unordered(gs, ps, ctx) -> bool:
    if len(set(ps)) != len(ps) or len(set(gs)) != len(gs):
        gs, ps = list(dict.fromkeys(gs)), list(dict.fromkeys(ps))
    if len(gs) != len(ps):
        return False
    left = list(ps)
    for g in gs:
        hit = next((i for i, p in enumerate(left) if equal(g, p, ctx)), None)
        if hit is None:
            return False
        left.pop(hit)
    return True


def container_equal(g, p, ctx) -> str | None:
    """Sets unordered, tuples ordered, intervals by endpoints; see the module docstring."""
    pair = lambda c: isinstance(c, sympy.Interval) and c.left_open and c.right_open  # noqa: E731
    if isinstance(g, sympy.Interval) and isinstance(p, sympy.Interval):
        if (g.left_open, g.right_open) != (p.left_open, p.right_open):
            return None
        ok = equal(g.start, p.start, ctx) and equal(g.end, p.end, ctx)
        return "same interval" if ok else None
    if isinstance(g, sympy.FiniteSet) and isinstance(p, (sympy.FiniteSet, sympy.Tuple)) or (
            isinstance(g, sympy.FiniteSet) and pair(p)):
        return "same elements" if _match_unordered(_elements(g, False), _elements(p, False), ctx) else None
    if (isinstance(g, sympy.Tuple) or pair(g)) and (isinstance(p, (sympy.Tuple, sympy.FiniteSet)) or pair(p)):
        gs, ps = _elements(g, True), _elements(p, True)
        ok = len(gs) == len(ps) and all(equal(a, b, ctx) for a, b in zip(gs, ps))
        return "same elements in order" if ok else None
    if isinstance(g, sympy.Set) and isinstance(p, sympy.Set):
        if isinstance(g, sympy.Union) and isinstance(p, sympy.Union):
            if _match_unordered(list(g.args), list(p.args), ctx):
                return "same union"
        return "equal sets" if sympy.simplify(g.symmetric_difference(p)) == sympy.S.EmptySet else None
    return None


def _collapse_chain(e):
    """`x = 2 \\cdot 3 = 6` is the equation x = 6: first left side, last right side."""
    links = getattr(e, "_unsorted_args", e.args) if isinstance(e, sympy.And) else ()
    if links and all(isinstance(link, sympy.Eq) for link in links):
        return sympy.Eq(links[0].lhs, links[-1].rhs, evaluate=False)
    return e


def _result_of_chain(e):
    """`2 \\times 3 = 6` (a computation without variables) stands for its value."""
    if isinstance(e, sympy.Eq) and not e.free_symbols:
        return e.rhs
    return e


def _undefined(e) -> bool:
    """`12:00` read as 12/0: an undefined value equals nothing, itself included."""
    return isinstance(e, sympy.Basic) and e.has(sympy.zoo, sympy.nan)


def _matrix(e):
    """A sum or product of explicit matrices, evaluated; a one-row or one-column matrix
    against a tuple compares as the tuple of its entries (a vector)."""
    if isinstance(e, sympy.MatrixExpr) and not isinstance(e, sympy.MatrixBase):
        e = e.doit()
    return e


def _matrix_equal(g, p, ctx) -> str | None:
    pair = lambda c: isinstance(c, sympy.Interval) and c.left_open and c.right_open  # noqa: E731
    g, p = (sympy.Tuple(c.start, c.end) if pair(c) else c for c in (g, p))   # `(1, 2)` read as an interval
    if isinstance(g, sympy.Tuple) or isinstance(p, sympy.Tuple):
        vector = lambda m: isinstance(m, sympy.MatrixBase) and 1 in m.shape  # noqa: E731
        if vector(g) or vector(p):
            gs, ps = list(g), list(p)
            same = len(gs) == len(ps) and all(equal(a, b, ctx) for a, b in zip(gs, ps))
            return "same vector" if same else None
        return None
    same = getattr(g, "shape", None) == getattr(p, "shape", None)
    return "same matrix" if same and all(equal(a, b, ctx) for a, b in zip(g, p)) else None


def _either_of(e, other):
    """`x < 0 \\text{ or } x > 1` (read as the list `x < 0, x > 1`) against a set: the union
    of the solution sets when they are disjoint, since "and" would leave nothing. Overlapping
    conditions (`x > 0, x < 1`) are ambiguous and stay as they are."""
    if not (isinstance(e, sympy.FiniteSet) and isinstance(other, sympy.Set) and not isinstance(other, sympy.FiniteSet)):
        return e
    if len(e) < 2 or not all(_is_relation(r) for r in e.args) or len({s for r in e.args for s in r.free_symbols}) != 1:
        return e
    sets = [_as_set(r) for r in e.args]
    if any(a.intersect(b) != sympy.S.EmptySet for i, a in enumerate(sets) for b in sets[i + 1:]):
        return e
    return sympy.Union(*sets)


def equal(g, p, ctx) -> str | None:
    """Reason why `p` (prediction) equals `g` (gold), or None."""
    if _undefined(g) or _undefined(p):
        return None
    if g == p or type(g) is type(p) and str(g) == str(p):   # same symbols, assumptions aside
        return "identical"
    g, p = _matrix(g), _matrix(p)
    if isinstance(g, sympy.MatrixBase) or isinstance(p, sympy.MatrixBase):
        return _matrix_equal(g, p, ctx)
    g, p = _collapse_chain(g), _collapse_chain(p)
    if not _is_relation(g):
        p = _result_of_chain(p)
    if _is_assignment(g) and not _is_relation(p):
        g = g.rhs
    if _is_assignment(p) and not _is_relation(g):
        p = p.rhs
    if isinstance(g, sympy.FiniteSet) and not isinstance(p, (sympy.Set, sympy.Tuple)) and len(g) == 1:
        g = g.args[0]
    if isinstance(p, sympy.FiniteSet) and not isinstance(g, (sympy.Set, sympy.Tuple)) and len(p) == 1:
        p = p.args[0]
    if _is_relation(g) and _is_relation(p):
        return relation_equal(g, p, ctx)
    g, p = _either_of(g, p), _either_of(p, g)
    if _is_relation(g) and isinstance(p, sympy.Set) and _as_set(g) is not None:
        g = _as_set(g)
    elif _is_relation(p) and isinstance(g, sympy.Set) and _as_set(p) is not None:
        p = _as_set(p)
    if isinstance(g, (sympy.Set, sympy.Tuple)) or isinstance(p, (sympy.Set, sympy.Tuple)):
        return container_equal(g, p, ctx)
    if _is_relation(g) or _is_relation(p):
        return None
    return expr_equal(g, p, ctx)


def _percent_variants(expr, percent_here: bool, percent_there: bool):
    """A percent sign on one side only: the number may mean x or x/100 (as in the fast path)."""
    if percent_here and not percent_there and isinstance(expr, sympy.Expr):
        return [expr, expr / 100]
    return [expr]


def _symbol(expr, name: str):
    return next((s for s in expr.free_symbols if s.name == name), None)


def _rename_argument(expr, argument: str | None, other, other_argument: str | None):
    """`expr` with its function argument renamed to the other side's variable (docstring)."""
    if not argument or not isinstance(expr, sympy.Basic) or not isinstance(other, sympy.Basic):
        return expr
    mine = _symbol(expr, argument.lower())
    theirs = other.free_symbols if other_argument is None else {_symbol(other, other_argument.lower())} - {None}
    if mine is None or expr.free_symbols != {mine} or len(theirs) != 1 or mine in other.free_symbols:
        return expr
    return expr.xreplace({mine: next(iter(theirs))})


def _imaginary_j(expr, other):
    """`3+2j` as `3+2i` against a non-real number (see the module docstring)."""
    j = _symbol(expr, "j") if isinstance(expr, sympy.Expr) else None
    if j is None or expr.free_symbols != {j} or not isinstance(other, sympy.Expr) or other.free_symbols:
        return expr
    return expr.xreplace({j: sympy.I}) if other.has(sympy.I) else expr


def _aligned(gold, pred, request: dict):
    """Both sides after the renaming rules: function arguments, `j` for `i`."""
    pred = _rename_argument(pred, request.get("pred_argument"), gold, request.get("gold_argument"))
    gold = _rename_argument(gold, request.get("gold_argument"), pred, request.get("pred_argument"))
    return _imaginary_j(gold, pred), _imaginary_j(pred, gold)


def check(request: dict) -> dict:
    """Decide one request {gold, pred, gold_percent, pred_percent, rel_tol, sig_digits, and
    optionally gold_argument, pred_argument}."""
    try:
        gold, _ = parse(request["gold"])
    except AnswerError as exc:
        return {"status": "gold_error", "error": str(exc)}
    try:
        pred, decimal = parse(request["pred"])
    except AnswerError as exc:
        return {"status": "error", "error": str(exc), "gold_parsed": str(gold)}
    ctx = {"decimal": decimal, "rel_tol": request["rel_tol"], "sig_digits": request["sig_digits"]}
    gold, pred = _aligned(gold, pred, request)
    reply = {"gold_parsed": str(gold), "answer_parsed": str(pred)}
    ordered = isinstance(gold, sympy.Tuple) or isinstance(gold, sympy.Interval) and gold.left_open and gold.right_open
    if ordered and isinstance(pred, sympy.FiniteSet) and request["pred"].lstrip().startswith("\\{"):
        return {**reply, "status": "failed", "reason": "a set in braces for an ordered pair or interval"}
    try:
        for g in _percent_variants(gold, request["gold_percent"], request["pred_percent"]):
            for p in _percent_variants(pred, request["pred_percent"], request["gold_percent"]):
                reason = equal(g, p, ctx)
                if reason:
                    return {**reply, "status": "passed", "reason": reason}
    except SYMPY_ERRORS as exc:
        return {**reply, "status": "error", "error": f"comparison failed: {type(exc).__name__}: {exc}"}
    return {**reply, "status": "failed", "reason": "not equivalent"}
