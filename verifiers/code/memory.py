"""The memory cap of one sample, whatever it forks: a memory cgroup where we may make one, else rlimits.

Modes (the `code` verifier's `memory_mode` option; each verdict reports the one in force in
`info["memory_mode"]`):

* `cgroup-v2` / `cgroup-v1`: the parent makes one memory cgroup per sandbox worker (under
  its own cgroup, or the hierarchy's root) and starts the worker inside it, so that every
  process of every sample (the program, all it forks, the judge) is charged there from its
  first page. Samples of a worker run one at a time; once the worker is up, the cgroup is
  capped at what the idle fork server and zygote use plus `memory_mb`, swap included
  (`memory.swap.max = 0`, or v1's `memsw` limit equal to the memory limit). So one sample's
  resident memory, tmpfs pages (/tmp, /dev/shm) and page cache together get at most
  `memory_mb` (page cache is reclaimed first). Past it the kernel OOM-kills a process of the
  sample, and the verdict's status is `memory` (the sample's supervisor reads the cgroup's
  OOM-kill counter). Each process also keeps `RLIMIT_AS = memory_mb`, so that one large
  allocation fails with `MemoryError` first. The cgroup is bound read-only into the sandbox
  (for that counter); nothing in it can change the cap. Needs root.
* `rlimit`: no cgroup. Address space is capped per process, so the cap is split: the program
  may have at most `n = min(max_processes, memory_mb // 128)` processes and threads
  (RLIMIT_NPROC, counted in the sample's own user namespace; at least 1) and each process
  `memory_mb / n` of address space, so that together they stay under `memory_mb` of address
  space (which bounds resident memory too). The private /tmp and /dev/shm (`tmp_size_mb`
  each) come on top, and so does the judge process (its own `RLIMIT_AS = memory_mb`; it
  holds only the tests and the decoded return values).

`auto` (the default) takes the first of v2, v1 and rlimit that works here.
"""

from __future__ import annotations

import os
import secrets

from verifiers.base import VerifierError

MODES = ("auto", "cgroup", "rlimit")
ROOT = "/sys/fs/cgroup"
MIN_PROCESS_MB = 128   # rlimit mode: the least address space a Python process gets


def _own_cgroup(controller: str | None) -> str:
    """Our cgroup's path in the v2 hierarchy (controller None) or in v1's `controller`."""
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, names, path = line.rstrip("\n").split(":", 2)
                if (controller is None and names == "") or controller in names.split(","):
                    return path
    except (OSError, ValueError):
        pass
    return "/"


def _candidates() -> list[tuple[str, str]]:
    """(mode, folder under which to make cgroups), best first."""
    found = []
    if os.path.exists(f"{ROOT}/cgroup.controllers"):
        found.append(("cgroup-v2", os.path.normpath(f"{ROOT}/{_own_cgroup(None)}")))
    if os.path.isdir(f"{ROOT}/memory"):
        own = os.path.normpath(f"{ROOT}/memory/{_own_cgroup('memory')}")
        found += [("cgroup-v1", own)] + ([("cgroup-v1", f"{ROOT}/memory")] if own != f"{ROOT}/memory" else [])
    return found


def _try_make(mode: str, parent: str, name: str) -> str | None:
    path = os.path.join(parent, name)
    try:
        os.mkdir(path)
    except OSError:
        return None
    limit = "memory.max" if mode == "cgroup-v2" else "memory.limit_in_bytes"
    try:
        _write(path, limit, 1 << 30)
        return path
    except OSError:
        remove(path)
        return None


def check_mode(mode: str) -> None:
    """`VerifierError` unless `mode` is a memory mode (the `memory_mode` option)."""
    if mode not in MODES:
        raise VerifierError(f"option memory_mode must be one of {list(MODES)}, got {mode!r}")


def _write(path: str, name: str, value: int) -> None:
    with open(os.path.join(path, name), "w") as f:
        f.write(str(value))


def remove(path: str | None) -> None:
    if path:
        try:
            os.rmdir(path)
        except OSError:
            pass


class MemoryCap:
    """Chooses the mode once, then makes (and removes) one cgroup per sandbox worker."""

    def __init__(self, requested: str = "auto"):
        check_mode(requested)
        self.mode, self.parent = "rlimit", None
        if requested != "rlimit" and os.geteuid() == 0:
            for mode, parent in _candidates():
                probe = _try_make(mode, parent, f"verirl-probe-{secrets.token_hex(4)}")
                if probe:
                    remove(probe)
                    self.mode, self.parent = mode, parent
                    break
        if requested == "cgroup" and self.parent is None:
            raise VerifierError("memory_mode='cgroup': no writable memory cgroup here (needs root and a "
                                "cgroup v2 or v1 memory hierarchy); use memory_mode='auto' or 'rlimit'")

    def make(self, tag: str) -> str | None:
        """A fresh cgroup for one worker, or None in rlimit mode (or if making it failed now)."""
        if self.parent is None:
            return None
        return _try_make(self.mode, self.parent, f"{tag}-{secrets.token_hex(4)}")

    def enter(self, path: str | None, argv: list[str]) -> list[str]:
        """`argv`, started inside the cgroup at `path` (so that every process of the worker, and
        every sample it forks, is charged there from its first page; no per-sample move)."""
        if not path:
            return argv
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', os.path.join(path, "cgroup.procs"), *argv]

    def set_cap(self, path: str, sample_bytes: int) -> int:
        """Cap the worker's cgroup at what it uses now (the fork server and zygote, idle) plus
        `sample_bytes`, swap included; return the cap."""
        v2 = self.mode == "cgroup-v2"
        with open(os.path.join(path, "memory.current" if v2 else "memory.usage_in_bytes")) as f:
            cap = int(f.read()) + sample_bytes
        if v2:
            _write(path, "memory.max", cap)
            _write(path, "memory.swap.max", 0)
        else:  # memsw (memory + swap) must stay >= the memory limit while both change
            swap = os.path.exists(os.path.join(path, "memory.memsw.limit_in_bytes"))
            if swap:
                _write(path, "memory.memsw.limit_in_bytes", -1)
            _write(path, "memory.limit_in_bytes", cap)
            if swap:
                _write(path, "memory.memsw.limit_in_bytes", cap)
        return cap

    def process_limits(self, memory_bytes: int, processes: int, cgroup: bool) -> tuple[int, int]:
        """(address space per process, processes) of the program."""
        if cgroup:
            return memory_bytes, processes
        n = max(1, min(processes, memory_bytes // (MIN_PROCESS_MB << 20)))
        return memory_bytes // n, n
