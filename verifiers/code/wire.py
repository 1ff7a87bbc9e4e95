"""The wire format of values that cross a sandbox boundary, and its strict decoder.

Used on both sides: the sandbox loads this file by path (standard library only), the parent
imports it. A value travels as JSON in which every object is a one-key tag, so that tuples,
sets, dicts with any keys, bytes, big ints, non-finite floats and the standard library's
common value types survive the trip:

| value | wire |
| --- | --- |
| `None`, `bool`, `str`, finite `float`, `int` below 2**62 | itself |
| `list` | a JSON array of wire values |
| `tuple` / `set` / `frozenset` | `{"$tuple": [...]}` / `{"$set": [...]}` / `{"$frozenset": [...]}` |
| `dict` / `Counter` / `OrderedDict` | `{"$dict": [[key, value], ...]}` / `{"$counter": ...}` / `{"$odict": ...}` |
| `defaultdict`, `deque` | `{"$ddict": [factory, pairs]}`, `{"$deque": [items, maxlen]}` |
| namedtuple | `{"$ntuple": [type name, [field names], [values]]}` |
| other `int`, other `float` | `{"$int": hex}`, `{"$float": repr}` |
| `bytes`, `bytearray`, `complex` | `{"$bytes": hex}`, `{"$bytearray": hex}`, `{"$complex": [real, imag]}` |
| `Fraction`, `Decimal`, `range` | `{"$fraction": [num, den]}`, `{"$decimal": str}`, `{"$range": [start, stop, step]}` |
| dict views | `{"$keys": [...]}`, `{"$values": [...]}`, `{"$items": [[key, value], ...]}` |
| numpy array or scalar | `{"$ndarray": [dtype, shape or null, [flat values]]}` |
| a builtin function or type | `{"$builtin": name}` (a defaultdict's factory, an argument) |

Subclasses of the builtin types are sent as their base type (their methods are not trusted).
Between the judge and the program (`channel.py`) the `Encoder`/`Decoder` also keep identities:
mutable containers (lists, dicts, sets, bytearrays, deques, arrays) are numbered in the order they
are first met, on both sides, so a container met again is `{"$same": n}` (aliasing and
cycles survive, and mutations can be written back); and a hook turns what is not plain data
into handles (`$ref`, `$yours`, `$obj`, see `channel.py`).

Decoding trusts nothing: `loads` refuses more than `max_bytes` and JSON constants (`NaN`); the
strict decoder (`decoder.py`) refuses everything else that is malformed, all with `WireError`
(one narrow type, which the `code` verifier turns into that sample's `error` verdict). The
parent compares results in `canonical.py`'s form instead of decoding them.
"""

from __future__ import annotations

import builtins
import functools
import json
import math
import re
import sys
from collections import Counter, OrderedDict, defaultdict, deque

MAX_DEPTH = 500            # containers inside containers, by default (the `max_depth` option)
# Builtins that may cross as `$builtin`: values, not ways into the interpreter (no exec, open, ...).
SAFE_BUILTINS = frozenset(
    name for name, value in vars(builtins).items()
    if (isinstance(value, type) and not issubclass(value, BaseException)) or name in (
        "abs", "all", "any", "ascii", "bin", "callable", "chr", "divmod", "format", "hash", "hex", "id", "isinstance",
        "issubclass", "iter", "len", "max", "min", "next", "oct", "ord", "pow", "print", "repr", "round", "sorted",
        "sum")) - {"type", "object", "super", "classmethod", "staticmethod", "property", "memoryview"}
DTYPE = re.compile(r"[<>|=]?(?:b1|[iu][1248]|f[248]|c(?:8|16)|U\d{1,5}|S\d{1,5})\Z")
_VIEWS = {type({}.keys()): "$keys", type({}.values()): "$values", type({}.items()): "$items"}


class WireError(ValueError):
    """A value that is not plain data, or a malformed encoding of one."""


LEND_ROOM = False  # set in the program's process: its recursion limit is given back after each value


def room(fn, max_depth: int, *args):
    """`fn(*args)` with a recursion limit that fits `max_depth` nested containers (each costs
    the recursive coders up to 4 frames). Our processes keep the raised limit (never lowered:
    threads decoding at once cannot race); the program's gets its own back (`LEND_ROOM`), so
    that its deep recursions fail where they would in a plain run."""
    need = 4 * max_depth + 1000
    old = sys.getrecursionlimit()
    if old >= need:
        return fn(*args)
    sys.setrecursionlimit(need)
    if not LEND_ROOM:
        return fn(*args)
    try:
        return fn(*args)
    finally:
        sys.setrecursionlimit(old)


def loads(data: bytes, max_bytes: int):
    """Untrusted bytes -> a JSON tree (not yet checked: `Decoder` or `canonical` do that)."""
    if len(data) > max_bytes:
        raise WireError(f"{len(data)} bytes, more than the {max_bytes} allowed")
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except WireError:
        raise
    except (ValueError, RecursionError, MemoryError) as exc:  # bad UTF-8/JSON, huge int literal, deep nesting
        raise WireError(f"not wire data: {type(exc).__name__}: {str(exc)[:120]}") from None


def _refuse_constant(name: str):
    raise WireError(f"JSON constant {name} is not wire data")


def _module_type(module: str, name: str):
    """A class of a standard-library module, if the module is loaded (a value of that class can
    only exist once it is)."""
    found = sys.modules.get(module)
    return getattr(found, name, None) if found is not None else None


# --------------------------------------------------------------------------- encoding


class Encoder:
    """Python values -> JSON trees. `hook(encoder, value, depth, top)` encodes what is not plain
    data (or raises `WireError`); with `identities`, containers are numbered (`objects`, `ids`),
    and `ids` may start with those an earlier message numbered."""

    def __init__(self, hook=None, identities: bool = False, max_depth: int = MAX_DEPTH, objects: list = ()):
        self.hook, self.max_depth = hook, max_depth
        self.ids: dict | None = {id(v): n for n, v in enumerate(objects)} if identities else None
        self.objects: list = list(objects)

    def number(self, value) -> None:
        if self.ids is not None:
            self.ids[id(value)] = len(self.objects)
            self.objects.append(value)  # kept alive, so that its id is not reused meanwhile

    def encode(self, value, depth: int = 0, top: bool = True):
        """`top=False` encodes a numbered container's contents (`body`) without `$same`."""
        t = type(value)
        if value is None or t is bool or t is str:
            return value
        if t is int:
            return value if -(1 << 62) < value < (1 << 62) else {"$int": hex(value)}
        if t is float:
            return value if math.isfinite(value) else {"$float": repr(value)}
        if depth == 0:
            return room(self._container, self.max_depth, value, t, depth, top)
        return self._container(value, t, depth, top)

    def _container(self, value, t, depth: int, top: bool):
        if depth >= self.max_depth:
            raise WireError(f"nested deeper than {self.max_depth}")
        if top and self.ids is not None and id(value) in self.ids:
            return {"$same": self.ids[id(value)]}
        encode = _ENCODE.get(t)
        if encode is not None:
            if top and t in _NUMBERED:
                self.number(value)
            return encode(self, value, depth + 1)
        return self._other(value, t, depth, top)

    def body(self, value, depth: int = 0):
        """The contents of a numbered container, as if first met (its children may be `$same`)."""
        return self.encode(value, depth, top=False)

    def items(self, values, depth: int) -> list:
        return [self.encode(v, depth) for v in list(values)]

    def pairs(self, mapping, depth: int) -> list:
        return [[self.encode(k, depth), self.encode(v, depth)] for k, v in list(mapping.items())]

    def _other(self, value, t, depth: int, top: bool):
        if isinstance(value, tuple) and isinstance(getattr(t, "_fields", None), tuple):
            fields = [str(f) for f in t._fields]
            return {"$ntuple": [t.__name__, fields, self.items(tuple.__iter__(value), depth + 1)]}
        for base, copy in _EXACT:  # a subclass: sent as its base type, numbered as itself
            if isinstance(value, base):
                plain = copy(value)
                if top and type(plain) in _NUMBERED:
                    self.number(value)
                return self.encode(plain, depth, top=False)
        if t is _module_type("fractions", "Fraction"):
            return {"$fraction": [self.encode(value.numerator), self.encode(value.denominator)]}
        if t is _module_type("decimal", "Decimal"):
            return {"$decimal": str(value)}
        if t.__module__ == "numpy" and hasattr(value, "dtype") and hasattr(value, "shape"):
            return self._numpy(value, t, top)
        if isinstance(value, (type, type(len))) and getattr(builtins, getattr(value, "__name__", ""), None) is value:
            if value.__name__ in SAFE_BUILTINS:
                return {"$builtin": value.__name__}
        if self.hook is not None:
            return self.hook(self, value, depth, top)
        raise WireError(f"{t.__name__} is not plain data")

    def _numpy(self, value, t, top: bool):
        dtype = value.dtype.str
        if not DTYPE.match(dtype):
            raise WireError(f"a numpy array of dtype {dtype} is not plain data")
        if t.__name__ != "ndarray":  # a numpy scalar
            return {"$ndarray": [dtype, None, [self.encode(value.item())]]}
        if top:
            self.number(value)
        return {"$ndarray": [dtype, list(value.shape), self.items(value.ravel().tolist(), 1)]}


def _encode_dict(enc, v, d):
    return {"$dict": enc.pairs(v, d)}


def _encode_range(enc, v, d):
    return {"$range": [enc.encode(v.start), enc.encode(v.stop), enc.encode(v.step)]}


def _encode_factory(enc, factory, d):
    if factory is None:
        return None
    try:
        return enc.encode(factory, d)
    except WireError:
        if enc.hook is None:  # the parent compares contents only: a lambda factory does not matter
            return None
        raise


_ENCODE = {
    list: lambda enc, v, d: enc.items(v, d),
    tuple: lambda enc, v, d: {"$tuple": enc.items(v, d)},
    dict: _encode_dict,
    set: lambda enc, v, d: {"$set": enc.items(v, d)},
    frozenset: lambda enc, v, d: {"$frozenset": enc.items(v, d)},
    bytes: lambda enc, v, d: {"$bytes": v.hex()},
    bytearray: lambda enc, v, d: {"$bytearray": v.hex()},
    complex: lambda enc, v, d: {"$complex": [enc.encode(v.real), enc.encode(v.imag)]},
    Counter: lambda enc, v, d: {"$counter": enc.pairs(v, d)},
    OrderedDict: lambda enc, v, d: {"$odict": enc.pairs(v, d)},
    defaultdict: lambda enc, v, d: {"$ddict": [_encode_factory(enc, v.default_factory, d), enc.pairs(v, d)]},
    deque: lambda enc, v, d: {"$deque": [enc.items(v, d), v.maxlen]},
    range: _encode_range,
    # the outer lambda binds each tag (B023 cannot see it)
    **{view: (lambda tag: lambda enc, v, d: {tag: enc.pairs(dict(v), d) if tag == "$items" else enc.items(v, d)})(tag)  # noqa: B023
       for view, tag in _VIEWS.items()},
}
_NUMBERED = frozenset((list, dict, set, bytearray, Counter, OrderedDict, defaultdict, deque))
# Copies of a subclass's value as its base type that do not call methods the subclass may
# override; the most derived standard type first.
_EXACT = ((Counter, lambda v: _filled(Counter(), v)), (OrderedDict, lambda v: OrderedDict(dict.items(v))),
          (defaultdict, lambda v: defaultdict(v.default_factory, dict.items(v))),
          (deque, lambda v: deque(deque.__iter__(v), v.maxlen)),
          (int, int.__int__), (float, float.__float__), (str, str.__str__), (bytes, lambda v: bytes(memoryview(v))),
          (bytearray, lambda v: bytearray(memoryview(v))),
          (complex, lambda v: complex(complex.real.__get__(v), complex.imag.__get__(v))),
          (tuple, lambda v: tuple(tuple.__iter__(v))), (list, lambda v: list(list.__iter__(v))),
          (dict, lambda v: dict(dict.items(v))), (set, lambda v: set(set.__iter__(v))),
          (frozenset, lambda v: frozenset(frozenset.__iter__(v))))


def _filled(counter: Counter, items) -> Counter:
    dict.update(counter, dict.items(items))  # Counter(pairs) would count the pairs
    return counter


def to_wire(value, max_depth: int = MAX_DEPTH):
    """Plain data -> a JSON-able tree (anything else, or deeper nesting, raises `WireError`)."""
    return Encoder(max_depth=max_depth).encode(value)


def decode(tree, max_depth: int = MAX_DEPTH):
    """A JSON tree of plain data -> Python values; `WireError` on anything else (`decoder.py`)."""
    return _decoder().Decoder(max_depth=max_depth).decode(tree)


from_wire = decode  # the older name


@functools.lru_cache(maxsize=1)
def _decoder():
    try:
        import _sandbox_decoder as module  # in the sandbox, loaded by path by the fork server
    except ImportError:
        from verifiers.code import decoder as module
    return module
