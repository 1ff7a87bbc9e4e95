"""The wire format of values that cross a sandbox boundary, and its strict decoder.

Used on both sides: the sandbox loads this file by path (standard library only), the parent
imports it. A value travels as JSON in which every object is a one-key tag, so that tuples,
sets, dicts with any keys, bytes, big ints and non-finite floats survive the trip:

| value | wire |
| --- | --- |
| `None`, `bool`, `str`, finite `float`, `int` below 2**62 | itself |
| `list` | a JSON array of wire values |
| `tuple` / `set` / `frozenset` | `{"$tuple": [...]}` / `{"$set": [...]}` / `{"$frozenset": [...]}` |
| `dict` | `{"$dict": [[key, value], ...]}` |
| other `int`, other `float` | `{"$int": hex}`, `{"$float": repr}` |
| `bytes`, `complex` | `{"$bytes": hex}`, `{"$complex": [real, imag]}` |

Decoding trusts nothing: `loads` refuses more than `max_bytes`, JSON constants (`NaN`), objects
that are not one known tag, and nesting deeper than `MAX_DEPTH`, all with `WireError` (one
narrow type, which the `code` verifier turns into that sample's `error` verdict). `decode`
builds only builtin plain types; `canonical` builds a string that compares like Python's `==`
on plain data (lists and tuples alike), with sets and dict items sorted rather than hashed, so
that a million hash-colliding ints cost a sort, not a quadratic set build. Both run in time
linear in the input's size times its depth, which are capped.
"""

from __future__ import annotations

import json
import math

MAX_DEPTH = 100        # containers inside containers, on every side of the boundary
MAX_SAME_HASH = 64     # set elements or dict keys with one hash value (see `_few_collisions`)


class WireError(ValueError):
    """A value that is not plain data, or a malformed encoding of one."""


_BASES = (bool, int, float, complex, str, bytes, tuple, list, dict, set, frozenset)
# Exact copies that do not call methods a subclass may override.
_EXACT = {int: int.__int__, float: float.__float__, str: str.__str__, bytes: lambda v: bytes(memoryview(v)),
          complex: lambda v: complex(complex.real.__get__(v), complex.imag.__get__(v)),
          tuple: tuple, list: list, dict: dict, set: set, frozenset: frozenset}


def to_wire(value, depth: int = 0):
    """Plain data -> a JSON-able tree. Subclasses of the builtin types become their base type
    (their methods are not trusted); anything else, or nesting deeper than `MAX_DEPTH`,
    raises `WireError`."""
    t = type(value)
    if value is None or t is bool or t is str:
        return value
    if t is int:
        return value if -(1 << 62) < value < (1 << 62) else {"$int": hex(value)}
    if t is float:
        return value if math.isfinite(value) else {"$float": repr(value)}
    if t is bytes:
        return {"$bytes": value.hex()}
    if t is complex:
        return {"$complex": [to_wire(value.real), to_wire(value.imag)]}
    if t in (list, tuple, set, frozenset, dict):
        if depth >= MAX_DEPTH:
            raise WireError(f"nested deeper than {MAX_DEPTH}")
        if t is dict:
            return {"$dict": [[to_wire(k, depth + 1), to_wire(v, depth + 1)] for k, v in value.items()]}
        items = [to_wire(v, depth + 1) for v in value]
        return items if t is list else {"$" + t.__name__: items}
    for base in _BASES[1:]:
        if isinstance(value, base):
            return to_wire(_EXACT[base](value), depth)
    raise WireError(f"{t.__name__} is not plain data")


def _refuse_constant(name: str):
    raise WireError(f"JSON constant {name} is not wire data")


def loads(data: bytes, max_bytes: int):
    """Untrusted bytes -> a JSON tree (not yet checked: `decode` or `canonical` do that)."""
    if len(data) > max_bytes:
        raise WireError(f"{len(data)} bytes, more than the {max_bytes} allowed")
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except WireError:
        raise
    except (ValueError, RecursionError, MemoryError) as exc:  # bad UTF-8/JSON, huge int literal, deep nesting
        raise WireError(f"not wire data: {type(exc).__name__}: {str(exc)[:120]}") from None


def _tag(tree, depth: int) -> tuple[str, object]:
    if depth >= MAX_DEPTH:
        raise WireError(f"nested deeper than {MAX_DEPTH}")
    if type(tree) is not dict or len(tree) != 1:
        raise WireError(f"malformed value {_peek(tree)}")
    (tag, body), = tree.items()
    if tag in ("$tuple", "$set", "$frozenset", "$dict", "$complex") and type(body) is not list:
        raise WireError(f"malformed {tag}: {_peek(body)}")
    if tag in ("$int", "$float", "$bytes") and type(body) is not str:
        raise WireError(f"malformed {tag}: {_peek(body)}")
    return tag, body


def _peek(tree) -> str:
    return f"of type {type(tree).__name__}" if type(tree) in (dict, list) else repr(tree)[:60]


def _scalar(tag: str, body):
    try:
        if tag == "$int":
            return int(body, 16)
        if tag == "$float":
            value = float(body)
            if math.isfinite(value):
                raise WireError("malformed $float: finite values travel as JSON numbers")
            return value
        if tag == "$bytes":
            return bytes.fromhex(body)
    except ValueError as exc:
        raise WireError(f"malformed {tag}: {str(exc)[:80]}") from None
    raise WireError(f"unknown tag {tag[:40]!r}")


def decode(tree, depth: int = 0):
    """A checked JSON tree -> plain Python values (builtin types only)."""
    t = type(tree)
    if tree is None or t is bool or t is int or t is float or t is str:
        return tree
    if t is list:
        if depth >= MAX_DEPTH:
            raise WireError(f"nested deeper than {MAX_DEPTH}")
        return [decode(v, depth + 1) for v in tree]
    tag, body = _tag(tree, depth)
    if tag == "$complex":
        parts = [decode(v, depth + 1) for v in body]
        if len(parts) != 2 or not all(type(p) in (int, float) for p in parts):
            raise WireError("malformed $complex")
        try:
            return complex(*parts)
        except OverflowError:  # an int part too large for a float: no such complex exists
            raise WireError("malformed $complex: a part is out of range") from None
    if tag == "$dict":
        pairs = [(decode(k, depth + 1), decode(v, depth + 1)) for k, v in (_pair(p, depth) for p in body)]
        try:
            _few_collisions([k for k, _ in pairs])
            return dict(pairs)
        except TypeError as exc:  # an unhashable key
            raise WireError(f"malformed $dict: {exc}") from None
    if tag in ("$tuple", "$set", "$frozenset"):
        items = [decode(v, depth + 1) for v in body]
        try:
            if tag != "$tuple":
                _few_collisions(items)
            return {"$tuple": tuple, "$set": set, "$frozenset": frozenset}[tag](items)
        except TypeError as exc:
            raise WireError(f"malformed {tag}: {exc}") from None
    return _scalar(tag, body)


def _few_collisions(keys: list) -> None:
    """Refuse set elements or dict keys crafted to share a hash (ints that differ by multiples
    of 2**61 - 1 do): building the set would take quadratic time. Counting hash values is
    linear, since distinct hash values never collide as keys. Honest data never comes close."""
    counts: dict = {}
    for key in keys:
        h = hash(key)
        counts[h] = counts.get(h, 0) + 1
        if counts[h] > MAX_SAME_HASH:
            raise WireError(f"more than {MAX_SAME_HASH} set elements or dict keys with the same hash")


def _pair(pair, depth: int):
    if type(pair) is not list or len(pair) != 2:
        raise WireError(f"malformed $dict item {_peek(pair)}")
    return pair


from_wire = decode  # the older name


class _Nan:
    """Makes each NaN's canonical form unique: NaN equals nothing, as in Python."""
    count = 0


def canonical(tree, depth: int = 0) -> str:
    """A checked JSON tree -> a string equal for values Python's `==` finds equal, lists and
    tuples being interchangeable (JSON has no tuples), sets and dict items sorted, not hashed.

    >>> canonical(to_wire((1, [2.0, True]))) == canonical([1.0, (2, 1)])
    True
    >>> canonical(to_wire({3, 1})) == canonical(to_wire(frozenset({1, 3}))), canonical([1]) == canonical(to_wire({1}))
    (True, False)
    """
    t = type(tree)
    if tree is None:
        return "N"
    if t is bool or t is int:
        return _number(int(tree))
    if t is float:
        return _float(tree)
    if t is str:
        return "s" + json.dumps(tree)
    if t is list:
        if depth >= MAX_DEPTH:
            raise WireError(f"nested deeper than {MAX_DEPTH}")
        return "[" + ",".join(canonical(v, depth + 1) for v in tree) + "]"
    tag, body = _tag(tree, depth)
    if tag == "$tuple":
        return canonical(body, depth)
    if tag in ("$set", "$frozenset"):
        items = sorted(canonical(v, depth + 1) for v in body)
        return "{" + ",".join(v for i, v in enumerate(items) if i == 0 or v != items[i - 1]) + "}"
    if tag == "$dict":
        items = sorted((canonical(k, depth + 1), canonical(v, depth + 1)) for k, v in map(lambda p: _pair(p, depth), body))
        if any(items[i][0] == items[i - 1][0] for i in range(1, len(items))):
            raise WireError("malformed $dict: a key appears twice")
        return "d{" + ",".join(k + ":" + v for k, v in items) + "}"
    if tag == "$complex":
        if len(body) != 2 or not all(type(p) in (int, float) or type(p) is dict for p in body):
            raise WireError("malformed $complex")
        real, imag = (decode(p, depth + 1) for p in body)
        if type(real) not in (int, float) or type(imag) not in (int, float):
            raise WireError("malformed $complex")
        try:
            real, imag = float(real), float(imag)  # what complex() would hold
        except OverflowError:
            raise WireError("malformed $complex: a part is out of range") from None
        if imag == 0:  # 2+0j == 2
            return _float(real)
        return "c(" + _float(real) + "," + _float(imag) + ")"
    value = _scalar(tag, body)
    if type(value) is bytes:
        return "b" + body.lower()
    return _number(value) if type(value) is int else _float(value)


def _number(value: int) -> str:
    return "i" + hex(value)  # hex, not str: linear for big ints, and no digit limit


def _float(value: float) -> str:
    if math.isnan(value):
        _Nan.count += 1
        return f"nan#{_Nan.count}"
    if math.isfinite(value) and value == int(value):
        return _number(int(value))  # 2.0 == 2, -0.0 == 0
    return "f" + repr(value)
