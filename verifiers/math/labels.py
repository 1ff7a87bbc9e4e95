"""Labels and text answers: the rules of the `math` verifier that read an answer's form
rather than its value. Pure standard library; they rewrite normalised strings before the
exact-number path and SymPy see them.

* A labelled answer stands for its value when the other side is not a relation:
  `(p,q)=(3,2)` is `(3,2)`, `S_{MBCN}:S=7:32` is `7:32`, `|AB|=1`, `f(x)=1`, `f^{-1}(x)=1`,
  `f'(x)=1`, `(f \\circ g)(x)=1`, `f(g(x))=1` and
  `\\frac{NO}{BO}=\\frac{1}{\\sqrt6}` are their right sides, and a list of labelled values
  (`AB=4, CD=5`, `x_1=.., x_2=..`) is its values: a set when the labels share one name
  (`x_1`, `x_2`: roots in any order), else a tuple in label order (`AB=4, CD=5` is not
  `5, 4`). Both sides labelled alike: values paired by label (`a=1, b=2` is `b=2, a=1`,
  not `a=2, b=1`; `W(n)` and `W(x)` name one function); different labels (`x=3`, `y=3`)
  are different answers. A label is a name, not an expression: `2x = 6` is an equation,
  never the label `2x` and the value 6. A chain `1 = a = x = 0` ends in its value (`0`)
  when its last left side is a label.
* Membership `z \\in S` is the set `S`; `0 < f(x) < 1` (a label between two bounds) is the
  interval `(0, 1)`. A bare variable between bounds (`1 < x < 2`) stays an inequality:
  SymPy compares it as a solution set, which also covers `1 \\le |z| \\le 3/2` against a
  union of intervals.
* Clock times (`12:00`, `1:05`) are compared as times, never as the ratio 12/0.
* Text answers: a word or sentence compares as text, case and spacing aside (`\\text{odd}`
  and `odd`, `\\text{Even}` and `Even`), never as the product of its letters.
"""

from __future__ import annotations

import re

# A name: letters or a command, digits, a subscript, primes, and an inverse or derivative
# order (`f^{-1}`, `f^{(2)}`).
_NAME = r"(?:[A-Za-z]+|\\[a-z]+)(?:\d+)?(?:_\{[^{}]{1,12}\}|_[A-Za-z0-9])?'*(?:\^\{?\\prime\}?|\^\{-1\}|\^\{\(\d\)\})?"
_CALL = rf"{_NAME}\s*\(\s*{_NAME}(?:\s*,\s*{_NAME})*\s*\)"
_LABEL = re.compile(
    rf"{_NAME}|{_CALL}|\(\s*{_NAME}\s*\\circ\s*{_NAME}\s*\)\s*\(\s*{_NAME}\s*\)|{_NAME}\s*\(\s*{_CALL}\s*\)|\|\s*{_NAME}\s*\||"
    rf"\(\s*{_NAME}(?:\s*,\s*{_NAME})+\s*\)|{_NAME}\s*:\s*{_NAME}|\\frac\{{\s*{_NAME}\s*\}}\{{\s*{_NAME}\s*\}}")
_RELATION = re.compile(r"<|>|\\[lg]eq?(?![a-z])|\\neq?(?![a-z])|\\in(?![a-z])|\\subset")
_LESS = r"(<|\\leq?(?![a-z]))"
_MORE = r"(>|\\geq?(?![a-z]))"
_BOUNDS = [re.compile(rf"^(.+?){op}\s*(?P<label>.+?)\s*{op2}(.+)$") for op, op2 in ((_LESS, _LESS), (_MORE, _MORE))]
_MEMBER = re.compile(rf"^\s*(?:{_NAME})\s*\\in(?![a-z])\s*(.+)$")
_GLUED_OR = re.compile(r"(?<=[\d)}])\s*(?:or|and)\s*(?=[A-Za-z\\(|])")
_FUNCTION = re.compile(rf"{_NAME}\s*\(\s*{_NAME}\s*\)|[A-Za-z]{{2,}}|[A-Za-z]_\{{?\w+\}}?")
_CLOCK = re.compile(r"^(\d{1,2}):([0-5]\d)$")
_TEXT = re.compile(r"^[A-Za-z][A-Za-z ,.'\-]*$")


def is_label(text: str) -> bool:
    return _LABEL.fullmatch(text.strip()) is not None


def _top_level(text: str, sep: str) -> list[str]:
    """`text` split at `sep` outside brackets and braces."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == sep and depth == 0 and not (sep == "=" and text[i - 1:i] in ("<", ">", "!", "\\")):
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


def _labelled(item: str) -> tuple[str, str] | None:
    """(label, value) of `label = value` (or of a chain ending `... = label = value`), else None."""
    sides = _top_level(item, "=")
    if len(sides) < 2 or not sides[-1].strip() or not is_label(sides[-2]):
        return None
    return sides[-2].strip(), sides[-1].strip()


def _labelled_items(text: str) -> list[tuple[str, str]] | None:
    """[(label, value)] of `label = value` or of a list of them, else None."""
    if "=" in text:
        text = _GLUED_OR.sub(", ", text)    # `W(x)=1orW(x)=-1`
    whole = _labelled(text)
    if whole is not None:
        return [whole]
    items = [_labelled(item) for item in _top_level(text, ",")]
    return items if len(items) > 1 and all(items) else None


def _values(items: list[tuple[str, str]]) -> str:
    """The values of labelled items: a list (a set of answers) when the labels share one name
    (`x_1, x_2`: roots; `W(n)` twice: cases), else a tuple in label order (`AB=4, CD=5`:
    each value belongs to its label, so `5, 4` is not the same answer)."""
    values = ", ".join(v for _, v in items)
    if len(items) == 1 or len({_base(k) for k, _ in items}) == 1:
        return values
    return f"({values})"


def function_argument(text: str) -> str | None:
    """The argument of a function label with one one-letter argument (`f(t) = t^2`: "t")."""
    items = _labelled_items(text) if "=" in text else None
    if not items or len(items) != 1:
        return None
    call = re.fullmatch(rf"{_NAME}\s*\(\s*([A-Za-z])\s*\)", items[0][0])
    return call.group(1) if call else None


def strip_labels(text: str) -> tuple[str, str | None]:
    """(the value of a labelled answer, the rule applied) or (text, None)."""
    items = _labelled_items(text)
    if items is None:
        return text, None
    return _values(items), "label stripped" if len(items) == 1 else "labelled list"


def _label_key(label: str) -> str:
    """A label without its arguments: `W(n)` and `W(x)` name the same function."""
    return re.sub(r"\s+", "", re.sub(r"\([^()]*\)", "()", label))


def _base(label: str) -> str:
    """The name of a label without subscripts, arguments or primes: `x_{1}` -> `x`."""
    return re.sub(r"_\{[^{}]*\}|_\w|'|\^\{?\\prime\}?", "", _label_key(label))


def _same_labels(gold: str, pred: str) -> tuple[str, str] | None:
    """Both sides labelled alike (`W(n)=1, W(n)=-1` and `W(x)=1 or W(x)=-1`; `a=1, b=2` and
    `b=2, a=1`): their values, the prediction's put in the gold's label order. Different
    labels (`x=3`, `y=3`) are different answers and stay as they are."""
    g, p = _labelled_items(gold), _labelled_items(pred)
    if not g or not p or len(g) != len(p) or len(g) == 1 and "(" not in g[0][0]:
        return None
    gkeys, pkeys = [_label_key(k) for k, _ in g], [_label_key(k) for k, _ in p]
    if sorted(gkeys) != sorted(pkeys):
        return None
    if len(set(gkeys)) == len(gkeys):           # distinct labels: pair the values by label
        by_label = dict(zip(pkeys, p))
        p = [by_label[k] for k in gkeys]
    return _values(g), _values(p)


def _as_interval(text: str) -> tuple[str, str | None]:
    """`a < f(x) < b` -> `(a, b)` when the middle is a function value, a subscripted or a
    multi-letter name: not a plain variable, whose solution set SymPy finds (nor `|z|`)."""
    for rx, flipped in zip(_BOUNDS, (False, True)):
        m = rx.match(text)
        if not m or not _FUNCTION.fullmatch(m.group("label").strip()):
            continue
        low, op1, op2, high = m.group(1).strip(), m.group(2), m.group(4), m.group(5).strip()
        if flipped:
            low, high, op1, op2 = high, low, op2, op1
        left = "(" if op1 in "<>" else "["
        right = ")" if op2 in "<>" else "]"
        return f"{left}{low}, {high}{right}", "bounds on a label as an interval"
    return text, None


def is_relation(text: str) -> bool:
    return bool(_RELATION.search(text)) or len(_top_level(text, "=")) > 1


def align(gold: str, pred: str) -> tuple[str, str, list[str]]:
    """Both normalised answers with label rules applied where the other side asks for a
    value (membership always); the names of the rules used."""
    rules = []
    for side in ("gold", "pred"):
        this = gold if side == "gold" else pred
        member = _MEMBER.match(this)
        if member:
            rules.append(f"{side}: membership")
            gold, pred = (member.group(1).strip(), pred) if side == "gold" else (gold, member.group(1).strip())
    same = _same_labels(gold, pred)
    if same is not None:
        return *same, [*rules, "same labels on both sides stripped"]
    for side in ("gold", "pred"):
        this, other = (gold, pred) if side == "gold" else (pred, gold)
        if is_relation(other):
            continue
        text, rule = strip_labels(this)
        if rule is None:
            text, rule = _as_interval(this)
        if rule is not None:
            rules.append(f"{side}: {rule}")
            gold, pred = (text, pred) if side == "gold" else (gold, text)
    return gold, pred, rules


def text_rule(gold: str, pred: str) -> tuple[bool, str] | None:
    """(passed, reason) for clock times and word answers; None when neither applies."""
    g, p = _CLOCK.match(gold.strip()), _CLOCK.match(pred.strip())
    if g and p:
        same = (int(g.group(1)), g.group(2)) == (int(p.group(1)), p.group(2))
        return same, "same clock time" if same else "different clock times"
    if _is_words(gold) and _is_words(pred):
        same = _words(gold) == _words(pred)
        return same, "same words" if same else "different words"
    return None


def _is_words(text: str) -> bool:
    """A word answer: letters, with a word of 3+ letters (`x`, `xy` are variables)."""
    return bool(_TEXT.match(text.strip())) and bool(re.search(r"[A-Za-z]{3,}", text))


def _words(text: str) -> str:
    return " ".join(re.findall(r"[A-Za-z]+", text.lower()))
