"""The harnesses inside the sandbox: the program's (`io`, `call`, `assert`) and the judge's.

The fork server loads this file by path (the sandbox has no package). The program's harness
runs in the program's process C and so shares everything with it: nothing it does there
is trusted, and nothing there is worth forging (C never holds tests or expected values).
The judge's harness (`run_judge`) runs in the sample's supervisor S, a separate process that
never executes the program's code:

    S: setup, tests, check(candidate) --- requests (channel.py) ---> [fd 4] C: the program's objects
       proxies (proxies.py, judging.py) <-- plain data, strict decoder --- [fd 3] replies, callbacks

C sends `{"ready": {"entry": the entry point, "names": its global names}}` once the program
has run (or `{"failed": {"exc", "msg"}}`), then serves the judge's requests until it hangs
up. The judge runs the task's trusted `setup` and the tests in a fresh `__main__` whose
builtins are followed by the program's globals (`judging.ProgramNames`: a name the tests
use and neither they nor the builtins define is fetched from the program, functions and
classes as proxies), binds the entry point's name to its proxy and runs `check(candidate)`.
Only S holds the result pipe, on which it writes `{"passed": true}` after `check` returned,
or a failure report.

Every harness ends its process itself (`os._exit`), so that neither atexit hooks nor
excepthooks of the program run after it, and a process the program forked that falls out of
the program does not answer or report in its name (`_own`).
"""

from __future__ import annotations

import binascii
import builtins
import itertools
import json
import marshal
import os
import sys
import traceback
import types

try:  # in the sandbox: loaded by path by the fork server
    import _sandbox_channel as channel
    import _sandbox_hosting as hosting
    import _sandbox_judge_side as judge_side
    import _sandbox_judging as judging
    import _sandbox_proxies as proxies
    import _sandbox_wire as wire
except ImportError:  # pragma: no cover - imported from the package
    from verifiers.code import channel, hosting, judge_side, judging, proxies, wire

RESULT_FD, CALLS_FD, REPLY_FD = 3, 4, 5
MAX_NAMES = 10_000     # global names of the program the judge hears of
PROGRAM_BUSY = [False]  # the judge left calls sent ahead unanswered (see `run_judge`)

_dumps = json.dumps     # the harness's own references, taken before any program runs
_exit = os._exit


# --------------------------------------------------------------------------- plumbing


def _fresh_main() -> dict:
    """A clean `__main__` (the fork server's own module is not reachable)."""
    module = types.ModuleType("__main__")
    module.__builtins__ = builtins
    sys.modules["__main__"] = module
    sys.argv = ["main.py"]
    return module.__dict__


def _exec(source: str, filename: str, g: dict, compiled: str | None = None) -> None:
    """Run `source` in `g`; `compiled` is its code object as the parent compiled it (trusted:
    the tests and the setup, never the program), marshalled, base64: compiling a prompt with
    its docstrings costs the judge a few hundred microseconds a sample."""
    import linecache

    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    if compiled:
        code = marshal.loads(binascii.a2b_base64(compiled))
    else:
        code = compile(source, filename, "exec")
    exec(code, g)


def _safe_str(obj, limit: int = 1000) -> str:
    try:
        return str(obj)[:limit]
    except BaseException:  # noqa: BLE001 - an untrusted __str__ may raise anything
        return "<unprintable>"


def _describe(exc: BaseException, limit: int = 1000) -> dict:
    try:
        traceback.print_exception(exc)
    except BaseException:  # noqa: BLE001 - printing an untrusted exception may fail
        pass
    return {"exc": type(exc).__name__, "msg": _safe_str(exc, limit)}


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


def entry_point(g: dict, name: str):
    """The entry point: a global of the program; else the method of that name of a LeetCode-style
    `Solution` class, on a new instance; or an expression such as `Solution().twoSum` (the
    verifier checked it is names, attributes and calls without arguments)."""
    if name.isidentifier():
        if name in g:
            return g[name]
        solution = g.get("Solution")
        if isinstance(solution, type) and callable(getattr(solution, name, None)):
            return getattr(solution(), name)
        raise NameError(f"the program does not define {name!r}")
    return eval(compile(name, "<entry point>", "eval"), g)  # noqa: S307 (the program's own process: its code runs here anyway)


def _load(req: dict) -> tuple[dict, int, object]:
    """Run the program; on failure report it on `RESULT_FD` and end the process."""
    g, me = _fresh_main(), os.getpid()
    wire.LEND_ROOM = True  # the program's recursion limit stays its own
    try:
        _exec(req["program"], "<program>", g)
        fn = entry_point(g, req["entry_point"]) if req.get("entry_point") else None
    except BaseException as exc:  # noqa: BLE001 - a crash is reported, not raised
        _own(me, 1)
        report = _describe(exc, req["limits"]["message_chars"])
        try:
            if req["mode"] == "assert":
                channel.send(RESULT_FD, {"failed": report}, _dumps)
            else:
                channel.write_all(RESULT_FD, _dumps({**report, "where": "program"}).encode())
        except OSError:
            pass
        _finish(1)
    _own(me, 0)
    return g, me, fn


def run_assert(server, req: dict) -> None:
    """C for `assert` tests: run the program, then serve the judge's requests until it hangs up."""
    g, me, fn = _load(req)
    side = hosting.ProgramSide(me, g, req["limits"])
    chan = side.chan = channel.Channel(RESULT_FD, CALLS_FD, side, req["limits"], _dumps)
    names = [k for k in itertools.islice(g, MAX_NAMES) if not k.startswith("__")]
    try:
        channel.send(RESULT_FD, {"ready": {"entry": chan.encoder().encode(fn), "names": names}}, _dumps)
        while (msg := channel.recv(CALLS_FD, 1 << 62)) is not None:  # from the judge: trusted
            chan.serve(msg)
    except (channel.Gone, OSError):
        pass
    _finish(0)


def _encode_return(value, limits: dict) -> dict:
    if type(value) not in (list, tuple, dict, set, frozenset, str, bytes) and hosting.is_iterator(value):
        items = list(itertools.islice(value, limits["iter_items"] + 1))
        if len(items) > limits["iter_items"]:
            raise wire.WireError(f"the returned iterator yields more than {limits['iter_items']} items")
        return {"ok": wire.to_wire(items, limits["max_depth"]), "iter": True}
    return {"ok": wire.to_wire(value, limits["max_depth"])}


def _call(fn, args, kwargs, me: int, limits: dict) -> dict:
    try:
        reply = _encode_return(fn(*args, **kwargs), limits)
    except (wire.WireError, RecursionError) as exc:
        reply = {"exc": "TypeError", "msg": f"the entry point did not return plain data: {exc}"}
    except BaseException as exc:  # noqa: BLE001 - one call's exception fails that call
        reply = {"exc": type(exc).__name__, "msg": _safe_str(exc, limits["message_chars"])}
    _own(me, 0)
    return reply


def run_call(server, req: dict) -> None:
    _, me, fn = _load(req)
    limits = req["limits"]
    results = [_call(fn, wire.decode(c["args"]), wire.decode(c["kwargs"]), me, limits) for c in req["cases"]]
    _flush()
    channel.write_all(RESULT_FD, _dumps({"results": results}).encode())
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
            channel.write_all(RESULT_FD, _dumps({**_describe(exc), "where": "program"}).encode())
        except OSError:
            pass
        code = 1
    _finish(code & 0xFF)


# --------------------------------------------------------------------------- the judge's side


def run_judge(req: dict) -> bytes:
    """The judge: wait for the program to be ready, run the setup and the tests, then
    `check(candidate)` against the proxy; return the verdict to write on the result channel."""
    limits = req["limits"]
    side = judge_side.JudgeSide(limits)
    chan = side.chan = judging.JudgeChannel(CALLS_FD, REPLY_FD, side, limits, _dumps)
    proxies.use(chan)
    where = "program"
    try:
        candidate, program_names = chan.hello()
        g = _fresh_main()
        g["__builtins__"] = judging.ProgramNames(chan, program_names)
        for where in ("setup", "tests"):
            if req.get(where):
                _exec(req[where], f"<{where}>", g, req.get(where + "_code"))
        if "check" not in g:
            raise NameError("the tests do not define check()")
        side.trust(g)
        if req["entry_point"].isidentifier():
            g[req["entry_point"]] = candidate
        if req.get("prefetch") and isinstance(candidate, (types.FunctionType, proxies.RemoteClass)):
            chan.pipeline(side.handles[id(candidate)], req["prefetch"])
        try:
            g["check"](candidate)
        finally:
            PROGRAM_BUSY[0] = bool(chan.pending)  # calls sent ahead and not needed: S ends the program
        chan.check()
    except judging.Broken as exc:
        return _dumps(chan.broken[0] if chan.broken else exc.report).encode()
    except BaseException as exc:  # noqa: BLE001 - anything but a normal return fails the sample
        return _dumps({"exc": type(exc).__name__, "msg": _safe_str(exc, limits["message_chars"]), "where": where,
                       "trace": _safe_str("".join(traceback.format_exception(exc)[-3:]), 2000)}).encode()
    return _dumps({"passed": True}).encode()


HARNESS = {"assert": run_assert, "io": run_io, "call": run_call}
