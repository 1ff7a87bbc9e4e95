"""The cgroup folders of a sandbox pool: one cgroup per worker that holds the programs and
nothing else, under a folder the pool keeps locked, and the sweep of what dead pools left.

    PARENT/                      our own cgroup in that hierarchy, or the hierarchy's root
      verirl-pool-<hex>/         one per pool (the pool's tag); the pool holds a shared flock() on it
        w-<hex>/                 one per worker: its *sample cgroup*. Each sample's program joins it
                                 before running any code, and everything it forks stays there; the
                                 fork server, zygote and judge never do (`sample.py`)

A v1 machine has one such tree in the memory hierarchy and, for CPU time, one in the cpuacct
hierarchy (`memory.py` picks them); v2 has a single tree for both.

**Ownership and the sweep.** A pool killed without `close()` (`kill -9`, a crashed trainer)
leaves its folders behind. A flock ends with the last process that held it, however that
process ended and whatever pid namespace it lives in (engineers' containers, pytest-xdist
workers and a trainer beside a server all share one cgroup tree), so a folder nobody holds
a lock on belongs to a dead pool. `sweep(parent)` runs when a pool starts: it takes an
exclusive lock on each `verirl-pool-*` folder without waiting, and only if it gets one removes
the folder's empty cgroups and the folder. A cgroup that still holds a process (a dead pool's
worker that is still exiting) cannot be removed (EBUSY) and is left for a later sweep.
Folders of other names, and anything a live pool holds, are never touched.

Between `mkdir` and `flock` a new folder is not locked yet: its maker checks, once it holds
the lock, that the folder it locked is still the one at that path, and otherwise makes another.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import time

ROOT = "/sys/fs/cgroup"
PREFIX = "verirl-pool-"   # pool tags (`SandboxPool.tag`) start with it: the sweep's mark
WORKER = "w-"
REMOVE_WAIT_S = 1.0       # how long a cgroup may take to empty once its processes were killed


def own_cgroup(controller: str | None) -> str:
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


def v1_mount(controller: str) -> str | None:
    """The folder of the v1 hierarchy that holds `controller` (`memory`, or `cpuacct`, which
    distributions often mount together with `cpu` as `cpu,cpuacct`)."""
    try:
        names = sorted(os.listdir(ROOT))
    except OSError:
        return None
    for name in names:
        path = os.path.join(ROOT, name)
        if controller in name.split(",") and os.path.isdir(path) and not os.path.islink(path):
            return path
    return None


def parents(mount: str, controller: str | None) -> list[str]:
    """Where to make our folders in the hierarchy at `mount`: under our own cgroup, else its root."""
    own = os.path.normpath(f"{mount}/{own_cgroup(controller)}")
    return [own] + ([mount] if own != mount else [])


def remove(path: str | None, wait_s: float = 0.0) -> bool:
    """rmdir a cgroup, retrying for `wait_s` while it still holds exiting processes."""
    if not path:
        return True
    end = time.monotonic() + wait_s
    while True:
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() >= end:
                return False
            time.sleep(0.02)


def _subfolders(path: str) -> list[str]:
    try:
        return [os.path.join(path, n) for n in os.listdir(path) if os.path.isdir(os.path.join(path, n))]
    except OSError:
        return []


class PoolFolder:
    """`PARENT/<tag>`, made and locked (shared) until `close()`; `OSError` if it cannot be made."""

    def __init__(self, parent: str, tag: str, v2: bool = False):
        self.parent = parent
        for attempt in range(3):
            self.path = os.path.join(parent, tag if attempt == 0 else f"{tag}-{secrets.token_hex(2)}")
            os.mkdir(self.path)
            self.lock = _lock_made(self.path)
            if self.lock is not None:
                break
        else:
            raise OSError(f"cannot hold {parent}/{tag}: removed by a sweep each time")
        if v2:  # the controllers its cgroups need (it holds no process, so this is allowed)
            try:
                with open(os.path.join(self.path, "cgroup.subtree_control"), "w") as f:
                    f.write("+memory")
            except OSError:
                self.close()
                raise

    def make(self) -> str:
        """A new, empty cgroup inside; `OSError` if it cannot be made."""
        path = os.path.join(self.path, WORKER + secrets.token_hex(4))
        os.mkdir(path)
        return path

    def close(self) -> None:
        """Remove the (empty) folder, then let go of it; what cannot be removed yet is left to a sweep."""
        if self.lock is None:
            return
        for child in _subfolders(self.path):
            remove(child, REMOVE_WAIT_S)
        remove(self.path)
        os.close(self.lock)
        self.lock = None


def _lock_made(path: str) -> int | None:
    """A shared lock on the folder we just made, or None if a sweep took it meanwhile."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        if os.stat(path).st_ino == os.fstat(fd).st_ino:
            return fd
    except OSError:  # a sweep holds it (and removes it), or has removed it
        pass
    os.close(fd)
    return None


def sweep(parent: str) -> list[str]:
    """Remove the folders of dead pools under `parent` (see the module docstring); return them."""
    removed = []
    try:
        names = [n for n in os.listdir(parent) if n.startswith(PREFIX)]
    except OSError:
        return removed
    for name in names:
        path = os.path.join(parent, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a live pool holds it
        try:
            for child in _subfolders(path):
                remove(child)
            if remove(path):
                removed.append(path)
        finally:
            os.close(fd)
    return removed
