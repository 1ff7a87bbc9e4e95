"""The harnesses inside the sandbox: the program's (`io`, `call`, `assert`) and the judge's.

The fork server loads this file by path (the sandbox has no package). The program's harness
runs in the program's process C and so shares everything with it: nothing it does there
is trusted, and nothing there is worth forging (C never holds tests or expected values).
The judge's harness (`run_judge`) runs in the sample's supervisor S, a separate process that
never executes the program's code:

    S: tests (check(candidate)) -- candidate(*args) --> [fd 4] C: entry_point(*args)
       proxy <-- plain data, strict decoder ----------- [fd 5] return value or exception

Messages on fds 4 and 5 are 4-byte big-endian lengths followed by JSON (`wire.py`).
C sends `{"ready": true}` once the program has run (or `{"exc", "msg"}` if it failed), then
one reply per call: `{"ok": value}` (`"iter": true` when the entry point returned an
iterator, materialised), or `{"exc": name, "msg": text}`. Only S holds the result pipe, on
which it writes `{"passed": true}` after `check` returned, or a failure report.

Every harness ends its process itself (`os._exit`), so that neither atexit hooks nor
excepthooks of the program run after it, and a process the program forked that falls out of
the program does not answer or report in its name (`_own`).
"""

from __future__ import annotations

import builtins
import itertools
import json
import os
import struct
import sys
import traceback
import types

try:
    import _sandbox_wire as wire  # in the sandbox: wire.py, loaded by path by the fork server
except ImportError:  # pragma: no cover - imported from the package
    from verifiers.code import wire

RESULT_FD, CALLS_FD, REPLY_FD = 3, 4, 5
ITER_CAP = 100_000     # most items materialised from a returned iterator

_dumps = json.dumps     # the harness's own references, taken before any program runs
_exit = os._exit


# --------------------------------------------------------------------------- plumbing


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_exact(fd: int, n: int) -> bytes | None:
    data = bytearray()
    while len(data) < n:
        chunk = os.read(fd, min(n - len(data), 1 << 20))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _send(fd: int, obj) -> None:
    data = _dumps(obj, separators=(",", ":")).encode()
    _write(fd, struct.pack(">I", len(data)) + data)


def _recv(fd: int, max_bytes: int):
    """One message, or None at end of stream; `WireError` on anything malformed."""
    head = _read_exact(fd, 4)
    if head is None:
        return None
    size = struct.unpack(">I", head)[0]
    if size > max_bytes:
        raise wire.WireError(f"a reply of {size} bytes, more than the {max_bytes} allowed")
    body = _read_exact(fd, size)
    if body is None:
        return None
    tree = wire.loads(body, max_bytes)
    if type(tree) is not dict:
        raise wire.WireError("a reply that is not an object")
    return tree


def _fresh_main() -> dict:
    """A clean `__main__` (the fork server's own module is not reachable)."""
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


def _describe(exc: BaseException) -> dict:
    try:
        traceback.print_exception(exc)
    except BaseException:  # noqa: BLE001 - printing an untrusted exception may fail
        pass
    return {"exc": type(exc).__name__, "msg": _safe_str(exc)}


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - the program may have replaced the streams
            pass


def _own(pid: int, code: int) -> None:
    """Processes the program forked run this harness code too when they fall out of it; only
    the program's own process may answer or report."""
    if os.getpid() != pid:
        _flush()
        _exit(code)


def _finish(code: int) -> None:
    _flush()
    _exit(code)


# --------------------------------------------------------------------------- the program's side


def _load(req: dict) -> tuple[dict, int, object]:
    """Run the program; on failure report it on `RESULT_FD` and end the process."""
    g, me = _fresh_main(), os.getpid()
    try:
        _exec(req["program"], "<program>", g)
        fn = g.get(req["entry_point"]) if req.get("entry_point") else None
        if req.get("entry_point") and fn is None:
            raise NameError(f"the program does not define {req['entry_point']!r}")
    except BaseException as exc:  # noqa: BLE001 - a crash is reported, not raised
        _own(me, 1)
        report = {**_describe(exc), "where": "program"}
        try:
            (_send if req["mode"] == "assert" else lambda fd, r: _write(fd, _dumps(r).encode()))(RESULT_FD, report)
        except OSError:
            pass
        _finish(1)
    _own(me, 0)
    return g, me, fn


def _encode_return(value) -> dict:
    if type(value) not in (list, tuple, dict, set, frozenset, str, bytes) and hasattr(type(value), "__next__"):
        items = list(itertools.islice(value, ITER_CAP + 1))
        if len(items) > ITER_CAP:
            raise wire.WireError(f"the returned iterator yields more than {ITER_CAP} items")
        return {"ok": wire.to_wire(items), "iter": True}
    return {"ok": wire.to_wire(value)}


def _call(fn, args, kwargs, me: int) -> dict:
    try:
        reply = _encode_return(fn(*args, **kwargs))
    except wire.WireError as exc:
        reply = {"exc": "TypeError", "msg": f"the entry point did not return plain data: {exc}"}
    except BaseException as exc:  # noqa: BLE001 - one call's exception fails that call
        reply = {"exc": type(exc).__name__, "msg": _safe_str(exc, 300)}
        if isinstance(exc, (StopIteration, StopAsyncIteration)):  # a subclass must not escape the rule below
            reply["exc"] = "StopIteration"
    _own(me, 0)
    return reply


def run_assert(server, req: dict) -> None:
    """C for `assert` tests: run the program, then answer the judge's calls until it hangs up."""
    _, me, fn = _load(req)
    _send(RESULT_FD, {"ready": True})
    while True:
        call = _recv(CALLS_FD, 1 << 62)  # from the judge: trusted
        if call is None:
            _finish(0)
        reply = _call(fn, wire.decode(call["args"]), wire.decode(call["kwargs"]), me)
        try:
            _send(RESULT_FD, reply)
        except OSError:
            _finish(0)


def run_call(server, req: dict) -> None:
    _, me, fn = _load(req)
    results = [_call(fn, wire.decode(c["args"]), wire.decode(c["kwargs"]), me) for c in req["cases"]]
    _flush()
    _write(RESULT_FD, _dumps({"results": results}).encode())
    _exit(0)


def run_io(server, req: dict) -> None:
    g, code, me = _fresh_main(), 0, os.getpid()
    try:
        _exec(req["program"], "main.py", g)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:  # noqa: BLE001 - a crash is reported, not raised
        _own(me, 1)  # a forked child's output still counts, as in a real script; its report does not
        try:
            _write(RESULT_FD, _dumps({**_describe(exc), "where": "program"}).encode())
        except OSError:
            pass
        code = 1
    _finish(code & 0xFF)


# --------------------------------------------------------------------------- the judge's side


class _Broken(BaseException):
    """The candidate's side failed to answer properly. A BaseException, so that a test's
    `except Exception` cannot swallow it; and recorded, so that nothing can."""

    def __init__(self, exc: str, msg: str, where: str):
        super().__init__(msg)
        self.report = {"exc": exc, "msg": msg[:1000], "where": where}


def _proxy(entry: str, max_reply: int, broken: list):
    def candidate(*args, **kwargs):
        if broken:
            raise _Broken(**broken[0])
        try:
            call = {"args": wire.to_wire(list(args)), "kwargs": wire.to_wire(kwargs)}
        except (wire.WireError, RecursionError) as exc:
            raise _fail(broken, "NotPlainData", f"an argument of {entry}() is not plain data ({exc}): "
                                "such tests cannot cross to the program's process", "argument")
        try:
            _send(CALLS_FD, call)
        except OSError:
            pass  # the program is gone; what it wrote before going is still read, as always
        try:
            reply = _recv(REPLY_FD, max_reply)
        except OSError:
            reply = None
        except wire.WireError as exc:
            raise _fail(broken, "WireError", f"malformed reply: {exc}", "wire")
        if reply is None:
            raise _fail(broken, "Exited", "the program exited before the tests finished", "exited")
        return _unpack(reply, broken)

    candidate.__name__ = candidate.__qualname__ = entry
    return candidate


def _fail(broken: list, exc: str, msg: str, where: str) -> _Broken:
    error = _Broken(exc, msg, where)
    broken.append(error.report)
    return error


def _unpack(reply: dict, broken: list):
    try:
        if "ok" in reply and len(reply) <= 2:
            value = wire.decode(reply["ok"])
            return iter(value) if reply.get("iter") is True and type(value) is list else value
        name, msg = reply.get("exc"), reply.get("msg")
        if len(reply) == 2 and type(name) is str and type(msg) is str:
            cls = getattr(builtins, name, None)
            if isinstance(cls, type) and issubclass(cls, (StopIteration, StopAsyncIteration)):
                # Re-raised as itself, it would end the test's loop that made the call (`all(map(
                # candidate, xs))` passing): turned into RuntimeError, as PEP 479 does in generators.
                raise RuntimeError(f"the entry point raised {name}") from cls(msg[:300])
            if isinstance(cls, type) and issubclass(cls, Exception) and cls.__module__ == "builtins":
                raise cls(msg[:300])  # so that a test expecting ValueError sees one
            raise _Broken(name[:100], msg[:300], "call")  # SystemExit, KeyboardInterrupt ...
    except wire.WireError as exc:
        raise _fail(broken, "WireError", f"malformed reply: {exc}", "wire")
    raise _fail(broken, "WireError", "malformed reply", "wire")


def run_judge(req: dict) -> bytes:
    """The judge: wait for the program to be ready, then run `check(candidate)` against the
    proxy; return the verdict to write on the result channel."""
    broken: list = []
    max_reply = int(req["max_reply"])
    try:
        try:
            hello = _recv(REPLY_FD, max_reply)
        except wire.WireError as exc:
            raise _fail(broken, "WireError", f"malformed reply: {exc}", "wire")
        if hello is None:
            raise _fail(broken, "Exited", "the program exited before the tests started", "exited")
        if hello != {"ready": True}:
            name, msg = hello.get("exc"), hello.get("msg")
            if type(name) is not str or type(msg) is not str:
                raise _fail(broken, "WireError", "malformed reply", "wire")
            raise _Broken(name[:100], msg, "program")
        g = _fresh_main()
        _exec(req["tests"], "<tests>", g)
        if "check" not in g:
            raise NameError("the tests do not define check()")
        g[req["entry_point"]] = candidate = _proxy(req["entry_point"], max_reply, broken)
        g["check"](candidate)
        if broken:
            raise _Broken(**broken[0])
    except _Broken as exc:
        return _dumps(broken[0] if broken else exc.report).encode()
    except BaseException as exc:  # noqa: BLE001 - anything but a normal return fails the sample
        return _dumps({"exc": type(exc).__name__, "msg": _safe_str(exc), "where": "tests",
                       "trace": _safe_str("".join(traceback.format_exception(exc)[-3:]), 2000)}).encode()
    return _dumps({"passed": True}).encode()


HARNESS = {"assert": run_assert, "io": run_io, "call": run_call}
