"""Trusted code inside each sandbox: a fork server, and the harness around one program.

`verifiers.sandbox` starts this file inside bubblewrap (`python -S -s -B -X utf8 -c BOOT THIS CONFIG`).
It uses the standard library only: our package is not visible in the sandbox. The parent
imports it too, for `to_wire`/`from_wire`, the codec of values crossing the boundary.

One request, two forks (the fork server stays warm between requests):

    fork server   sandbox root with CAP_SETUID/SETGID/KILL only; reads the request, forks A,
      |           reads the program's pipes with caps on time and bytes, reaps C, answers
      A           new session; becomes the unprivileged sandbox user; unshares user, pid,
      |           mount and IPC namespaces; mounts a private size-capped /tmp and /dev/shm
      |           and an empty /proc; forks C, reports its pid, exits
      C           pid 1 of the new pid namespace: drops all capabilities, applies rlimits,
                  runs the harness and the program. When it exits, the kernel kills every
                  process left in its namespace (daemons, double forks, setsid included).

The `assert` harness writes the per-sample token (read from a pipe only the fork server
holds, into memory outside Python's object graph) after `check(candidate)` returns, and
nowhere else; see `verifiers.sandbox` for what that does and does not guarantee.
"""

from __future__ import annotations

import builtins
import ctypes
import gc
import itertools
import json
import math
import os
import resource
import select
import signal
import struct
import sys
import time
import traceback
import types

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID = 0x20000, 0x8000000, 0x10000000, 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 0x4000, 0x40000
PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 4, 36
INNER_ID = 1000        # the program's uid and gid inside its own user namespace
RESULT_FD = 3          # the harness's channel: token, call results, or an exception report
TOKEN_MAX = 64
GRACE_S = 0.5          # how long to drain pipes after the sample's init has exited
ITER_CAP = 100_000     # strict returns: most items materialised from a returned iterator
# Imported once by the fork server, so that programs find them loaded: what HumanEval and MBPP
# programs import most. Not hashlib or statistics: they would make every fork dearer.
PRELOAD = ("bisect", "collections", "copy", "functools", "heapq", "itertools", "math", "operator",
           "random", "re", "string", "typing")

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


# --------------------------------------------------------------------------- control channel


def read_exact(fd: int, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def read_msg(fd: int):
    """One length-prefixed JSON message, or None at end of stream."""
    head = read_exact(fd, 4)
    if len(head) < 4:
        return None
    return json.loads(read_exact(fd, struct.unpack(">I", head)[0]))


def write_msg(fd: int, obj) -> None:
    data = json.dumps(obj).encode()
    write_all(fd, struct.pack(">I", len(data)) + data)


# --------------------------------------------------------------------------- fork server


class ForkServer:
    """Serves requests one at a time on the control pipe; see the module docstring."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.isolate = bool(cfg["isolate"])
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.malloc.restype = ctypes.c_void_p
        self.token = self.libc.malloc(TOKEN_MAX)  # raw memory: no Python object holds the token
        self.token_len = 0
        self.ctl_in, self.ctl_out = os.dup(0), os.dup(1)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.close(null)
        self.libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        sys.path.extend(cfg.get("site", []))
        for name in PRELOAD:
            __import__(name)
        gc.freeze()  # the children's collections skip these objects: fewer copy-on-write faults

    def serve(self) -> None:
        write_msg(self.ctl_out, {"ready": True, "isolate": self.isolate, "pid": os.getpid()})
        while (req := read_msg(self.ctl_in)) is not None:
            try:
                reply = self.handle(req)
            except OSError as exc:
                reply = {"error": f"fork server: {exc}"}
            if reply.get("shutdown"):
                return
            write_msg(self.ctl_out, reply)

    def handle(self, req: dict) -> dict:
        ctypes.memset(self.token, 0, TOKEN_MAX)
        self.token_len = min(int(req.get("token_len", 0)), TOKEN_MAX)
        got = 0
        while got < self.token_len:
            n = self.libc.read(self.cfg["token_fd"], ctypes.c_void_p(self.token + got), self.token_len - got)
            if n <= 0:
                return {"error": "token pipe closed"}
            got += n
        tmpdir = None if self.isolate else _make_tmpdir()
        try:
            return self.run(req, tmpdir)
        finally:
            ctypes.memset(self.token, 0, TOKEN_MAX)
            if tmpdir is not None:
                _remove_tree(tmpdir)

    def run(self, req: dict, tmpdir: str | None) -> dict:
        pipes = {name: os.pipe() for name in ("out", "err", "res", "info")}
        gate_r, gate_w = os.pipe()
        start = time.monotonic()
        a = os.fork()
        if a == 0:
            try:
                os.close(gate_w)
                _stage_a(self, req, pipes, tmpdir, gate_r)
            finally:
                os._exit(70)
        os.close(gate_r)
        for _, w in pipes.values():
            os.close(w)
        limits = req["limits"]
        run = _Run(self.ctl_in, pipes, a, gate_w)
        try:
            reason = run.collect(start + limits["wall_s"], limits["output_bytes"])
        finally:
            run.open_gate()
        if reason is not None:
            for pid in (run.info.get("P"), a):
                if pid:
                    _signal(pid, signal.SIGKILL)  # the program is its namespace's init: all of it dies
            if not self.isolate:
                _signal(-a, signal.SIGKILL)  # its session's process group (best effort)
        if not run.a_reaped:
            os.waitpid(a, 0)
        status = cpu = None
        if "P" in run.info:
            _, status, usage = os.wait4(run.info["P"], 0)
            cpu = usage.ru_utime + usage.ru_stime
        if not self.isolate:
            _signal(-a, signal.SIGKILL)
        _reap_orphans()
        run.close()
        reply = {k: bytes(run.bufs[k]).decode("latin-1") for k in ("out", "err", "res")}
        reply.update(wall_s=time.monotonic() - start, reason=reason, setup_error=run.info.get("E"),
                     status=status, cpu_s=cpu, shutdown=reason == "shutdown")
        return reply

    def emit_token(self) -> None:
        self.libc.write(RESULT_FD, ctypes.c_void_p(self.token), self.token_len)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _reap_orphans() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


class _Run:
    """The parent's view of one sample: its pipes, A's report, and the program's exit."""

    def __init__(self, ctl_in: int, pipes: dict, a: int, gate_w: int):
        self.ctl_in, self.a, self.gate_w, self.a_reaped = ctl_in, a, gate_w, False
        self.names = {r: name for name, (r, _) in pipes.items()}
        self.bufs = {name: bytearray() for name in pipes}
        self.info: dict = {}
        self.pidfd = -1
        self.poller = select.poll()
        for fd in (*self.names, ctl_in):
            self.poller.register(fd, select.POLLIN)

    def collect(self, deadline: float, cap: int) -> str | None:
        """Read until the program has exited and its pipes are closed; or return the
        reason to kill it: "timeout", "output" (over `cap` bytes) or "shutdown"."""
        total, drain_until = 0, None
        while self.names or drain_until is None:
            now = time.monotonic()
            end = deadline if drain_until is None else min(deadline, drain_until)
            if now >= end:
                return "timeout" if drain_until is None else None
            if not self.names and self.pidfd < 0 and "P" not in self.info:
                return None  # A failed before starting the program
            for fd, _ in self.poller.poll(max(1, int((end - now) * 1000))):
                if fd == self.ctl_in:
                    return "shutdown"  # the parent went away
                if fd == self.pidfd:
                    self.poller.unregister(fd)
                    drain_until = time.monotonic() + GRACE_S  # exited; its namespace is gone
                    continue
                chunk = os.read(fd, 1 << 16)
                name = self.names[fd]
                if not chunk:
                    self.poller.unregister(fd)
                    del self.names[fd]
                elif name == "info":
                    self._parse_info(chunk)
                else:
                    self.bufs[name] += chunk
                    total += len(chunk)
                    if total > cap:
                        return "output"
        return None

    def _parse_info(self, chunk: bytes) -> None:
        self.bufs["info"] += chunk
        for line in chunk.decode("utf-8", "replace").splitlines():
            key, _, value = line.partition(" ")
            if key == "P" and self.pidfd < 0:
                self.info["P"] = int(value)
                self.pidfd = os.pidfd_open(int(value))  # readable once the program has exited
                self.poller.register(self.pidfd, select.POLLIN)
                os.waitpid(self.a, 0)  # A exits right after saying P; reaped, it leaves the
                self.a_reaped = True   # program's process count (RLIMIT_NPROC) ...
                self.open_gate()       # ... and only then may the program start
            elif key == "E":
                self.info["E"] = value

    def open_gate(self) -> None:
        if self.gate_w >= 0:
            os.close(self.gate_w)
            self.gate_w = -1

    def close(self) -> None:
        for fd in (*[r for r in self.names], *([self.pidfd] if self.pidfd >= 0 else [])):
            os.close(fd)


def _make_tmpdir() -> str:
    import tempfile  # only without namespaces, where /tmp is the host's

    return tempfile.mkdtemp(prefix="verirl-unsafe-")


def _remove_tree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- stages A, B, C


def _say(fd: int, line: str) -> None:
    write_all(fd, (line + "\n").encode())


def _check(libc, ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _stage_a(server: ForkServer, req: dict, pipes: dict, tmpdir: str | None, gate: int) -> None:
    for fd in (server.ctl_in, server.ctl_out, server.cfg["token_fd"], *(r for r, _ in pipes.values())):
        os.close(fd)
    info = pipes["info"][1]
    try:
        os.setsid()  # kill(0, ...) from the program reaches its own group, never the fork server
        if server.isolate:
            _isolate(server, req["limits"])
        c = os.fork()
    except OSError as exc:
        _say(info, f"E sample setup failed: {exc}")
        os._exit(70)
    if c == 0:
        try:
            _stage_c(server, req, pipes, tmpdir, gate)
        finally:
            os._exit(70)
    _say(info, f"P {c}")
    os._exit(0)


def _isolate(server: ForkServer, limits: dict) -> None:
    """Enter the sample's own user, pid, mount and IPC namespaces as an unprivileged user."""
    libc, uid = server.libc, server.cfg.get("uid")
    if uid is not None:  # started as root: become the sandbox user, so RLIMIT_NPROC applies
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    outer_uid, outer_gid = os.getuid(), os.getgid()
    _check(libc, libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC), "unshare")
    libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # the id maps of a non-dumpable process belong to root
    for name, text in (("setgroups", "deny"), ("uid_map", f"{INNER_ID} {outer_uid} 1"),
                       ("gid_map", f"{INNER_ID} {outer_gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # no ptrace or /proc/PID/mem from the program
    _check(libc, libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    tmp = f"size={limits['tmp_bytes']},nr_inodes=16384,mode=1777".encode()
    for target in (b"/tmp", b"/dev/shm"):
        _check(libc, libc.mount(b"tmpfs", target, b"tmpfs", MS_NOSUID | MS_NODEV, tmp), f"mount {target}")
    hidden = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
    _check(libc, libc.mount(b"tmpfs", b"/proc", b"tmpfs", hidden, b"size=4096,mode=555"), "hide /proc")


def _stage_c(server: ForkServer, req: dict, pipes: dict, tmpdir: str | None, gate: int) -> None:
    """The program's process: with namespaces, pid 1 of its own pid namespace, so that when it
    exits the kernel kills every process it left behind."""
    os.dup2(pipes["out"][1], 1)
    os.dup2(pipes["err"][1], 2)
    os.dup2(pipes["res"][1], RESULT_FD)
    stdin = os.memfd_create("stdin")
    write_all(stdin, req.get("stdin", "").encode())
    os.lseek(stdin, 0, os.SEEK_SET)
    os.dup2(stdin, 0)
    os.dup2(gate, RESULT_FD + 1)
    gate = RESULT_FD + 1
    os.closerange(RESULT_FD + 2, 1 << 20)  # the info pipe included: the program cannot speak for A
    _drop_capabilities(server.libc)
    _apply_limits(req["limits"])
    os.chdir(tmpdir or "/tmp")
    os.environ["HOME"] = os.environ["TMPDIR"] = os.environ["PWD"] = tmpdir or "/tmp"
    sys.modules["random"].seed(0)  # a fork inherits the fork server's state: same for every sample
    while os.read(gate, 1):  # end of file once the fork server has reaped A (see _Run._parse_info)
        pass
    os.close(gate)
    HARNESS[req["mode"]](server, req)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


def _drop_capabilities(libc) -> None:
    """No capabilities left, not even in the sample's own user namespace. (The bounding set
    can stay: the program is not uid 0 in its namespace, `no_new_privs` is set and the mounts
    are nosuid, so no execve can bring capabilities back.)"""
    libc.capset(ctypes.byref(_CapHeader(0x20080522, 0)), (ctypes.c_uint32 * 6)())


def _apply_limits(limits: dict) -> None:
    cpu = max(1, math.ceil(limits["cpu_s"]))
    # soft == hard: SIGKILL at the limit (a namespace's init ignores SIGXCPU)
    for res, value in ((resource.RLIMIT_CPU, cpu),
                       (resource.RLIMIT_AS, limits["memory_bytes"]),
                       (resource.RLIMIT_FSIZE, limits["file_bytes"]),
                       (resource.RLIMIT_NOFILE, limits["open_files"]),
                       (resource.RLIMIT_NPROC, limits["processes"]),
                       (resource.RLIMIT_CORE, 0)):
        soft, hard = value if isinstance(value, tuple) else (value, value)
        resource.setrlimit(res, (soft, hard))


# --------------------------------------------------------------------------- harnesses (in C)


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
        write_all(RESULT_FD, _dumps(report).encode())
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

    candidate.__name__ = candidate.__qualname__ = getattr(fn, "__name__", "candidate")
    return candidate


def _own(pid: int, code: int) -> None:
    """Processes the program forked run this harness code too when they fall out of it; only
    the program's own process may report or pass."""
    if os.getpid() != pid:
        _flush()
        os._exit(code)


def run_assert(server: ForkServer, req: dict) -> None:
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


def run_io(server: ForkServer, req: dict) -> None:
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


def run_call(server: ForkServer, req: dict) -> None:
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
    write_all(RESULT_FD, _dumps({"results": results}).encode())
    os._exit(0)


HARNESS = {"assert": run_assert, "io": run_io, "call": run_call}


if __name__ == "__main__":
    ForkServer(json.loads(sys.argv[1])).serve()
