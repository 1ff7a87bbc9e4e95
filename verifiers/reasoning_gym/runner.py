"""Scoring reasoning-gym answers in the sandbox: the pool, the requests, and what to do when one fails.

A request is a chunk of answers scored one after another by one sandboxed process
(`scorer_program.py`), forked from a fork server that has reasoning-gym imported already. One
process per answer would be the simplest shape, but a fork of an interpreter holding
reasoning-gym costs 6-8 ms of CPU (page faults of copy-on-write) against 0.3 ms for scoring a
countdown answer; chunks keep the cost near that of scoring in process. What keeps answers of
one chunk from touching each other is the code gate of `scorer_program.py` (no answer runs
code of its own) and these rules:

* a process ends after the first answer whose scoring did not return a number normally
  (refused code, an exception, its CPU time); the answers after it go to a fresh process;
* such an answer's verdict counts only when it was the first of its process; otherwise it is
  scored again, alone, in a fresh process, and that verdict counts;
* a process that dies or is killed (its memory cap, its hard CPU cap, the wall-clock cap, too
  much output) is treated the same way for the answer it was scoring.

So every verdict comes from a process in which all earlier answers ended normally, and every
abnormal verdict from a process that scored nothing before it.

CPU time: each answer has `time_limit` CPU seconds (a SIGXCPU handler ends Python-level work
there); no answer starts after the process has used `time_limit`, and the process's hard
limit is twice that, so that work in C (a huge power) is killed within one answer's share.
"""

from __future__ import annotations

import functools
import json
import math
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from verifiers.base import VerifierError
from verifiers.code.sandbox import Execution, Limits, SandboxPool

PROGRAM = (Path(__file__).with_name("scorer_program.py")).read_text(encoding="utf-8")
# The fork server imports reasoning-gym before its first request. No BLAS or OpenMP threads (the
# scoring process may not start any), matplotlib (imported by one generator) without a display
# and with its cache on the sandbox's writable /dev/shm.
ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg",
       "MPLCONFIGDIR": "/dev/shm/matplotlib"}
# Top-level packages that `import reasoning_gym` loads, from a fresh interpreter (exact: nothing
# else of the host's site-packages is shown to the sandbox).
_PROBE = ("import sys, sysconfig; before = set(sys.modules); import reasoning_gym; "
          "roots = {sysconfig.get_paths()[k] for k in ('purelib', 'platlib')}; "
          "names = {m.split('.')[0] for m in set(sys.modules) - before}; "
          "where = lambda m: getattr(m, '__file__', None) or ''.join(getattr(m, '__path__', []) or []); "
          "print(' '.join(sorted(n for n in names if any(where(sys.modules.get(n)).startswith(r) for r in roots))))")


@functools.lru_cache(maxsize=1)
def needed_packages() -> tuple[str, ...]:
    """The installed packages reasoning-gym imports (the sandbox's read-only allow-list)."""
    proc = subprocess.run([sys.executable, "-I", "-c", _PROBE], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise VerifierError(f"the reasoning_gym verifier needs the reasoning-gym package (pip install "
                            f"'reasoning-gym>=0.1.25,<0.2'); importing it failed: {proc.stderr.strip()[-500:]}")
    return tuple(proc.stdout.split())


def outcome_of(ex: Execution, limits: Limits) -> dict:
    """The outcome of the answer a process was scoring when it ended without reporting it."""
    if ex.sandbox_error:
        return {"status": "sandbox_error", "error": ex.sandbox_error}
    # SIGKILL with no other cause is the hard CPU limit (the kernel's accounting may stop a little short of it).
    if ex.timed_out or (ex.signal == signal.SIGKILL and not (ex.oom_killed or ex.output_limited)):
        return {"status": "timeout", "error": f"CPU time limit ({limits.time_limit:g} s for the process, "
                                              f"{limits.wall_s:g} s wall)"}
    if ex.oom_killed or b"MemoryError" in ex.stderr[-2000:]:
        return {"status": "memory", "error": f"memory limit ({limits.memory_mb} MiB, {ex.memory_mode})"}
    if ex.output_limited:
        return {"status": "error", "error": f"the scorer printed more than {limits.output_kb} KiB"}
    how = f"signal {ex.signal}" if ex.signal is not None else f"exit code {ex.exit_code}"
    tail = ex.stderr[-300:].decode("utf-8", "replace").strip()
    # No limit explains it: the scorer crashed, which is no judgement of the answer.
    return {"status": "verifier_error", "error": f"the scoring process ended ({how}) {tail}".strip()}


def outcome_of_line(line: dict, time_limit: float) -> dict:
    """The outcome of one answer the scoring process reported."""
    if "score" in line:
        return {"score": line["score"], **({"undefined": line["undefined"]} if line.get("undefined") else {})}
    if "refused" in line:
        return {"status": "error", "error": f"refused to run {line['refused']}"}
    if "timeout" in line:
        return {"status": "timeout", "error": f"CPU time limit ({time_limit:g} s)"}
    if "bad" in line:  # score_answer returned no number: the scorer's bug
        return {"status": "verifier_error", "error": line["bad"]}
    name, msg = str(line.get("exc")), str(line.get("msg", ""))
    if line.get("unbuildable"):  # the generator's scorer could not be built: no answer was scored
        return {"status": "verifier_error", "error": f"the scorer raised {name}: {msg}"}
    return {"status": "memory" if name == "MemoryError" else "error", "error": f"the scorer raised {name}: {msg}"}


def read_lines(result: bytes, count: int) -> tuple[list[dict], bool]:
    """(the per-answer lines in order, whether the process stopped for its budget). Lines that
    are not the program's (a crash report of the harness) are skipped."""
    lines, budget = [], False
    for raw in result.decode("utf-8", "replace").splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict) and line.get("i") == len(lines) and len(lines) < count:
            lines.append(line)
        elif line == {"stop": "budget"}:
            budget = True
    return lines, budget


class ScorerPool:
    """Sandboxed scoring processes (see the module docstring); thread-safe, started on first use."""

    def __init__(self, time_limit: float, memory_mb: int, workers: int | None, memory_mode: str, chunk_size: int,
                 modules: tuple[str, ...] = ()):
        self.time_limit, self.chunk_size = time_limit, chunk_size
        self.modules = tuple(modules)  # more installed modules to show and preload (that register generators)
        self.limits = Limits(time_limit=float(math.ceil(2 * time_limit)), memory_mb=memory_mb, max_processes=1,
                             file_size_mb=16, tmp_size_mb=16)
        self.workers, self.memory_mode = workers, memory_mode
        self._pool: SandboxPool | None = None
        self._lock = threading.Lock()

    @property
    def pool(self) -> SandboxPool:
        with self._lock:
            if self._pool is None:
                self._pool = SandboxPool(self.workers, packages=needed_packages() + self.modules,
                                         memory_mode=self.memory_mode, preload=("reasoning_gym", *self.modules),
                                         env=ENV)
            return self._pool

    @property
    def pool_size(self) -> int:
        return self.pool.size

    def score(self, items: list[dict]) -> list[dict]:
        """One outcome per item: `{"score": x}` or `{"status", "error"}`, plus `alone` when the
        answer was scored again alone."""
        if not items:
            return []
        workers = self.pool_size
        size = max(1, min(self.chunk_size, math.ceil(len(items) / workers)))
        chunks = [items[k:k + size] for k in range(0, len(items), size)]
        if len(chunks) == 1:
            return self._chunk(chunks[0])
        with ThreadPoolExecutor(max_workers=min(len(chunks), workers)) as threads:
            return [out for part in threads.map(self._chunk, chunks) for out in part]

    def warm_up(self) -> None:
        """Start every worker now (each imports reasoning-gym: about a second)."""
        with ThreadPoolExecutor(max_workers=self.pool.size) as threads:
            list(threads.map(lambda _: self._run([]), range(self.pool.size)))

    def _run(self, items: list[dict]) -> Execution:
        request = {"items": items, "time_limit": self.time_limit, "budget": self.time_limit}
        return self.pool.run({"mode": "io", "program": PROGRAM, "stdin": json.dumps(request)}, self.limits)

    def _chunk(self, items: list[dict]) -> list[dict]:
        out: list[dict] = []
        while len(out) < len(items):
            pending = items[len(out):]
            ex = self._run(pending)
            lines, budget = read_lines(ex.result, len(pending))
            k = next((j for j, line in enumerate(lines) if "score" not in line), len(lines))
            out += [outcome_of_line(line, self.time_limit) for line in lines[:k]]
            if k == len(pending) or (budget and k == len(lines)):
                continue  # all scored, or the process stopped at its budget: the rest go to a fresh one
            if ex.sandbox_error and not lines:  # the sandbox itself fails: do not start it again per answer
                return out + [outcome_of(ex, self.limits)] * len(pending)
            # Answer k ended abnormally: that verdict counts if it was first in its process, else
            # the answer is scored again alone.
            if k > 0:
                out.append({**self._alone(pending[k]), "alone": True})
            else:
                out.append(outcome_of_line(lines[0], self.time_limit) if lines else outcome_of(ex, self.limits))
        return out

    def _alone(self, item: dict) -> dict:
        ex = self._run([item])
        lines, _ = read_lines(ex.result, 1)
        return outcome_of_line(lines[0], self.time_limit) if lines else outcome_of(ex, self.limits)

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
