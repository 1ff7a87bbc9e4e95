"""Trusted code inside each sandbox: the zygote and the process tree of one sample.

The fork server (`forkserver.py`) loads this file by path inside the sandbox (standard
library only, no package-relative import: our package is not visible there), and forks the
zygote from it before it reads any request. Each function here takes the fork server
(`forkserver.ForkServer`) as `server`: the modules it loaded (`jail`, `harness`), libc, the
seccomp filter, the sample cgroup's descriptors (`accounting.adopt`: its OOM-kill counter, the
files through which the program joins it) and its config.

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
      |            and the sample cgroup's OOM kills on the info pipe.
      +-- C        the program: pid 1 of a new pid namespace, with its own user, mount and IPC
                   namespaces, a private /tmp, no capabilities, seccomp and rlimits; the only
                   process that joins the worker's sample cgroup (`accounting.py`). When it
                   exits the kernel kills every process left in its namespace.
"""

from __future__ import annotations

import fcntl
import json
import os
import resource
import signal
import socket
import sys

RESULT_FD, CALLS_FD, REPLY_FD = 3, 4, 5   # see `harness.py`
FDS = ("cand", "judge", "out", "err", "res", "info")   # what the zygote hands to each sample


# --------------------------------------------------------------------------- descriptors


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name)
    write_all(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


# --------------------------------------------------------------------------- zygote and sample


def zygote(server, sock: socket.socket) -> None:
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


def _spare(server, sock: socket.socket, took: int) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()  # kill(0, ...) from a sample reaches its own group, never the fork server
    server.jail.become(server.cfg.get("uid"))
    try:
        msg, fds, _, _ = socket.recv_fds(sock, 64, len(FDS))
    except OSError:
        os._exit(0)
    if not msg or len(fds) != len(FDS):
        os._exit(0)  # the fork server is gone
    os.write(took, b"S")
    os.close(took)
    sock.close()
    _, mode, threads = msg.decode().split()  # the request's mode and whether its tests start threads
    _supervise(server, dict(zip(FDS, fds)), mode, threads == "1")


def _say(fd: int, line: str) -> None:
    write_all(fd, (line + "\n").encode())


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _supervise(server, fds: dict, mode: str, threads: bool) -> None:
    """S: set the sample up, start the program, judge it (`assert`), wait for it, report. S
    never reads the candidate's part (the program reads it): what it parses before the fork
    would be copied again by both processes' first writes."""
    # Above every descriptor number the children will set (0-5), so that no dup2 clobbers one.
    fds = {name: _high(fd) for name, fd in fds.items()}
    info, libc, jail = fds["info"], server.libc, server.jail
    try:
        _say(info, f"S {os.getpid()}")
        clean_tmp(server)
        oom = _oom_kills(server.oom_counter)
        judging = mode == "assert"
        if judging:
            calls, replies = os.pipe(), os.pipe()
            program_fds = {RESULT_FD: replies[1], CALLS_FD: calls[0]}
        else:
            program_fds = {RESULT_FD: fds["res"]}
        if judging and server.isolate and threads:
            c = _fork_holder(server, fds, program_fds, (calls[1], replies[0]))
        else:
            if server.isolate:
                jail.enter_pid_namespace(libc)  # for C; S itself stays where C cannot see it
            c = os.fork()
            if c == 0:
                _start(server, fds, program_fds)
            _say(info, f"C {c}")
        for fd in _cgroup_fds(server):  # S keeps only the OOM counter: only C joins, only F reads the rest
            os.close(fd)
        for name in ("out", "err", "cand"):
            os.close(fds[name])
        if judging:
            os.close(calls[0])
            os.close(replies[1])
            verdict = _judge(server, fds, calls[1], replies[0])
            write_all(fds["res"], verdict)
            if server.harness.PROGRAM_BUSY[0]:  # still running calls the tests no longer need
                _signal_program(c)
            clean_tmp(server)
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


def _fork_holder(server, fds: dict, program_fds: dict, judge_ends: tuple) -> int:
    """For a judge: fork H, which enters a new pid namespace, forks C as its init, waits for it
    and ends the way C ended (its exit code, or its signal), so that S's `wait4` on H sees
    C's status and, with H's few instructions, C's CPU time. The judge cannot enter the pid
    namespace itself if its tests start threads: after `unshare(CLONE_NEWPID)` a process can
    no longer create any. H costs about 2 ms of CPU (a fork, and the copy-on-write faults of
    a Python process), so the parent asks for it only for tests that may start threads
    (`judge_threads` in the request: `verifier.uses_threads`)."""
    h = os.fork()
    if h:
        return h
    try:
        server.jail.enter_pid_namespace(server.libc)
        c = os.fork()
        if c == 0:
            _start(server, fds, program_fds)
        _say(fds["info"], f"C {c}")
        for fd in (*program_fds.values(), *judge_ends, fds["judge"], fds["res"], fds["out"], fds["err"], fds["info"],
                   fds["cand"], *_cgroup_fds(server), *_cgroup_fds(server, oom=True)):
            os.close(fd)  # hang-ups reach each side when the other goes (S's end too): H holds none open
        _, status, _ = os.wait4(c, 0)
    except OSError as exc:
        _say(fds["info"], f"E sample setup failed: {exc}")
        os._exit(70)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file of H
        if sig not in (signal.SIGKILL, signal.SIGSTOP):  # those two have no handler to reset
            signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 70)


def _cgroup_fds(server, oom: bool = False) -> list:
    """The sample cgroup's descriptors that only C (`join`) or F (`folder`, `cpu`) uses; with
    `oom`, the OOM counter, which S reads after the sample."""
    cgroup = server.cgroup
    keys = ("oom",) if oom else ("folder", "cpu")
    return [*(() if oom else cgroup.get("join", ())), *(cgroup[key] for key in keys if key in cgroup)]


def _judge(server, fds: dict, calls: int, replies: int) -> bytes:
    """S as the judge, once the program's process is started: read the tests (never read
    before C was forked, so C cannot hold them), confine, run `check(proxy)`. Its working
    directory is the worker's /tmp (`clean_tmp`)."""
    req = json.loads(_read_all(fds["judge"]))
    for target, fd in ((CALLS_FD, _high(calls)), (REPLY_FD, _high(replies))):
        os.dup2(fd, target)
        os.close(fd)
    os.dup2(fds["res"], RESULT_FD)  # unused by the judge; kept so that 3-5 are the channel's
    _confine(server, req, "judge")
    return server.harness.run_judge(req)


def _signal_program(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def clean_tmp(server) -> None:
    """Empty the worker's /tmp, which only the judges see (each program has a private tmpfs over
    it): before each sample (a judge that was killed leaves its files) and after each judge,
    so that every judge starts with an empty /tmp and its files do not count against the next
    sample's memory. A shared tmpfs, cleaned, costs far less than a mount namespace a sample."""
    if not server.isolate:
        return  # the unsafe mode's judge works in its own scratch folder
    try:
        names = os.listdir("/tmp")
    except OSError:
        return
    if names:
        import shutil

        for name in names:
            path = os.path.join("/tmp", name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass


def _high(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 64)
    os.close(fd)
    return high


def _oom_kills(counter: int) -> int:
    if counter < 0:
        return 0
    for line in os.pread(counter, 4096, 0).decode().splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return 0


def _start(server, fds: dict, channel: dict) -> None:
    """C: read the candidate's part of the request, take the sample's pipes, confine, run the
    program's harness; never returns."""
    info = fds["info"]
    try:
        # Into the sample cgroup (memory and CPU time) before any code of the program runs, so
        # that all it forks is charged and counted there; the supervisors never join it.
        for fd in server.cgroup.get("join", ()):
            os.write(fd, b"0")
        req = json.loads(_read_all(fds["cand"]))
        os.setsid()  # its own process group: kill(0, ...) from the program cannot reach S
        os.dup2(fds["out"], 1)
        os.dup2(fds["err"], 2)
        os.dup2(memfd("stdin", req.get("stdin", "").encode()), 0)
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


def _confine(server, req: dict, role: str) -> None:
    jail, libc, limits = server.jail, server.libc, req["limits"]
    tmpdir = req.get("tmpdir")
    if role == "program" and server.isolate:
        jail.enter_private_namespaces(libc, limits, server.seccomp is not None)
    jail.drop_capabilities(libc)
    if server.seccomp is not None:
        jail.install_seccomp(libc, server.seccomp)
    if role == "program":
        jail.apply_limits(limits, limits["memory_bytes"])
    else:
        jail.apply_limits(limits, limits["judge_memory_bytes"], program=False)
    os.chdir(tmpdir or "/tmp")
    os.environ["HOME"] = os.environ["TMPDIR"] = os.environ["PWD"] = tmpdir or "/tmp"
    if role == "judge":
        seed_judge(req.get("seed"))
    else:
        sys.modules["random"].seed(0)  # a fork inherits the fork server's state: same for every sample


def seed_judge(seed: str | None) -> None:
    """The judge's random numbers: from a secret the program never holds (the parent's key and
    the sample, see `verifier.judge_seed`), so that tests drawing from `random` cannot be
    replayed by the program, yet give the same verdict for the same sample within a run.
    Without a seed, the OS's entropy. NumPy's global generator too, if something loaded it
    before the fork (it would otherwise be the same in every sample)."""
    value = int(seed, 16) if seed else int.from_bytes(os.urandom(16), "big")
    sys.modules["random"].seed(value)
    if "numpy.random" in sys.modules:
        sys.modules["numpy.random"].seed(value % (1 << 32))
