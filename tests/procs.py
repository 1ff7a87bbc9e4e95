"""Process-table look-ups shared by the sandbox and code-verifier tests."""

from __future__ import annotations

import os
from pathlib import Path


def processes_with(marker: str) -> list[str]:
    """`pid: command line` of every live process whose command line contains `marker`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd:
            found.append(f"{pid}: {cmd[:200]}")
    return found



def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, ...), or None."""
    try:
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses: split after the last ')'.
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def descendants(pid: int) -> dict[int, str]:
    """Every live process below `pid` (children, grandchildren, ...): pid -> its start time,
    which tells a process from a later one that reuses its pid."""
    stats = {int(p): st for p in filter(str.isdigit, os.listdir("/proc")) if (st := _stat(int(p)))}
    found, frontier = {}, {pid}
    while frontier:
        frontier = {child for child, st in stats.items() if int(st[1]) in frontier and child not in found}
        found.update({child: stats[child][19] for child in frontier})
    return found


def survivors(processes: dict[int, str]) -> list[int]:
    """Those of `processes` (from `descendants`) still running: same pid and start time, not a zombie."""
    return [pid for pid, start in processes.items()
            if (st := _stat(pid)) is not None and st[19] == start and st[0] != "Z"]
