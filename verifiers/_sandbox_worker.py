"""Trusted code inside each sandbox: the fork server that runs one program per request.

`verifiers.sandbox` starts this file inside bubblewrap (`python -S -s -B -X utf8 -c BOOT THIS CONFIG`)
next to `_sandbox_harness.py`, which it loads by path. Both use the standard library only:
our package is not visible in the sandbox. The parent imports this module for the control
channel's framing (`write_msg`).

One request, two forks (the fork server stays warm between requests):

    fork server   sandbox root with CAP_SETUID/SETGID/KILL only; reads the request, forks A,
      |           reads the program's pipes with caps on time and bytes, reaps C, answers
      A           new session; becomes the unprivileged sandbox user; unshares a user and a
      |           pid namespace; forks C, reports its pid, exits
      C           pid 1 of the new pid namespace; unshares its own user (so that its process
                  count is its own), mount and IPC namespaces; mounts a private size-capped
                  /tmp and /dev/shm and an empty /proc; drops all capabilities, applies
                  rlimits, runs the harness and the program. When it exits, the kernel kills
                  every process left in its namespace (daemons, double forks, setsid included).

The `assert` harness writes the per-sample token (read from a pipe only the fork server
holds, into memory outside Python's object graph) after `check(candidate)` returns, and
nowhere else; see `verifiers.sandbox` for what that does and does not guarantee.
"""

from __future__ import annotations

import ctypes
import gc
import importlib.util
import json
import math
import os
import resource
import select
import signal
import struct
import sys
import time

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID = 0x20000, 0x8000000, 0x10000000, 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 0x4000, 0x40000
PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 4, 36
INNER_ID = 1000        # the program's uid and gid inside its own user namespace
RESULT_FD = 3          # the harness's channel (`_sandbox_harness.RESULT_FD`)
TOKEN_MAX = 64
GRACE_S = 0.5          # how long to drain pipes after the sample's init has exited
# Imported once by the fork server, so that programs find them loaded: what HumanEval and MBPP
# programs import most. Not hashlib or statistics: they would make every fork dearer.
PRELOAD = ("bisect", "collections", "copy", "functools", "heapq", "itertools", "math", "operator",
           "random", "re", "string", "typing")


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
        self.harness = _load_harness()
        bpf = seccomp_filter() if self.isolate else None
        self.seccomp = None if bpf is None else ctypes.create_string_buffer(bpf, len(bpf))
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
        start = time.monotonic()
        a = os.fork()
        if a == 0:
            try:
                _stage_a(self, req, pipes, tmpdir)
            finally:
                os._exit(70)
        for _, w in pipes.values():
            os.close(w)
        limits = req["limits"]
        run, reason = _Run(self.ctl_in, pipes), "error"
        try:
            reason = run.collect(start + limits["wall_s"], limits["output_bytes"])
        finally:  # also when collecting failed: nothing may outlive its request
            if reason is not None:
                for pid in (run.info.get("P"), a):
                    if pid:
                        _signal(pid, signal.SIGKILL)  # the program is its namespace's init: all of it dies
                if not self.isolate:
                    _signal(-a, signal.SIGKILL)  # its session's process group (best effort)
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


def _load_harness():
    """`_sandbox_harness.py` from beside this file, loaded by path: putting this folder on
    sys.path would let `verifiers/math.py` shadow the standard library's `math`."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_sandbox_harness.py")
    spec = importlib.util.spec_from_file_location("_sandbox_harness", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.RESULT_FD == RESULT_FD
    return module


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

    def __init__(self, ctl_in: int, pipes: dict):
        self.ctl_in = ctl_in
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
            elif key == "E":
                self.info["E"] = value

    def close(self) -> None:
        for fd in (*[r for r in self.names], *([self.pidfd] if self.pidfd >= 0 else [])):
            os.close(fd)


def _make_tmpdir() -> str:
    import tempfile  # only without namespaces, where /tmp is the host's

    return tempfile.mkdtemp(prefix="verirl-unsafe-")


def _remove_tree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- stages A and C


def _say(fd: int, line: str) -> None:
    write_all(fd, (line + "\n").encode())


def _check(libc, ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _stage_a(server: ForkServer, req: dict, pipes: dict, tmpdir: str | None) -> None:
    for fd in (server.ctl_in, server.ctl_out, server.cfg["token_fd"], *(r for r, _ in pipes.values())):
        os.close(fd)
    info = pipes["info"][1]
    try:
        os.setsid()  # kill(0, ...) from the program reaches its own group, never the fork server
        if server.isolate:
            _enter_pid_namespace(server)
        c = os.fork()
    except OSError as exc:
        _say(info, f"E sample setup failed: {exc}")
        os._exit(70)
    if c == 0:
        try:
            _stage_c(server, req, pipes, tmpdir)
        finally:
            os._exit(70)
    _say(info, f"P {c}")
    os._exit(0)


def _map_ids(libc, uid: int, gid: int) -> None:
    """Map our outer uid/gid (the only ones we may map) to INNER_ID in the new user namespace."""
    libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # the id maps of a non-dumpable process belong to root
    for name, text in (("setgroups", "deny"), ("uid_map", f"{INNER_ID} {uid} 1"), ("gid_map", f"{INNER_ID} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


def _enter_pid_namespace(server: ForkServer) -> None:
    """A: as the unprivileged sandbox user, a user namespace owning a fresh pid namespace,
    whose first process (C, forked next) is its init."""
    libc, uid = server.libc, server.cfg.get("uid")
    if uid is not None:  # started as root: become the sandbox user, so RLIMIT_NPROC applies
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    outer = os.getuid(), os.getgid()
    _check(libc, libc.unshare(CLONE_NEWUSER | CLONE_NEWPID), "unshare(user, pid)")
    _map_ids(libc, *outer)


def _enter_private_namespaces(libc, limits: dict, seccomp: bool) -> None:
    """C: its own user namespace (so that RLIMIT_NPROC counts the program's processes only,
    not A's), mount and IPC namespaces; a private /tmp and /dev/shm, an empty /proc."""
    outer = os.getuid(), os.getgid()
    ipc = 0 if seccomp else CLONE_NEWIPC  # without SysV IPC (seccomp) there is nothing to isolate
    _check(libc, libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | ipc), "unshare(user, mount, ipc)")
    _map_ids(libc, *outer)
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # no ptrace or /proc/PID/mem from the program
    _check(libc, libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    tmp = f"size={limits['tmp_bytes']},nr_inodes=16384,mode=1777".encode()
    for target in (b"/tmp", b"/dev/shm"):
        _check(libc, libc.mount(b"tmpfs", target, b"tmpfs", MS_NOSUID | MS_NODEV, tmp), f"mount {target}")
    hidden = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
    _check(libc, libc.mount(b"tmpfs", b"/proc", b"tmpfs", hidden, b"size=4096,mode=555"), "hide /proc")


def _stage_c(server: ForkServer, req: dict, pipes: dict, tmpdir: str | None) -> None:
    """The program's process: with namespaces, pid 1 of its own pid namespace, so that when it
    exits the kernel kills every process it left behind."""
    info = pipes["info"][1]
    try:
        _confine(server, req, pipes, tmpdir)
    except OSError as exc:  # the sandbox failed, not the program: say so on A's channel
        _say(info, f"E sample setup failed: {exc}")
        os._exit(70)
    os.closerange(RESULT_FD + 1, 1 << 20)  # the info pipe included: the program cannot speak for A
    server.harness.HARNESS[req["mode"]](server, req)


def _confine(server: ForkServer, req: dict, pipes: dict, tmpdir: str | None) -> None:
    os.dup2(pipes["out"][1], 1)
    os.dup2(pipes["err"][1], 2)
    os.dup2(pipes["res"][1], RESULT_FD)
    stdin = os.memfd_create("stdin")
    write_all(stdin, req.get("stdin", "").encode())
    os.lseek(stdin, 0, os.SEEK_SET)
    os.dup2(stdin, 0)
    os.close(stdin)
    if server.isolate:
        _enter_private_namespaces(server.libc, req["limits"], server.seccomp is not None)
    _drop_capabilities(server.libc)
    if server.seccomp is not None:
        _install_seccomp(server.libc, server.seccomp)
    _apply_limits(req["limits"])
    os.chdir(tmpdir or "/tmp")
    os.environ["HOME"] = os.environ["TMPDIR"] = os.environ["PWD"] = tmpdir or "/tmp"
    sys.modules["random"].seed(0)  # a fork inherits the fork server's state: same for every sample


# --------------------------------------------------------------------------- seccomp (x86_64)

# System calls a program never needs and that widen the kernel's attack surface or escape
# the limits: SysV IPC and memfd (memory RLIMIT_AS does not count), namespaces (nested user
# namespaces are the usual way into kernel bugs), mounts, io_uring, bpf, userfaultfd,
# perf, keyrings, ptrace and cross-process memory access, modules, kexec, handles, swap.
# They fail with EPERM; clone3 fails with ENOSYS (its flags cannot be inspected), so the C
# library falls back to clone, whose namespace flags are refused.
_DENIED_X86_64 = (29, 64, 68, 240, 319, 447,                            # shmget semget msgget mq_open memfd*
                  272, 308,                                             # unshare setns
                  155, 161, 165, 166, 428, 429, 430, 431, 432, 433, 442,  # pivot_root chroot mount ... mount_setattr
                  425, 426, 427, 321, 323, 298,                         # io_uring_* bpf userfaultfd perf_event_open
                  248, 249, 250, 101, 310, 311,                         # keyrings, ptrace, process_vm_readv/writev
                  175, 176, 313, 246, 320, 303, 304,                    # modules, kexec, name_to/open_by_handle_at
                  103, 163, 167, 168, 169, 179)                         # syslog acct swapon/off reboot quotactl
_NS_FLAGS = 0x7E020000  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
_AUDIT_ARCH_X86_64, _ALLOW, _ERRNO = 0xC000003E, 0x7FFF0000, 0x00050000


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_filter() -> bytes | None:
    """The classic-BPF program above, or None where we have no table for the architecture."""
    if os.uname().machine != "x86_64":
        return None
    code = [("ld", 4), ("jeq", _AUDIT_ARCH_X86_64, 0, "deny"), ("ld", 0),
            ("jge", 0x40000000, "deny", 0),              # the x32 ABI
            ("jeq", 56, "clone", 0), ("jeq", 435, "nosys", 0),
            *[("jeq", nr, "deny", 0) for nr in _DENIED_X86_64], ("ret", _ALLOW),
            "clone", ("ld", 16), ("jset", _NS_FLAGS, "deny", 0), ("ret", _ALLOW),
            "nosys", ("ret", _ERRNO | 38), "deny", ("ret", _ERRNO | 1)]
    labels, program = {}, []
    for item in code:
        if isinstance(item, str):
            labels[item] = len(program)
        else:
            program.append(item)
    ops = {"ld": 0x20, "jeq": 0x15, "jge": 0x35, "jset": 0x45, "ret": 0x06}
    out = bytearray()
    for i, (op, k, *jumps) in enumerate(program):
        jt, jf = (labels[j] - i - 1 if isinstance(j, str) else j for j in (jumps or (0, 0)))
        out += struct.pack("HBBI", ops[op], jt, jf, k)
    return bytes(out)


def _install_seccomp(libc, program: ctypes.Array) -> None:
    fprog = _SockFprog(len(program) // 8, ctypes.addressof(program))
    _check(libc, libc.prctl(22, 2, ctypes.byref(fprog), 0, 0), "seccomp")  # PR_SET_SECCOMP, MODE_FILTER


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


if __name__ == "__main__":
    ForkServer(json.loads(sys.argv[1])).serve()
