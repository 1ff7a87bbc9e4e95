"""The harness around one program, and the codec of values that cross the sandbox boundary.

Runs inside the sandbox, in the program's own process (C in `_sandbox_worker`), and so
shares everything with the program: it is trusted code running next to untrusted code.
What that implies for the verdicts is in `verifiers.sandbox`. The fork server loads this
file by path (the sandbox has no package); the parent imports `to_wire`/`from_wire`.

Every harness ends the process itself (`os._exit`), so that neither atexit hooks nor
excepthooks of the program run after it, and so that a process the program forked and
that falls out of the program does not report or pass in its name (`_own`).
"""

from __future__ import annotations

import builtins
import functools
import itertools
import json
import math
import os
import sys
import traceback
import types

RESULT_FD = 3          # the harness's channel: token, call results, or an exception report
ITER_CAP = 100_000     # strict returns: most items materialised from a returned iterator

_dumps = json.dumps     # the harness's own references, taken before any program runs


# --------------------------------------------------------------------------- wire codec


class WireError(ValueError):
    """A value that is not plain data (or a malformed encoding of one)."""


_BASES = (bool, int, float, complex, str, bytes, tuple, list, dict, set, frozenset)
# Exact copies that do not call methods a subclass may override.
_EXACT = {int: int.__int__, float: float.__float__, str: str.__str__, bytes: lambda v: bytes(memoryview(v)),
          complex: lambda v: complex(complex.real.__get__(v), complex.imag.__get__(v)),
          tuple: tuple, list: list, dict: dict, set: set, frozenset: frozenset}


def to_wire(value):
    """Plain data -> a JSON-able tree. Every JSON object in the tree is a tag, so a tuple,
    a set, a dict with any keys, bytes, a big int or a non-finite float survives the trip.
    Subclasses of the builtin types become their base type (their methods are not trusted);
    anything else raises `WireError`."""
    t = type(value)
    if value is None or t is bool or t is str:
        return value
    if t is int:
        return value if -(1 << 62) < value < (1 << 62) else {"$int": hex(value)}
    if t is float:
        return value if math.isfinite(value) else {"$float": repr(value)}
    if t is list:
        return [to_wire(v) for v in value]
    if t is tuple or t is set or t is frozenset:
        return {"$" + t.__name__: [to_wire(v) for v in value]}
    if t is dict:
        return {"$dict": [[to_wire(k), to_wire(v)] for k, v in value.items()]}
    if t is bytes:
        return {"$bytes": value.hex()}
    if t is complex:
        return {"$complex": [to_wire(value.real), to_wire(value.imag)]}
    for base in _BASES[1:]:
        if isinstance(value, base):
            return to_wire(_EXACT[base](value))
    raise WireError(f"{t.__name__} is not plain data")


_TAGS = {"$tuple": tuple, "$set": set, "$frozenset": frozenset}


def from_wire(tree):
    """The inverse of `to_wire`; raises `WireError` on anything it would not produce."""
    if tree is None or type(tree) in (bool, int, float, str):
        return tree
    if type(tree) is list:
        return [from_wire(v) for v in tree]
    if type(tree) is not dict or len(tree) != 1:
        raise WireError(f"malformed value {str(tree)[:80]}")
    (tag, body), = tree.items()
    try:
        if tag in _TAGS:
            return _TAGS[tag](from_wire(v) for v in body)
        if tag == "$dict":
            return {from_wire(k): from_wire(v) for k, v in body}
        if tag == "$int":
            return int(body, 16)
        if tag == "$float":
            return float(body)
        if tag == "$bytes":
            return bytes.fromhex(body)
        if tag == "$complex":
            return complex(from_wire(body[0]), from_wire(body[1]))
    except (TypeError, ValueError) as exc:
        raise WireError(f"malformed {tag}: {exc}") from None
    raise WireError(f"unknown tag {tag!r}")


# --------------------------------------------------------------------------- harnesses


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fresh_main() -> dict:
    """A clean `__main__` for the program (the fork server's own module is not reachable)."""
    module = types.ModuleType("__main__")
    module.__builtins__ = builtins
    sys.modules["__main__"] = module
    sys.argv = ["main.py"]
    return module.__dict__


def _exec(source: str, filename: str, g: dict) -> None:
    import linecache

    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), g)


def _safe_str(obj, limit: int = 1000) -> str:
    try:
        return str(obj)[:limit]
    except BaseException:  # noqa: BLE001 - an untrusted __str__ may raise anything
        return "<unprintable>"


def _report(exc: BaseException, where: str) -> None:
    """Describe a failure on the result channel (untrusted: it only labels a failure)."""
    try:
        traceback.print_exception(exc)
    except BaseException:  # noqa: BLE001 - printing an untrusted exception may fail
        pass
    report = {"exc": type(exc).__name__, "msg": _safe_str(exc), "where": where}
    try:
        _write(RESULT_FD, _dumps(report).encode())
    except OSError:
        pass


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - the program may have replaced the streams
            pass


class _Guard:
    """Undo what a program may have done to the test's surroundings: patched builtins and
    trace or profile hooks (which can jump over the asserts)."""

    def __init__(self):
        self.builtins = dict(builtins.__dict__)
        self.settrace, self.setprofile = sys.settrace, sys.setprofile

    def restore(self, g: dict) -> None:
        self.settrace(None)
        self.setprofile(None)
        current = builtins.__dict__
        for name in [n for n in current if n not in self.builtins]:
            del current[name]
        current.update(self.builtins)
        g["__builtins__"] = builtins


def plain(value):
    """A copy of `value` made only of builtin plain data (iterators become list iterators);
    an object with its own `__eq__` cannot pass a test's `==` this way."""
    if hasattr(type(value), "__next__") and type(value) not in _BASES:
        items = list(itertools.islice(value, ITER_CAP + 1))
        if len(items) > ITER_CAP:
            raise WireError(f"returned iterator yields more than {ITER_CAP} items")
        return iter([plain(v) for v in items])
    return from_wire(to_wire(value))


def _strict(fn):
    """Wrap the entry point so that the values the tests see are plain data; calls made by
    the program itself (recursion) go straight through."""
    depth = [0]

    def candidate(*args, **kwargs):
        if depth[0]:
            return fn(*args, **kwargs)
        depth[0] += 1
        try:
            value = fn(*args, **kwargs)
        finally:
            depth[0] -= 1
        try:
            return plain(value)
        except (WireError, RecursionError) as exc:
            raise TypeError(f"strict_returns: the entry point returned {type(value).__name__}: {exc}") from None

    return functools.wraps(fn)(candidate)  # name, docstring and signature of the original


def _own(pid: int, code: int) -> None:
    """Processes the program forked run this harness code too when they fall out of it; only
    the program's own process may report or pass."""
    if os.getpid() != pid:
        _flush()
        os._exit(code)


def run_assert(server, req: dict) -> None:
    g, guard, where, me = _fresh_main(), _Guard(), "program", os.getpid()
    try:
        _exec(req["program"], "<program>", g)
        guard.restore(g)
        where = "tests"
        entry = req["entry_point"]
        if entry not in g:
            raise NameError(f"the program does not define {entry!r}")
        if req.get("strict_returns", True) and isinstance(g[entry], types.FunctionType):
            g[entry] = _strict(g[entry])
        _exec(req["tests"], "<tests>", g)
        if "check" not in g:
            raise NameError("the tests do not define check()")
        g["check"](g[entry])
    except BaseException as exc:  # noqa: BLE001 - anything but a normal return fails the sample
        _own(me, 1)
        _report(exc, where)
        _flush()
        os._exit(1)
    _own(me, 0)
    server.emit_token()  # the only place the token leaves memory
    _flush()
    os._exit(0)


def run_io(server, req: dict) -> None:
    g, code, me = _fresh_main(), 0, os.getpid()
    try:
        _exec(req["program"], "main.py", g)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:  # noqa: BLE001 - a crash is reported, not raised
        _own(me, 1)  # a forked child's output still counts, as in a real script; its report does not
        _report(exc, "program")
        code = 1
    _flush()
    os._exit(code & 0xFF)


def run_call(server, req: dict) -> None:
    g, me = _fresh_main(), os.getpid()
    try:
        _exec(req["program"], "<program>", g)
        fn = g[req["entry_point"]]
    except BaseException as exc:  # noqa: BLE001 - a crash is reported, not raised
        _own(me, 1)
        _report(exc, "program")
        _flush()
        os._exit(1)
    results = []
    for case in req["cases"]:
        try:
            results.append({"ok": to_wire(fn(*from_wire(case["args"]), **from_wire(case["kwargs"])))})
        except BaseException as exc:  # noqa: BLE001 - one case's exception fails that case
            results.append({"exc": type(exc).__name__, "msg": _safe_str(exc, 300)})
    _own(me, 0)
    _flush()
    _write(RESULT_FD, _dumps({"results": results}).encode())
    os._exit(0)


HARNESS = {"assert": run_assert, "io": run_io, "call": run_call}
