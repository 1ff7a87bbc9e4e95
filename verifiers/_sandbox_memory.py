"""The memory cap of one sample, whatever it forks: a memory cgroup where we may make one, else rlimits.

Modes (the `code` verifier's `memory_mode` option; each verdict reports the one in force in
`info["memory_mode"]`):

* `cgroup-v2` / `cgroup-v1`: the parent makes one memory cgroup per sandbox worker (under
  its own cgroup, or the hierarchy's root), binds it into the sandbox, and each sample's
  supervisor sets its limit to `memory_mb` (swap included: `memory.swap.max = 0`, or v1's
  `memsw` limit equal to the memory limit) and moves itself in before anything else runs, so
  the program, every process it forks and the judge are charged together: their resident
  memory, page cache and tmpfs (/tmp, /dev/shm) pages together stay under `memory_mb`. Past
  it the kernel reclaims, then OOM-kills a process of the sample; the verdict's status is
  then `memory`. Each process also keeps `RLIMIT_AS = memory_mb`, so that one large
  allocation fails with `MemoryError` first. Needs root (or a delegated cgroup).
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
        with open(os.path.join(path, limit), "w") as f:
            f.write(str(1 << 30))
        return path
    except OSError:
        remove(path)
        return None


def remove(path: str | None) -> None:
    if path:
        try:
            os.rmdir(path)
        except OSError:
            pass


class MemoryCap:
    """Chooses the mode once, then makes (and removes) one cgroup per sandbox worker."""

    def __init__(self, requested: str = "auto"):
        if requested not in MODES:
            raise VerifierError(f"option memory_mode must be one of {list(MODES)}, got {requested!r}")
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

    def process_limits(self, memory_bytes: int, processes: int, cgroup: bool) -> tuple[int, int]:
        """(address space per process, processes) of the program."""
        if cgroup:
            return memory_bytes, processes
        n = max(1, min(processes, memory_bytes // (MIN_PROCESS_MB << 20)))
        return memory_bytes // n, n
