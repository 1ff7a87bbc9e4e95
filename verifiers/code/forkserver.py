"""Trusted code inside each sandbox: the fork server, which serves the parent's requests.

`verifiers.code.sandbox` starts this file inside bubblewrap (`python -S -s -B -X utf8 -c BOOT THIS CONFIG`)
next to `sample.py`, `wire.py`, `jail.py` and `harness.py`, which it loads by path (standard
library only, and no package-relative import: our package is not visible in the sandbox).

    fork server F  sandbox root with CAP_SETUID/SETGID/KILL only. Reads requests on its stdin,
      |            hands each to the zygote, reads the sample's pipes with caps on time and
      |            bytes, answers. It forks Z before reading any request.
    zygote Z, then sample S, then the program C: see `sample.py`.

Requests and replies are length-prefixed JSON (`read_msg`, `write_msg`: the child's side of
`verifiers.worker_process.LENGTH_PREFIXED`). At end of input (the parent closed the pipe, or
died) the fork server returns, and the whole sandbox ends with it.
"""

from __future__ import annotations

import ctypes
import gc
import importlib.util
import json
import math
import os
import select
import signal
import socket
import struct
import sys
import time

GRACE_S = 0.5          # how long to drain pipes after the sample's supervisor has exited
KILL_WAIT_S = 2.0      # how long to wait for a killed sample's supervisor to go
# Imported once by the fork server, so that programs find them loaded: what HumanEval and MBPP
# programs import most. Not hashlib or statistics: they would make every fork dearer.
PRELOAD = ("bisect", "collections", "copy", "functools", "heapq", "itertools", "math", "operator",
           "random", "re", "string", "typing")


def _load(name: str):
    """A sibling module, by path, as `_sandbox_NAME` (the names the harness imports). Not by
    putting this folder on sys.path: the programs would find our modules under plain names."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
    spec = importlib.util.spec_from_file_location("_sandbox_" + name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


sample = _load("sample")
accounting = _load("accounting")


# --------------------------------------------------------------------------- control channel


def read_exact(fd: int, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def read_msg(fd: int):
    """One length-prefixed JSON message, or None at end of stream."""
    head = read_exact(fd, 4)
    if len(head) < 4:
        return None
    return json.loads(read_exact(fd, struct.unpack(">I", head)[0]))


def write_msg(fd: int, obj) -> None:
    data = json.dumps(obj).encode()
    sample.write_all(fd, struct.pack(">I", len(data)) + data)


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
        # The pool's own preloads (trusted library modules, imported before any request so that
        # every sample finds them loaded), with the environment they must see at import time.
        os.environ.update(cfg.get("env") or {})
        for name in PRELOAD + tuple(cfg.get("preload") or ()):
            __import__(name)
        self.wire, self.jail = _load("wire"), _load("jail")
        for name in ("decoder", "channel", "hosting", "proxies", "judging", "judge_side"):  # what the harness imports
            _load(name)
        self.harness = _load("harness")
        self.cgroup = accounting.adopt(cfg.get("cgroup") or {})
        # Without a CPU counter the sample's time is summed over its process tree, which only
        # holds if no child can be reaped unseen: then SIGCHLD's disposition is refused.
        bpf = self.jail.seccomp_filter(sigchld="cpu" not in self.cgroup) if self.isolate else None
        self.seccomp = None if bpf is None else ctypes.create_string_buffer(bpf, len(bpf))
        self.oom_counter = self.cgroup.get("oom", -1)
        # The compiler's AST types are made on the first compile() of a process: here, once, and
        # not in every program's process (the modules above came from their bytecode cache).
        compile("pass", "<warm>", "exec")
        gc.collect()
        gc.freeze()  # the children's collections skip these objects: fewer copy-on-write faults
        self.zygote, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.zygote_pid = os.fork()
        if self.zygote_pid == 0:
            try:
                os.close(self.ctl_in)
                os.close(self.ctl_out)
                self.zygote.close()
                sample.zygote(self, theirs)
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
        # The judge's part: what the program's process never holds (the tests, the judge's seed).
        judge = {name: req.pop(name, None)
                 for name in ("tests", "tests_code", "setup", "setup_code", "seed", "prefetch")}
        judge.update(entry_point=req.get("entry_point"), limits=req["limits"], tmpdir=tmpdir)
        req["tmpdir"] = tmpdir
        theirs = {"cand": sample.memfd("cand", json.dumps(req).encode()),
                  "judge": sample.memfd("judge", json.dumps(judge).encode())}
        pipes = {name: os.pipe() for name in ("out", "err", "res", "info")}
        theirs.update({name: w for name, (_, w) in pipes.items()})
        start = time.monotonic()
        clock = accounting.Clock(self.cgroup, req["limits"]["cpu_s"], start)
        try:
            flags = f"S {req['mode']} {int(bool(req.get('judge_threads')))}".encode()  # all S needs of the request
            socket.send_fds(self.zygote, [flags], [theirs[name] for name in sample.FDS])
        finally:
            for fd in theirs.values():
                os.close(fd)
        limits = req["limits"]
        run, reason = _Run(self.ctl_in, {name: r for name, (r, _) in pipes.items()}), "error"
        try:
            reason = run.collect(start + limits["wall_s"], {"out": limits["output_bytes"],
                                                            "err": limits["output_bytes"],
                                                            "res": limits["reply_bytes"]}, clock)
        finally:  # also when collecting failed, or the supervisor died: nothing may outlive its request
            if reason is not None or "X" not in run.info:
                run.kill(self.isolate)
                accounting.wait_empty(self.cgroup.get("folder", -1))
        run.close()
        report = run.info.get("X", {})
        cpu = clock.total(report.get("cpu"))
        # One rule, one clock: a sample whose processes spent the limit timed out, whoever
        # ended it (our check, the RLIMIT_CPU backstop, its own exit just before our check).
        if reason is None and cpu >= limits["cpu_s"]:
            reason = "timeout"
        reply = {k: bytes(run.bufs[k]).decode("latin-1") for k in ("out", "err", "res")}
        reply.update(wall_s=time.monotonic() - start, reason=reason, setup_error=run.info.get("E"),
                     status=report.get("status"), cpu_s=cpu,
                     oom=report.get("oom", 0), shutdown=reason == "shutdown")
        return reply


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

    def collect(self, deadline: float, caps: dict, clock: "accounting.Clock") -> str | None:
        """Read until the supervisor has gone and the pipes are closed; or return the reason to
        kill the sample: "timeout" (CPU time or wall clock), "output" (stdout and stderr together
        over `caps["out"]` bytes, or the result over `caps["res"]`) or "shutdown"."""
        total, drain_until = 0, None
        while self.names:
            now = time.monotonic()
            running = drain_until is None
            if running and now >= clock.next and clock.over(now, self.info.get("C")):
                return "timeout"
            end = deadline if running else min(deadline, drain_until)
            if now >= end:
                return "timeout" if running else None
            wake = min(end, clock.next) if running else end
            for fd, _ in self.poller.poll(max(1, math.ceil((wake - now) * 1000))):
                if fd == self.ctl_in:
                    return "shutdown"  # the parent went away
                chunk = os.read(fd, 1 << 16)
                name = self.names[fd]
                if not chunk:
                    self.poller.unregister(fd)
                    del self.names[fd]
                    os.close(fd)  # the fork server serves thousands of samples: every descriptor it opens, it closes
                    if name == "info":
                        drain_until = time.monotonic() + GRACE_S  # the sample's processes are gone
                elif name == "info":
                    self._parse_info(chunk)
                else:
                    self.bufs[name] += chunk
                    total += len(chunk) if name != "res" else 0
                    if total > caps["out"] or len(self.bufs["res"]) > caps["res"]:
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
        poller = select.poll()  # not select(): it refuses descriptor numbers past 1023
        if fd is not None:
            poller.register(fd, select.POLLIN)
        while fd is not None and (left := end - time.monotonic()) > 0:  # until the supervisor is gone
            if poller.poll(max(1, math.ceil(left * 1000))) and not os.read(fd, 1 << 16):
                break

    def close(self) -> None:
        for fd in (*self.names, *self.pidfds.values()):
            os.close(fd)


# --------------------------------------------------------------------------- unsafe mode


def _make_tmpdir() -> str:
    import tempfile  # only without namespaces, where /tmp is the host's

    return tempfile.mkdtemp(prefix="verirl-unsafe-")


def _remove_tree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    ForkServer(json.loads(sys.argv[1])).serve()
