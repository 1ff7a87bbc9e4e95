"""The memory cap and CPU time of one sample, whatever it forks: a cgroup per worker where we
may make one, else rlimits.

Modes (the `code` verifier's `memory_mode` option; each verdict reports the one in force in
`info["memory_mode"]`):

* `cgroup-v2` / `cgroup-v1`: the pool makes one *sample cgroup* per worker (`cgroups.py`:
  under a folder of the pool in our own cgroup, or the hierarchy's root). Each sample's
  program joins it before it runs any code (through a descriptor of the cgroup's `tasks`
  file on v1, `cgroup.procs` on v2, that the parent opened), so the program and everything
  it forks are charged there; the fork
  server, the zygote and the judge stay in the caller's cgroup. Samples of a worker run one at
  a time, and the cgroup is capped at `memory_mb`, swap included (`memory.swap.max = 0`, or
  v1's `memsw` limit equal to the memory limit). What is charged: resident memory, page
  cache, tmpfs pages (/tmp, /dev/shm), pipe and Unix-socket buffers and kernel objects
  (v1 charges these as "kmem", measured in `benchmarks/bench_sandbox_memory.py`), and TCP
  buffers (v2 in the same counter; v1 in its own, `memory.kmem.tcp`, which we cap at
  `memory_mb` too; the seccomp filter refuses TCP/IP sockets anyway, see `jail.py`). Past the
  cap the kernel OOM-kills a process of the sample, never a supervisor, and the verdict's
  status is `memory` (the fork server reads the sample cgroup's OOM-kill counter). Each
  process also keeps `RLIMIT_AS = memory_mb`, so that one large allocation fails with
  `MemoryError` first. Nothing inside the sandbox can reach the cgroup files. Needs root.
  CPU time: the same cgroup's counter (v2 `cpu.stat`; v1 a sample cgroup in the cpuacct
  hierarchy, made the same way), exact, whatever the program's processes did.
* `rlimit`: no cgroup. Address space is capped per process, so the cap is split: the program
  may have at most `n = min(max_processes, memory_mb // 128)` processes and threads
  (RLIMIT_NPROC, counted in the sample's own user namespace; at least 1) and each process
  `memory_mb / n` of address space, so that together they stay under `memory_mb` of address
  space (which bounds resident memory too). On top come the private /tmp and /dev/shm
  (`tmp_size_mb` each), the judge process (its own `RLIMIT_AS = memory_mb`; it holds only the
  tests and the decoded return values) and kernel buffers, bounded by the descriptors the
  program may hold (`n * open_files`): a pipe holds at most 64 KiB (resizing is refused), a
  Unix socket about `net.core.wmem_default` plus overhead (changing its buffer sizes is
  refused). CPU time: summed over /proc (see `forkserver.py`).

`auto` (the default) takes the first of v2, v1 and rlimit that works here.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field

from verifiers.base import VerifierError
from verifiers.code.cgroups import PREFIX, ROOT, PoolFolder, parents, remove, sweep, v1_mount

MODES = ("auto", "cgroup", "rlimit")
MIN_PROCESS_MB = 128   # rlimit mode: the least address space a Python process gets


def check_mode(mode: str) -> None:
    """`VerifierError` unless `mode` is a memory mode (the `memory_mode` option)."""
    if mode not in MODES:
        raise VerifierError(f"option memory_mode must be one of {list(MODES)}, got {mode!r}")


def cgroup_available() -> bool:
    """Whether a memory cgroup can be made here (what `memory_mode="cgroup"` needs)."""
    probe = MemoryCap("auto")
    probe.close()
    return probe.parent is not None


def _write(path: str, name: str, value) -> None:
    with open(os.path.join(path, name), "w") as f:
        f.write(str(value))


@dataclass
class SampleCgroup:
    """One worker's sample cgroup: its folder in the memory hierarchy, and the folder whose
    counter gives its CPU time (the same on v2; None: summed over /proc instead)."""

    memory: str
    cpu: str | None
    v2: bool
    fds: list[int] = field(default_factory=list)

    def descriptors(self) -> dict:
        """Open what the worker needs, as {role: descriptor} for its config (to be inherited by
        the worker, then closed here with `close_descriptors`): `join`, the files the program
        writes itself into; `oom`, the OOM-kill counter; `folder`, to see the
        cgroup empty; `cpu`, the CPU counter, and `cpu_scale`, its unit in seconds."""
        # v1: `tasks`, which moves one thread: the program's process, single-threaded when it
        # joins, writes "0" (itself), and the kernel then skips the lock that makes every move
        # through `cgroup.procs` wait for an RCU grace period (measured: 9-10 ms per sample
        # against 0.06 ms). v2 has no such file for a memory cgroup: `cgroup.procs`.
        name = "cgroup.procs" if self.v2 else "tasks"
        join = [os.path.join(p, name) for p in dict.fromkeys([self.memory, self.cpu]) if p]
        d = {"join": [self._open(p, os.O_WRONLY) for p in join],
             "oom": self._open(os.path.join(self.memory, "memory.events" if self.v2 else "memory.oom_control")),
             "folder": self._open(self.memory, os.O_DIRECTORY)}
        if self.cpu:
            d["cpu"] = self._open(os.path.join(self.cpu, "cpu.stat" if self.v2 else "cpuacct.usage"))
            d["cpu_scale"] = 1e-6 if self.v2 else 1e-9  # usage_usec; nanoseconds
        return d

    def _open(self, path: str, flags: int = os.O_RDONLY) -> int:
        fd = os.open(path, flags | os.O_CLOEXEC)
        self.fds.append(fd)
        return fd

    def close_descriptors(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    def remove(self, wait_s: float) -> None:
        self.close_descriptors()
        for path in dict.fromkeys([self.memory, self.cpu]):
            remove(path, wait_s)


def _candidates() -> list[tuple[str, str]]:
    """(mode, folder under which to make the pool's folder), best first."""
    found = []
    if os.path.exists(f"{ROOT}/cgroup.controllers"):
        found += [("cgroup-v2", p) for p in parents(ROOT, None)]
    memory = v1_mount("memory")
    if memory:
        found += [("cgroup-v1", p) for p in parents(memory, "memory")]
    return found


def _made_and_capped(mode: str, parent: str, tag: str) -> PoolFolder | None:
    """The pool's folder under `parent`, if a cgroup made in it takes a memory limit."""
    try:
        folder = PoolFolder(parent, tag, v2=mode == "cgroup-v2")
    except OSError:
        return None
    try:
        probe = folder.make()
        try:
            _write(probe, "memory.max" if mode == "cgroup-v2" else "memory.limit_in_bytes", 1 << 30)
            return folder
        finally:
            remove(probe)
    except OSError:
        folder.close()
        return None


def _cpu_folder(tag: str) -> PoolFolder | None:
    """v1: the pool's folder in the cpuacct hierarchy, or None (CPU time is then summed)."""
    mount = v1_mount("cpuacct")
    for parent in parents(mount, "cpuacct") if mount else []:
        sweep(parent)
        try:
            return PoolFolder(parent, tag)
        except OSError:
            continue
    return None


class MemoryCap:
    """Chooses the mode once, then makes one sample cgroup per worker (`make`), caps it
    (`set_cap`), and removes the pool's folders (`close`). Sweeps dead pools' folders first."""

    def __init__(self, requested: str = "auto", tag: str | None = None):
        check_mode(requested)
        self.tag = tag or PREFIX + secrets.token_hex(6)
        self.mode, self.parent = "rlimit", None
        self.memory: PoolFolder | None = None
        self.cpu: PoolFolder | None = None
        if requested != "rlimit" and os.geteuid() == 0:
            for mode, parent in _candidates():
                sweep(parent)
                self.memory = _made_and_capped(mode, parent, self.tag)
                if self.memory:
                    self.mode, self.parent = mode, parent
                    break
        if requested == "cgroup" and self.parent is None:
            raise VerifierError("memory_mode='cgroup': no writable memory cgroup here (needs root and a "
                                "cgroup v2 or v1 memory hierarchy); use memory_mode='auto' or 'rlimit'")
        if self.mode == "cgroup-v1":
            self.cpu = _cpu_folder(self.tag)

    def make(self) -> SampleCgroup | None:
        """A fresh sample cgroup for one worker, or None in rlimit mode (or if making it failed now)."""
        if self.memory is None:
            return None
        made = []
        try:
            made.append(self.memory.make())
            if self.cpu is not None:
                made.append(self.cpu.make())
        except OSError:
            for path in made:
                remove(path)
            return None
        v2 = self.mode == "cgroup-v2"
        return SampleCgroup(made[0], made[0] if v2 else (made[1] if self.cpu else None), v2)

    def set_cap(self, cg: SampleCgroup, sample_bytes: int) -> int:
        """Cap the sample cgroup at `sample_bytes`, swap included; return the cap."""
        if cg.v2:
            _write(cg.memory, "memory.max", sample_bytes)
            if os.path.exists(os.path.join(cg.memory, "memory.swap.max")):  # absent without swap accounting
                _write(cg.memory, "memory.swap.max", 0)
            return sample_bytes
        swap = os.path.exists(os.path.join(cg.memory, "memory.memsw.limit_in_bytes"))
        if swap:  # memsw (memory + swap) must stay >= the memory limit while both change
            _write(cg.memory, "memory.memsw.limit_in_bytes", -1)
        _write(cg.memory, "memory.limit_in_bytes", sample_bytes)
        if swap:
            _write(cg.memory, "memory.memsw.limit_in_bytes", sample_bytes)
        try:  # v1 counts TCP buffers apart, and only once this limit is set
            _write(cg.memory, "memory.kmem.tcp.limit_in_bytes", sample_bytes)
        except OSError:
            pass  # a kernel without it
        return sample_bytes

    def close(self) -> None:
        for folder in (self.memory, self.cpu):
            if folder is not None:
                folder.close()
        self.memory = self.cpu = None

    def __del__(self) -> None:
        if getattr(self, "memory", None) is not None or getattr(self, "cpu", None) is not None:
            self.close()

    def process_limits(self, memory_bytes: int, processes: int, cgroup: bool) -> tuple[int, int]:
        """(address space per process, processes) of the program."""
        if cgroup:
            return memory_bytes, processes
        n = max(1, min(processes, memory_bytes // (MIN_PROCESS_MB << 20)))
        return memory_bytes // n, n
