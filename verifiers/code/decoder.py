"""The strict decoder of the wire format (`wire.py`): untrusted JSON trees -> Python values.

Used on both sides: the sandbox loads this file by path (standard library only), the parent
imports it. It trusts nothing: an object that is not exactly one known tag, a malformed body,
nesting deeper than the depth limit, a rational past `MAX_RATIONAL_BITS`, set elements or keys
crafted to share one hash, all raise `WireError`; it builds only builtin and standard-library
value types (and numpy arrays, where numpy is importable), and what a hook builds for the
channel's own tags (`channel.py`). Time is linear in the input's size times its depth.
"""

from __future__ import annotations

import builtins
import importlib
import math
import re
from collections import Counter, OrderedDict, defaultdict, deque

try:
    from _sandbox_wire import DTYPE, MAX_DEPTH, SAFE_BUILTINS, WireError, room
except ImportError:  # pragma: no cover - imported from the package
    from verifiers.code.wire import DTYPE, MAX_DEPTH, SAFE_BUILTINS, WireError, room

MAX_SAME_HASH = 64         # set elements or dict keys with one hash value (see `_few_collisions`)
MAX_RATIONAL_BITS = 1 << 16  # numerator and denominator of a $fraction
_DECIMAL = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|Infinity|Inf|NaN|sNaN)\Z", re.IGNORECASE)
MAX_ROWS = 1 << 20         # rows of an $ndarray (an array of shape (10**9, 0) holds no values, but 10**9 rows)


class Decoder:
    """Checked JSON trees -> Python values (builtin and standard-library value types only).
    `hook(decoder, tag, body, depth)` decodes the tags this module does not know (or raises
    `WireError`); with `identities`, containers are numbered as the `Encoder` numbered them,
    after the `objects` given (those an earlier message numbered: `$same` refers to them)."""

    def __init__(self, hook=None, identities: bool = False, objects: list | None = None,
                 max_depth: int = MAX_DEPTH):
        self.hook, self.max_depth = hook, max_depth
        self.objects: list | None = (objects if objects is not None else []) if identities else None

    def number(self, value) -> None:
        if self.objects is not None:
            self.objects.append(value)

    def decode(self, tree, depth: int = 0, top: bool = True):
        """`top=False` decodes a numbered container's contents (`body`) without numbering it."""
        t = type(tree)
        if tree is None or t is bool or t is int or t is float or t is str:
            return tree
        if depth == 0:
            return room(self._container, self.max_depth, tree, t, depth, top)
        return self._container(tree, t, depth, top)

    def _container(self, tree, t, depth: int, top: bool):
        if depth >= self.max_depth:
            raise WireError(f"nested deeper than {self.max_depth}")
        if t is list:
            out: list = []
            if top:
                self.number(out)
            out.extend([self.decode(v, depth + 1) for v in tree])
            return out
        if t is not dict or len(tree) != 1:
            raise WireError(f"malformed value {_peek(tree)}")
        (tag, body), = tree.items()
        if tag == "$same" and self.objects is not None:
            if type(body) is not int or not 0 <= body < len(self.objects):
                raise WireError(f"malformed $same: {_peek(body)}")
            return self.objects[body]
        this = self if top else _Unnumbered(self)  # a body: the container itself is already numbered
        decode = _DECODE.get(tag)
        if decode is not None:
            return decode(this, body, depth + 1)
        if self.hook is not None and type(tag) is str and tag.startswith("$"):
            return self.hook(this, tag, body, depth + 1)
        raise WireError(f"unknown tag {str(tag)[:40]!r}")

    def body(self, tree, depth: int = 0):
        return self.decode(tree, depth, top=False)

    def items(self, body, depth: int, what: str) -> list:
        if type(body) is not list:
            raise WireError(f"malformed {what}: {_peek(body)}")
        return [self.decode(v, depth) for v in body]

    def pairs(self, body, depth: int, what: str) -> list:
        if type(body) is not list or not all(type(p) is list and len(p) == 2 for p in body):
            raise WireError(f"malformed {what}: {_peek(body)}")
        pairs = [(self.decode(k, depth), self.decode(v, depth)) for k, v in body]
        _few_collisions([k for k, _ in pairs], what)
        return pairs


class _Unnumbered:
    """A decoder's view that does not number the next container (the top of a `body`)."""

    def __init__(self, decoder: Decoder):
        self._decoder = decoder

    def number(self, value) -> None:
        self.number = self._decoder.number  # the next ones are numbered again

    def __getattr__(self, name):
        return getattr(self._decoder, name)


def _peek(tree) -> str:
    return f"of type {type(tree).__name__}" if type(tree) in (dict, list) else repr(tree)[:60]


def _few_collisions(keys: list, what: str) -> None:
    """Refuse set elements or dict keys crafted to share a hash (ints that differ by multiples
    of 2**61 - 1 do): building the set would take quadratic time. Counting hash values is
    linear, since distinct hash values never collide as keys. Honest data never comes close."""
    counts: dict = {}
    try:
        for key in keys:
            h = hash(key)
            counts[h] = counts.get(h, 0) + 1
            if counts[h] > MAX_SAME_HASH:
                raise WireError(f"more than {MAX_SAME_HASH} set elements or dict keys with the same hash")
    except TypeError as exc:  # an unhashable key
        raise WireError(f"malformed {what}: {exc}") from None


def _fill(dec, out, body, depth: int, what: str):
    dec.number(out)
    for k, v in dec.pairs(body, depth, what):
        out[k] = v
    return out


def _decode_set(kind):
    def decode(dec, body, depth):
        out = kind()
        if kind is set:
            dec.number(out)
        items = dec.items(body, depth, "$set")
        _few_collisions(items, "$set")
        return out | kind(items) if kind is frozenset else (out.update(items) or out)
    return decode


def _decode_ddict(dec, body, depth):
    if type(body) is not list or len(body) != 2:
        raise WireError(f"malformed $ddict: {_peek(body)}")
    factory = dec.decode(body[0], depth)
    if factory is not None and not callable(factory):
        raise WireError("malformed $ddict: the factory is not callable")
    return _fill(dec, defaultdict(factory), body[1], depth, "$ddict")


def _decode_deque(dec, body, depth):
    if type(body) is not list or len(body) != 2 or not (body[1] is None or type(body[1]) is int and body[1] >= 0):
        raise WireError(f"malformed $deque: {_peek(body)}")
    out = deque(maxlen=body[1])
    dec.number(out)
    out.extend(dec.items(body[0], depth, "$deque"))
    return out


def _hex(body, what: str, kind=bytes):
    if type(body) is not str:
        raise WireError(f"malformed {what}: {_peek(body)}")
    try:
        return kind.fromhex(body)
    except ValueError as exc:
        raise WireError(f"malformed {what}: {str(exc)[:80]}") from None


def _decode_bytearray(dec, body, depth):
    out = _hex(body, "$bytearray", bytearray)
    dec.number(out)
    return out


def decode_int(body, what: str = "$int") -> int:
    if type(body) is int:
        return body
    if type(body) is dict and len(body) == 1 and type(body.get("$int")) is str:
        try:
            return int(body["$int"], 16)
        except ValueError:
            pass
    raise WireError(f"malformed {what}: {_peek(body)}")


def decode_float(body) -> float:
    if type(body) is not str:
        raise WireError(f"malformed $float: {_peek(body)}")
    try:
        value = float(body)
    except ValueError:
        raise WireError(f"malformed $float: {body[:40]!r}") from None
    if math.isfinite(value):
        raise WireError("malformed $float: finite values travel as JSON numbers")
    return value


def _decode_complex(dec, body, depth):
    parts = dec.items(body, depth, "$complex")
    if len(parts) != 2 or not all(type(p) in (int, float) for p in parts):
        raise WireError("malformed $complex")
    try:
        return complex(*parts)
    except OverflowError:  # an int part too large for a float: no such complex exists
        raise WireError("malformed $complex: a part is out of range") from None


def decode_rational(body) -> tuple[int, int]:
    """The (numerator, denominator) of a `$fraction` body, reduced, denominator positive."""
    if type(body) is not list or len(body) != 2:
        raise WireError(f"malformed $fraction: {_peek(body)}")
    num, den = (decode_int(v, "$fraction") for v in body)
    if den == 0 or max(num.bit_length(), den.bit_length()) > MAX_RATIONAL_BITS:
        raise WireError("malformed $fraction: a zero or too large denominator, or too large a numerator")
    g = math.gcd(num, den) * (-1 if den < 0 else 1)
    return num // g, den // g


def _decode_fraction(dec, body, depth):
    from fractions import Fraction

    return Fraction(*decode_rational(body))


def check_decimal(body) -> str:
    if type(body) is not str or len(body) > 10_000 or not _DECIMAL.match(body):
        raise WireError(f"malformed $decimal: {_peek(body)}")
    return body


def _decode_decimal(dec, body, depth):
    from decimal import Decimal

    return Decimal(check_decimal(body))


def decode_range(body) -> range:
    if type(body) is not list or len(body) != 3:
        raise WireError(f"malformed $range: {_peek(body)}")
    start, stop, step = (decode_int(v, "$range") for v in body)
    if step == 0:
        raise WireError("malformed $range: a zero step")
    return range(start, stop, step)


def _decode_ntuple(dec, body, depth):
    if type(body) is not list or len(body) != 3 or type(body[0]) is not str or type(body[1]) is not list:
        raise WireError(f"malformed $ntuple: {_peek(body)}")
    name, fields, values = body[0], body[1], dec.items(body[2], depth, "$ntuple")
    if len(fields) != len(values) or not all(type(f) is str for f in fields):
        raise WireError("malformed $ntuple: fields and values differ")
    return _namedtuple(name, tuple(fields))(*values)


_NAMEDTUPLES: dict = {}


def _namedtuple(name: str, fields: tuple):
    key = (name, fields)
    if key not in _NAMEDTUPLES:
        from collections import namedtuple

        try:
            cls = namedtuple(name, fields)
        except (ValueError, TypeError, SyntaxError) as exc:
            raise WireError(f"malformed $ntuple: {str(exc)[:80]}") from None
        cls.__module__ = "__main__"
        if len(_NAMEDTUPLES) < 256:
            _NAMEDTUPLES[key] = cls
        return cls
    return _NAMEDTUPLES[key]


def _decode_view(kind):
    def decode(dec, body, depth):
        if kind == "$items":
            return dict(dec.pairs(body, depth, kind)).items()
        items = dec.items(body, depth, kind)
        if kind == "$keys":
            _few_collisions(items, kind)
            return dict.fromkeys(items).keys()
        return dict(enumerate(items)).values()
    return decode


def check_ndarray(body) -> tuple[str, list | None, list]:
    """The (dtype, shape, flat values) of an `$ndarray` body, checked."""
    if type(body) is not list or len(body) != 3 or type(body[0]) is not str or not DTYPE.match(body[0]):
        raise WireError(f"malformed $ndarray: {_peek(body)}")
    dtype, shape, data = body
    if type(data) is not list or not (shape is None and len(data) == 1 or type(shape) is list and len(shape) <= 32
                                      and all(type(n) is int and n >= 0 for n in shape)
                                      and math.prod(shape) == len(data)
                                      and all(math.prod(shape[:k]) <= MAX_ROWS for k in range(len(shape)))):
        raise WireError("malformed $ndarray: the shape does not match the values")
    return dtype, shape, data


def _decode_ndarray(dec, body, depth):
    dtype, shape, data = check_ndarray(body)
    try:  # numpy is optional: importable where the `packages` option allows it
        numpy = importlib.import_module("numpy")
    except ImportError:
        raise WireError("a numpy array, and numpy is not available here") from None
    values = [dec.decode(v, depth) for v in data]
    try:
        if shape is None:
            return numpy.dtype(dtype).type(values[0])
        out = numpy.array(values, dtype=dtype).reshape(shape)
    except (ValueError, TypeError, OverflowError) as exc:
        raise WireError(f"malformed $ndarray: {str(exc)[:80]}") from None
    dec.number(out)
    return out


def _decode_builtin(dec, body, depth):
    if type(body) is not str or body not in SAFE_BUILTINS:
        raise WireError(f"malformed $builtin: {_peek(body)}")
    return getattr(builtins, body)


_DECODE = {
    "$tuple": lambda dec, body, depth: tuple(dec.items(body, depth, "$tuple")),
    "$set": _decode_set(set), "$frozenset": _decode_set(frozenset),
    "$dict": lambda dec, body, depth: _fill(dec, {}, body, depth, "$dict"),
    "$counter": lambda dec, body, depth: _fill(dec, Counter(), body, depth, "$counter"),
    "$odict": lambda dec, body, depth: _fill(dec, OrderedDict(), body, depth, "$odict"),
    "$ddict": _decode_ddict, "$deque": _decode_deque,
    "$int": lambda dec, body, depth: decode_int({"$int": body}),
    "$float": lambda dec, body, depth: decode_float(body),
    "$bytes": lambda dec, body, depth: _hex(body, "$bytes"),
    "$bytearray": _decode_bytearray, "$complex": _decode_complex,
    "$fraction": _decode_fraction, "$decimal": _decode_decimal,
    "$range": lambda dec, body, depth: decode_range(body),
    "$ntuple": _decode_ntuple,
    "$keys": _decode_view("$keys"), "$values": _decode_view("$values"), "$items": _decode_view("$items"),
    "$ndarray": _decode_ndarray, "$builtin": _decode_builtin,
}
