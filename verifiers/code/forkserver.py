"""Trusted code inside each sandbox: the fork server, its zygote, and the process tree of a sample.

`verifiers.sandbox` starts this file inside bubblewrap (`python -S -s -B -X utf8 -c BOOT THIS CONFIG`)
next to `_sandbox_wire.py`, `_sandbox_jail.py` and `_sandbox_harness.py`, which it loads by
path (standard library only: our package is not visible in the sandbox). The parent imports
this module for the control channel's framing (`write_msg`).

    fork server F  sandbox root with CAP_SETUID/SETGID/KILL only. Reads requests on its stdin,
      |            hands each to the zygote, reads the sample's pipes with caps on time and
      |            bytes, answers. It forks Z before reading any request.
    zygote Z       never reads a request: it keeps one supervisor S forked ahead, which starts
      |            a session, becomes the sandbox user and waits for a sample's descriptors
      |            (two memfds with the candidate's and the judge's part of the request, the
      |            output pipes); once S took them, Z forks the next. So every sample starts
      |            from a process that never held another sample's request, reply, program or
      |            output.
    sample S       reads the candidate's part, unshares a user and a pid namespace and forks
      |            C. For `assert`, S then becomes the judge: it reads the tests (which C,
      |            forked before, never held), confines itself and runs `check(candidate)`
      |            with the entry point replaced by a proxy whose calls cross to C as plain
      |            data, return values coming back through the strict decoder. S is outside
      |            C's pid namespace and process group: C cannot see or signal it. Only S
      |            holds the result pipe. S waits for C and reports its exit status, CPU time
      |            and the memory cgroup's OOM kills on the info pipe.
      +-- C        the program: pid 1 of a new pid namespace, with its own user, mount and IPC
                   namespaces, a private /tmp, no capabilities, seccomp and rlimits. When it
                   exits the kernel kills every process left in its namespace.
"""

from __future__ import annotations

import ctypes
import fcntl
import gc
import importlib.util
import json
import os
import select
import signal
import socket
import struct
import sys
import time

RESULT_FD, CALLS_FD, REPLY_FD = 3, 4, 5   # see `_sandbox_harness`
GRACE_S = 0.5          # how long to drain pipes after the sample's supervisor has exited
KILL_WAIT_S = 2.0      # how long to wait for a killed sample's supervisor to go
# Imported once by the fork server, so that programs find them loaded: what HumanEval and MBPP
# programs import most. Not hashlib or statistics: they would make every fork dearer.
PRELOAD = ("bisect", "collections", "copy", "functools", "heapq", "itertools", "math", "operator",
           "random", "re", "string", "typing")
FDS = ("cand", "judge", "out", "err", "res", "info")   # what the zygote hands to each sample


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


def _load(name: str):
    """A sibling module, by path: putting this folder on sys.path would let
    `verifiers/math.py` shadow the standard library's `math`."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- fork server


class ForkServer:
    """Serves requests one at a time on the control pipe; see the module docstring."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.isolate = bool(cfg["isolate"])
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.ctl_in, self.ctl_out = os.dup(0), os.dup(1)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.close(null)
        sys.path.extend(cfg.get("paths", []))  # the allowed packages' folders only
        for name in PRELOAD:
            __import__(name)
        self.wire, self.jail = _load("_sandbox_wire"), _load("_sandbox_jail")
        self.harness = _load("_sandbox_harness")
        bpf = self.jail.seccomp_filter() if self.isolate else None
        self.seccomp = None if bpf is None else ctypes.create_string_buffer(bpf, len(bpf))
        self.oom_counter = _open_oom_counter(cfg.get("memcg"))
        gc.collect()
        gc.freeze()  # the children's collections skip these objects: fewer copy-on-write faults
        self.zygote, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.zygote_pid = os.fork()
        if self.zygote_pid == 0:
            try:
                os.close(self.ctl_in)
                os.close(self.ctl_out)
                self.zygote.close()
                _zygote(self, theirs)
            finally:
                os._exit(70)
        theirs.close()

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
        tmpdir = None if self.isolate else _make_tmpdir()
        try:
            return self.run(req, tmpdir)
        finally:
            if tmpdir is not None:
                _remove_tree(tmpdir)

    def run(self, req: dict, tmpdir: str | None) -> dict:
        judge = {"tests": req.pop("tests", None), "entry_point": req.get("entry_point"),
                 "limits": req["limits"], "max_reply": req["limits"]["output_bytes"]}
        req["tmpdir"] = tmpdir
        theirs = {"cand": _memfd("cand", json.dumps(req).encode()),
                  "judge": _memfd("judge", json.dumps(judge).encode())}
        pipes = {name: os.pipe() for name in ("out", "err", "res", "info")}
        theirs.update({name: w for name, (_, w) in pipes.items()})
        start = time.monotonic()
        try:
            socket.send_fds(self.zygote, [b"S"], [theirs[name] for name in FDS])
        finally:
            for fd in theirs.values():
                os.close(fd)
        limits = req["limits"]
        run, reason = _Run(self.ctl_in, {name: r for name, (r, _) in pipes.items()}), "error"
        try:
            reason = run.collect(start + limits["wall_s"], limits["output_bytes"])
        finally:  # also when collecting failed, or the supervisor died: nothing may outlive its request
            if reason is not None or "X" not in run.info:
                run.kill(self.isolate)
        run.close()
        report = run.info.get("X", {})
        reply = {k: bytes(run.bufs[k]).decode("latin-1") for k in ("out", "err", "res")}
        reply.update(wall_s=time.monotonic() - start, reason=reason, setup_error=run.info.get("E"),
                     status=report.get("status"), cpu_s=report.get("cpu"),
                     oom=report.get("oom", 0), shutdown=reason == "shutdown")
        return reply


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name)
    write_all(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class _Run:
    """The fork server's view of one sample: its pipes and its supervisor's report."""

    def __init__(self, ctl_in: int, fds: dict):
        self.ctl_in = ctl_in
        self.names = {fd: name for name, fd in fds.items()}
        self.bufs = {name: bytearray() for name in fds}
        self.info: dict = {}
        self.pidfds: dict = {}
        self.poller = select.poll()
        for fd in (*self.names, ctl_in):
            self.poller.register(fd, select.POLLIN)

    def collect(self, deadline: float, cap: int) -> str | None:
        """Read until the supervisor has gone and the pipes are closed; or return the reason to
        kill the sample: "timeout", "output" (over `cap` bytes) or "shutdown"."""
        total, drain_until = 0, None
        while self.names:
            now = time.monotonic()
            end = deadline if drain_until is None else min(deadline, drain_until)
            if now >= end:
                return "timeout" if drain_until is None else None
            for fd, _ in self.poller.poll(max(1, int((end - now) * 1000))):
                if fd == self.ctl_in:
                    return "shutdown"  # the parent went away
                chunk = os.read(fd, 1 << 16)
                name = self.names[fd]
                if not chunk:
                    self.poller.unregister(fd)
                    del self.names[fd]
                    if name == "info":
                        drain_until = time.monotonic() + GRACE_S  # the sample's processes are gone
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
        lines = bytes(self.bufs["info"]).split(b"\n")
        self.bufs["info"] = bytearray(lines.pop())
        for line in lines:
            key, _, value = line.decode("utf-8", "replace").partition(" ")
            if key in ("S", "C"):
                self.info[key] = int(value)
                try:  # a handle on that very process: signalling it later can never hit a reused pid
                    self.pidfds[key] = os.pidfd_open(int(value))
                except OSError:
                    pass
            elif key == "E":
                self.info["E"] = value
            elif key == "X":
                self.info["X"] = json.loads(value)

    def kill(self, isolate: bool) -> None:
        """End the program (its namespace's init: all of it dies) and the supervisor (the judge)."""
        for key in ("C", "S"):
            if key in self.pidfds:
                try:
                    signal.pidfd_send_signal(self.pidfds[key], signal.SIGKILL)
                except OSError:
                    pass  # already gone
            if key in self.info and not isolate:
                _signal(-self.info[key], signal.SIGKILL)  # its process group (best effort)
        end = time.monotonic() + KILL_WAIT_S
        fd = next((fd for fd, name in self.names.items() if name == "info"), None)
        while fd is not None and (left := end - time.monotonic()) > 0:  # until the supervisor is gone
            if select.select([fd], [], [], left)[0] and not os.read(fd, 1 << 16):
                break

    def close(self) -> None:
        for fd in (*self.names, *self.pidfds.values()):
            os.close(fd)


def _make_tmpdir() -> str:
    import tempfile  # only without namespaces, where /tmp is the host's

    return tempfile.mkdtemp(prefix="verirl-unsafe-")


def _remove_tree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- zygote and sample


def _zygote(server: ForkServer, sock: socket.socket) -> None:
    """Keep one supervisor forked ahead, waiting for the next sample's descriptors (so the fork
    is off the sample's critical path); never read what the descriptors hold."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the supervisors
    while True:
        took_r, took_w = os.pipe()
        if os.fork() == 0:
            try:
                os.close(took_r)
                _spare(server, sock, took_w)
            finally:
                os._exit(70)
        os.close(took_w)
        took = os.read(took_r, 1)  # the spare took a sample (or found the fork server gone)
        os.close(took_r)
        if not took:
            os._exit(0)


def _spare(server: ForkServer, sock: socket.socket, took: int) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()  # kill(0, ...) from a sample reaches its own group, never the fork server
    server.jail.become(server.cfg.get("uid"))
    try:
        msg, fds, _, _ = socket.recv_fds(sock, 16, len(FDS))
    except OSError:
        os._exit(0)
    if not msg or len(fds) != len(FDS):
        os._exit(0)  # the fork server is gone
    os.write(took, b"S")
    os.close(took)
    sock.close()
    _supervise(server, dict(zip(FDS, fds)))


def _say(fd: int, line: str) -> None:
    write_all(fd, (line + "\n").encode())


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _supervise(server: ForkServer, fds: dict) -> None:
    """S: set the sample up, start the program, judge it (`assert`), wait for it, report."""
    # Above every descriptor number the children will set (0-5), so that no dup2 clobbers one.
    fds = {name: _high(fd) for name, fd in fds.items()}
    info, libc, jail = fds["info"], server.libc, server.jail
    try:
        _say(info, f"S {os.getpid()}")
        req = json.loads(_read_all(fds["cand"]))
        oom = _oom_kills(server.oom_counter)
        judging = req["mode"] == "assert"
        if judging:
            calls, replies = os.pipe(), os.pipe()
            program_fds = {RESULT_FD: replies[1], CALLS_FD: calls[0]}
        else:
            program_fds = {RESULT_FD: fds["res"]}
        if server.isolate:
            jail.enter_pid_namespace(libc)  # for C; S itself stays where C cannot see it
        c = os.fork()
        if c == 0:
            _start(server, req, fds, program_fds)
        _say(info, f"C {c}")
        for name in ("out", "err"):
            os.close(fds[name])
        if judging:
            os.close(calls[0])
            os.close(replies[1])
            verdict = _judge(server, fds, calls[1], replies[0])
            write_all(fds["res"], verdict)
            for fd in (RESULT_FD, CALLS_FD, REPLY_FD):  # hanging up ends the program's harness
                os.close(fd)
        os.close(fds["res"])
    except OSError as exc:
        _say(info, f"E sample setup failed: {exc}")
        os._exit(70)
    _, status, usage = os.wait4(c, 0)
    report = {"status": status, "cpu": usage.ru_utime + usage.ru_stime}
    if server.oom_counter >= 0:
        report["oom"] = _oom_kills(server.oom_counter) - oom
    _say(info, "X " + json.dumps(report))
    os._exit(0)


def _judge(server: ForkServer, fds: dict, calls: int, replies: int) -> bytes:
    """S as the judge, once the program's process is started: read the tests (never read
    before C was forked, so C cannot hold them), confine, run `check(proxy)`."""
    req = json.loads(_read_all(fds["judge"]))
    for target, fd in ((CALLS_FD, _high(calls)), (REPLY_FD, _high(replies))):
        os.dup2(fd, target)
        os.close(fd)
    os.dup2(fds["res"], RESULT_FD)  # unused by the judge; kept so that 3-5 are the channel's
    _confine(server, req, "judge")
    return server.harness.run_judge(req)


def _high(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 64)
    os.close(fd)
    return high


def _open_oom_counter(memcg: str | None) -> int:
    """The worker's memory cgroup's OOM-kill counter, opened while we are root, above the
    descriptor numbers the samples set; -1 without a cgroup."""
    for name in ("memory.events", "memory.oom_control"):  # v2, v1
        path = os.path.join(memcg or "/nonexistent", name)
        if os.path.exists(path):
            return _high(os.open(path, os.O_RDONLY))
    return -1


def _oom_kills(counter: int) -> int:
    if counter < 0:
        return 0
    for line in os.pread(counter, 4096, 0).decode().splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return 0


def _start(server: ForkServer, req: dict, fds: dict, channel: dict) -> None:
    """C: take the sample's pipes, confine, run the program's harness; never returns."""
    info = fds["info"]
    try:
        os.setsid()  # its own process group: kill(0, ...) from the program cannot reach S
        os.dup2(fds["out"], 1)
        os.dup2(fds["err"], 2)
        os.dup2(_memfd("stdin", req.get("stdin", "").encode()), 0)
        channel = {target: fcntl.fcntl(fd, fcntl.F_DUPFD, 64) for target, fd in channel.items()}
        for target, fd in channel.items():
            os.dup2(fd, target)
        _confine(server, req, "program")
    except OSError as exc:  # the sandbox failed, not the program: say so on S's channel
        _say(info, f"E sample setup failed: {exc}")
        os._exit(70)
    os.closerange(max(channel) + 1, 1 << 20)  # the info pipe and the judge's memfd included
    try:
        server.harness.HARNESS[req["mode"]](server, req)
    finally:
        os._exit(70)


def _confine(server: ForkServer, req: dict, role: str) -> None:
    jail, libc, limits = server.jail, server.libc, req["limits"]
    tmpdir = req.get("tmpdir")
    if role == "program" and server.isolate:
        jail.enter_private_namespaces(libc, limits, server.seccomp is not None)
    jail.drop_capabilities(libc)
    if server.seccomp is not None:
        jail.install_seccomp(libc, server.seccomp)
    if role == "program":
        jail.apply_limits(limits, limits["memory_bytes"])
    else:  # the judge forks nothing: no process limit, which would also count the program's
        jail.apply_limits(limits, limits["judge_memory_bytes"], processes=False)
    os.chdir(tmpdir or "/tmp")
    os.environ["HOME"] = os.environ["TMPDIR"] = os.environ["PWD"] = tmpdir or "/tmp"
    sys.modules["random"].seed(0)  # a fork inherits the fork server's state: same for every sample


if __name__ == "__main__":
    ForkServer(json.loads(sys.argv[1])).serve()
