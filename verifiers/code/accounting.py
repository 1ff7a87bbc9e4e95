"""Trusted code inside each sandbox: what the fork server knows of one sample's resources.

Loaded by path by the fork server (`forkserver.py`; standard library only):

* `adopt`: the worker's sample cgroup, as descriptors the parent opened and the fork server
  inherited (`verifiers.code.memory.SampleCgroup.descriptors`; the cgroup files are not
  visible in the sandbox): `join` (written by the program's process, `sample.py`), `oom`,
  `folder` and `cpu`;
* `Clock`: the CPU time of the sample's program, all its processes together, which the fork
  server checks between reads of the sample's pipes, killing the sample at the limit;
* `wait_empty`: after a kill, until the cgroup holds none of the sample's processes.
"""

from __future__ import annotations

import fcntl
import os
import time

MIN_CHECK_S = 0.01     # the shortest wait between two checks of a sample's CPU time
KILL_WAIT_S = 2.0      # the longest wait for a killed sample's processes to leave the cgroup


class Clock:
    """The CPU time of one sample's program, all its processes together, while it runs.

    With a sample cgroup (`verifiers.code.memory`), its counter: exact, whatever the processes
    did. Without one, a sum over /proc of the program's process tree (`tree_cpu`): the
    program's process is its pid namespace's init, which adopts every orphan, so the tree holds
    all the sample's processes, and each process's count includes the children it reaped; the
    seccomp filter refuses the SIGCHLD dispositions that let the kernel reap a child uncounted.
    A process the kernel kills when the program's process exits is not counted (it is gone).

    The program cannot spend faster than on every CPU at once, so the first check comes after
    limit / cpus seconds and each next one after what is left / cpus (at least MIN_CHECK_S): a
    sample shorter than that costs two reads of the counter, and no scan of /proc."""

    def __init__(self, cgroup: dict, limit: float, start: float):
        self.fd, self.scale = cgroup.get("cpu", -1), cgroup.get("cpu_scale", 1e-9)
        self.limit, self.spent = limit, 0.0
        self.base = self._counter() if self.fd >= 0 else 0.0
        self.cpus = max(1, len(os.sched_getaffinity(0)))
        self.next = start + limit / self.cpus

    def _counter(self) -> float:
        words = os.pread(self.fd, 4096, 0).split()  # cpuacct.usage: "N"; cpu.stat: "usage_usec N ..."
        return int(words[1] if words[0] == b"usage_usec" else words[0]) * self.scale

    def _measure(self, pid: int | None) -> float:
        if self.fd >= 0:
            return self._counter() - self.base
        return tree_cpu(pid) if pid else 0.0

    def over(self, now: float, pid: int | None) -> bool:
        """Whether the sample has spent its limit; if not, when to look again (`next`)."""
        used = self._measure(pid)
        if used >= self.limit and self.fd < 0:
            used = self._measure(pid)  # a child reaped between two reads of one scan counts twice: look again
        self.spent = max(self.spent, used)
        if used >= self.limit:
            return True
        self.next = now + max(MIN_CHECK_S, (self.limit - used) / self.cpus)
        return False

    def total(self, waited: float | None) -> float:
        """Once the sample's processes are gone: its CPU seconds (the counter; else the most
        that the scans or the supervisor's `wait4` of the program's process saw)."""
        if self.fd >= 0:
            return self._counter() - self.base
        return max(self.spent, waited or 0.0)


_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int) -> float:
    """CPU seconds of process `root` and all its descendants, each with the children it reaped
    (utime, stime, cutime and cstime of /proc/PID/stat)."""
    children: dict = {}
    own = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()  # after the command's name: state, ppid, ...
        except (OSError, IndexError):
            continue  # gone meanwhile
        children.setdefault(int(fields[1]), []).append(int(name))
        own[int(name)] = sum(map(int, fields[11:15]))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += own.get(pid, 0)
        todo += children.get(pid, ())
    return total / _TICK


def wait_empty(folder: int) -> None:
    """After a kill: until the sample cgroup (a descriptor of its folder) holds no process, so
    that none of this sample's memory is charged to the next, KILL_WAIT_S at most; at once
    without a cgroup. `cgroup.procs` is opened afresh each time: v1 keeps the list an open
    descriptor read first."""
    end = time.monotonic() + KILL_WAIT_S
    while folder >= 0 and _holds_processes(folder) and time.monotonic() < end:
        time.sleep(0.005)


def _holds_processes(folder: int) -> bool:
    fd = os.open("cgroup.procs", os.O_RDONLY, dir_fd=folder)
    try:
        return bool(os.read(fd, 64).strip())
    finally:
        os.close(fd)


def adopt(cgroup: dict) -> dict:
    """The sample cgroup's descriptors (inherited from the parent), moved above the numbers the
    samples set (0-5)."""
    def high(fd: int) -> int:
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 64)
        os.close(fd)
        return moved

    adopted = {key: high(value) if key in ("oom", "folder", "cpu") else value for key, value in cgroup.items()}
    adopted["join"] = [high(fd) for fd in cgroup.get("join", ())]
    return adopted
