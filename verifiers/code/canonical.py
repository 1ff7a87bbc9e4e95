"""The canonical form of a wire tree: how the parent compares `call` results with expected values.

Results are never decoded into Python objects here: `canonical` builds a string that is equal
for two trees exactly when Python's `==` finds their values equal, with three documented
departures: lists and tuples (namedtuples too) are interchangeable, since JSON has no tuples;
Counters and OrderedDicts compare as the dicts they hold (as they do against a plain dict);
and a numpy array compares as the nested lists it holds. Set elements and dict items are
sorted, not hashed, so a million hash-colliding ints cost a sort, not a quadratic set build.
Numbers compare across types as in Python: `1 == 1.0 == Fraction(1) == Decimal("1.0")`,
`0.5 == Fraction(1, 2)`, `2 + 0j == 2`. A Decimal whose exponent passes +-`DECIMAL_EXPONENT`
keeps its own form (equal to another Decimal of the same value only). Time is linear in the
tree's size times its depth (both capped); anything malformed raises `WireError`.

>>> from verifiers.code.wire import to_wire
>>> canonical(to_wire((1, [2.0, True]))) == canonical(to_wire([1.0, (2, 1)]))
True
>>> canonical(to_wire({3, 1})) == canonical(to_wire(frozenset({1, 3}))), canonical([1]) == canonical(to_wire({1}))
(True, False)
"""

from __future__ import annotations

import json
import math

from verifiers.code.decoder import (
    _peek,
    check_decimal,
    check_ndarray,
    decode_float,
    decode_int,
    decode_range,
    decode_rational,
)
from verifiers.code.wire import MAX_DEPTH, SAFE_BUILTINS, WireError, room

DECIMAL_EXPONENT = 4000


class _Nan:
    """Makes each NaN's canonical form unique: NaN equals nothing, as in Python."""
    count = 0


def canonical(tree, depth: int = 0, max_depth: int = MAX_DEPTH) -> str:
    """A wire tree -> a string equal for values Python's `==` finds equal (see the module)."""
    t = type(tree)
    if tree is None:
        return "N"
    if t is bool or t is int:
        return _number(int(tree))
    if t is float:
        return _float(tree)
    if t is str:
        return "s" + json.dumps(tree)
    if depth == 0:
        return room(_container, max_depth, tree, t, depth, max_depth)
    return _container(tree, t, depth, max_depth)


def _container(tree, t, depth: int, max_depth: int) -> str:
    if depth >= max_depth:
        raise WireError(f"nested deeper than {max_depth}")
    if t is list:
        return "[" + ",".join(canonical(v, depth + 1, max_depth) for v in tree) + "]"
    if t is not dict or len(tree) != 1:
        raise WireError(f"malformed value {_peek(tree)}")
    (tag, body), = tree.items()
    form = _FORMS.get(tag)
    if form is None:
        raise WireError(f"unknown tag {str(tag)[:40]!r}")
    return form(body, depth + 1, max_depth)


def _items(body, depth: int, max_depth: int, what: str) -> list[str]:
    if type(body) is not list:
        raise WireError(f"malformed {what}: {_peek(body)}")
    return [canonical(v, depth, max_depth) for v in body]


def _set(items: list[str]) -> str:
    items.sort()
    return "{" + ",".join(v for i, v in enumerate(items) if i == 0 or v != items[i - 1]) + "}"


def _dict(body, depth: int, max_depth: int, what: str = "$dict") -> str:
    if type(body) is not list or not all(type(p) is list and len(p) == 2 for p in body):
        raise WireError(f"malformed {what}: {_peek(body)}")
    items = sorted((canonical(k, depth, max_depth), canonical(v, depth, max_depth)) for k, v in body)
    if any(items[i][0] == items[i - 1][0] for i in range(1, len(items))):
        raise WireError(f"malformed {what}: a key appears twice")
    return "d{" + ",".join(k + ":" + v for k, v in items) + "}"


def _ddict(body, depth: int, max_depth: int) -> str:
    if type(body) is not list or len(body) != 2:
        raise WireError(f"malformed $ddict: {_peek(body)}")
    return _dict(body[1], depth, max_depth, "$ddict")  # the factory does not take part in ==


def _deque(body, depth: int, max_depth: int) -> str:
    if type(body) is not list or len(body) != 2 or not (body[1] is None or type(body[1]) is int):
        raise WireError(f"malformed $deque: {_peek(body)}")
    return "Q[" + ",".join(_items(body[0], depth, max_depth, "$deque")) + "]"  # a deque equals deques only


def _ntuple(body, depth: int, max_depth: int) -> str:
    if type(body) is not list or len(body) != 3:
        raise WireError(f"malformed $ntuple: {_peek(body)}")
    return "[" + ",".join(_items(body[2], depth, max_depth, "$ntuple")) + "]"  # == compares as a tuple


def _complex(body, depth: int, max_depth: int) -> str:
    if type(body) is not list or len(body) != 2:
        raise WireError(f"malformed $complex: {_peek(body)}")
    real, imag = (_part(p) for p in body)
    try:
        real, imag = float(real), float(imag)  # what complex() would hold
    except OverflowError:
        raise WireError("malformed $complex: a part is out of range") from None
    if imag == 0:  # 2+0j == 2
        return _float(real)
    return "c(" + _float(real) + "," + _float(imag) + ")"


def _part(tree) -> int | float:
    if type(tree) is float:
        return tree
    if type(tree) is dict and len(tree) == 1 and "$float" in tree:
        return decode_float(tree["$float"])
    return decode_int(tree, "$complex")


def _decimal(body, depth: int, max_depth: int) -> str:
    from decimal import Decimal

    value = Decimal(check_decimal(body))
    if value.is_nan():
        return _float(math.nan)
    if value.is_infinite():
        return _float(math.inf if value > 0 else -math.inf)
    exponent = value.as_tuple().exponent
    if abs(exponent) > DECIMAL_EXPONENT or value.adjusted() > DECIMAL_EXPONENT:
        return "D" + str(value.normalize())  # too large to make exact cheaply: equal to the same Decimal only
    return _rational(*value.as_integer_ratio())


def _range(body, depth: int, max_depth: int) -> str:
    r = decode_range(body)  # range == range compares the sequences: range(0, 3, 2) == range(0, 4, 2)
    n = max(0, (r.stop - r.start + r.step - (1 if r.step > 0 else -1)) // r.step)
    return f"R{n:x},{r.start if n else 0:x},{r.step if n > 1 else 1:x}"


def _ndarray(body, depth: int, max_depth: int) -> str:
    dtype, shape, data = check_ndarray(body)
    if shape is None:
        return canonical(data[0], depth, max_depth)
    flat = _items(data, depth + len(shape), max_depth, "$ndarray")
    return _nest(flat, shape) if shape else flat[0]


def _nest(flat: list[str], shape: list[int]) -> str:
    if len(shape) == 1:
        return "[" + ",".join(flat) + "]"
    size = math.prod(shape[1:])
    return "[" + ",".join(_nest(flat[i * size:(i + 1) * size], shape[1:]) for i in range(shape[0])) + "]"


def _rational(num: int, den: int) -> str:
    if den == 1:
        return _number(num)
    try:
        value = num / den  # correctly rounded
    except OverflowError:
        value = math.inf
    if math.isfinite(value) and value.as_integer_ratio() == (num, den):
        return _float(value)  # 0.5 == Fraction(1, 2)
    return f"q{num:x}/{den:x}"


def _number(value: int) -> str:
    return "i" + hex(value)  # hex, not str: linear for big ints, and no digit limit


def _float(value: float) -> str:
    if math.isnan(value):
        _Nan.count += 1
        return f"nan#{_Nan.count}"
    if math.isfinite(value) and value == int(value):
        return _number(int(value))  # 2.0 == 2, -0.0 == 0
    return "f" + repr(value)


def _keys(body, depth: int, max_depth: int) -> str:
    return _set(_items(body, depth, max_depth, "$keys"))  # a keys view equals a set of its keys


def _view_items(body, depth: int, max_depth: int) -> str:
    _dict(body, depth, max_depth, "$items")  # checks the pairs, and that no key repeats
    return _set(["[" + canonical(k, depth, max_depth) + "," + canonical(v, depth, max_depth) + "]" for k, v in body])


def _values(body, depth: int, max_depth: int) -> str:
    _items(body, depth, max_depth, "$values")
    return _float(math.nan)  # a values view equals nothing, itself included


_FORMS = {
    "$tuple": lambda body, d, m: "[" + ",".join(_items(body, d, m, "$tuple")) + "]",
    "$set": lambda body, d, m: _set(_items(body, d, m, "$set")),
    "$frozenset": lambda body, d, m: _set(_items(body, d, m, "$frozenset")),
    "$dict": _dict, "$counter": lambda body, d, m: _dict(body, d, m, "$counter"),
    "$odict": lambda body, d, m: _dict(body, d, m, "$odict"), "$ddict": _ddict, "$deque": _deque,
    "$ntuple": _ntuple, "$complex": _complex,
    "$int": lambda body, d, m: _number(decode_int({"$int": body})),
    "$float": lambda body, d, m: _float(decode_float(body)),
    "$bytes": lambda body, d, m: "b" + _hex(body, "$bytes"),
    "$bytearray": lambda body, d, m: "b" + _hex(body, "$bytearray"),  # bytearray(b"a") == b"a"
    "$fraction": lambda body, d, m: _rational(*decode_rational(body)),
    "$decimal": _decimal, "$range": _range, "$ndarray": _ndarray,
    "$keys": _keys, "$items": _view_items, "$values": _values,
    "$builtin": lambda body, d, m: "B" + str(_builtin(body)),
}


def _builtin(body) -> str:
    if type(body) is not str or body not in SAFE_BUILTINS:
        raise WireError(f"malformed $builtin: {_peek(body)}")
    return body


def _hex(body, what: str) -> str:
    if type(body) is not str:
        raise WireError(f"malformed {what}: {_peek(body)}")
    try:
        return bytes.fromhex(body).hex()
    except ValueError as exc:
        raise WireError(f"malformed {what}: {str(exc)[:80]}") from None

