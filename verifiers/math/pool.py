"""Worker processes of the `math` verifier: long-lived SymPy workers with deadlines.

SymPy work on hostile input cannot be bounded inside the calling process: a Python thread
cannot be killed, and SIGALRM only works in the main thread (and not at all in a library
used from a thread pool). So each check runs in one of a few worker processes, which the
caller kills and replaces when the check overruns its deadline.

* A worker is a fresh interpreter (`python -I`) that runs `verifiers.math.worker` and
  imports only it and the math modules it needs (not the `verifiers` package), warms the
  parser up, says it is ready, then answers one JSON line per request on stdin/stdout
  (`verifiers.worker_process`, `LINES`).
* Workers start lazily, from any thread (`subprocess.Popen` is thread-safe; nothing forks
  a threaded parent), in their own session so a terminal's Ctrl-C does not reach them.
* A check's deadline is CPU time: the worker is killed once the check has used `timeout`
  seconds of CPU, or after `STARVED_WALL_FACTOR` times that in wall time, so that a busy
  machine (other processes on every core) does not turn right answers into timeouts.
  Where /proc is missing, the deadline is wall time.
* They die with their parent (EOF on stdin), on `close()`, when the pool is collected, and
  at interpreter exit (`weakref.finalize`).
* Pools are shared by the verifiers of a process that ask for the same size and memory
  limit, so building several verifiers does not start several sets of interpreters.
* A forked child forgets its parent's workers and starts its own.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import weakref

from verifiers.worker_process import LINES, WorkerGone, WorkerProcess, WorkerTimeout, kill_process

STARTUP_TIMEOUT = 60.0   # seconds a new worker may take to import SymPy on a loaded machine
ORPHAN_CPU_GRACE = 30.0  # CPU seconds past the deadline after which a worker ends itself
STARVED_WALL_FACTOR = 10  # a starved check may take this many times its CPU timeout in wall time
_VERIFIERS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The worker imports only the math modules it needs (`verifiers.math.worker` and its imports),
# not the `verifiers` package or `verifiers.math`'s __init__ (whose verifiers may be heavy):
# both are stood in for by empty package modules. It runs isolated (-I: no cwd on sys.path).
_BOOT = ("import os, sys, types\n"
         "for name, path in (('verifiers', sys.argv[1]), ('verifiers.math', os.path.join(sys.argv[1], 'math'))):\n"
         "    pkg = sys.modules[name] = types.ModuleType(name); pkg.__path__ = [path]\n"
         "from verifiers.math.worker import serve; serve(int(sys.argv[2]))")


class _Worker:
    """One worker process speaking JSON lines over its stdin/stdout (`argv`: for tests)."""

    def __init__(self, memory_mb: int, argv: list[str] | None = None):
        argv = argv or [sys.executable, "-I", "-c", _BOOT, _VERIFIERS_DIR, str(memory_mb)]
        self.child = WorkerProcess(argv, LINES)
        self.ready = False

    @property
    def proc(self):
        return self.child.proc

    def call(self, request: dict, timeout: float) -> dict:
        if not self.ready:
            try:
                self.child.receive(time.monotonic() + STARTUP_TIMEOUT)
            except WorkerGone as exc:  # its timeout too: the worker's failure to start, not the answer's
                raise WorkerGone(f"the SymPy worker did not start: {exc}") from None
            self.ready = True
        budget = {"cpu_budget": timeout + ORPHAN_CPU_GRACE}   # see verifiers.math.worker._cap_cpu
        self.child.send({**request, **budget})
        return self._read_reply(timeout)

    def _read_reply(self, timeout: float) -> dict:
        """The reply within `timeout` seconds of the worker's CPU time. A worker that the machine
        starves (other processes on every core) gets more wall time, up to STARVED_WALL_FACTOR
        times the timeout: on a loaded machine a right answer must not become a timeout."""
        start, start_cpu = time.monotonic(), _cpu_seconds(self.proc.pid)
        deadline, wall_end = start + timeout, start + timeout * STARVED_WALL_FACTOR
        while True:
            try:
                return self.child.receive(min(deadline, wall_end))
            except WorkerTimeout:
                used = _cpu_seconds(self.proc.pid)
                if start_cpu is None or used is None:
                    raise
                now = time.monotonic()
                if used - start_cpu >= timeout or now >= wall_end:
                    raise
                deadline = now + timeout - (used - start_cpu)

    def kill(self) -> None:
        self.child.kill()


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc), or None where unavailable."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _kill_all(procs: set) -> None:
    for proc in list(procs):
        kill_process(proc)
    procs.clear()


class WorkerPool:
    """Up to `size` long-lived workers, started on demand, replaced when they overrun."""

    def __init__(self, size: int, memory_mb: int):
        self.size, self.memory_mb = size, memory_mb
        self.users = 0
        self._forget_workers()

    def _forget_workers(self) -> None:
        """Fresh state; also what a forked child does, as the workers belong to its parent."""
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._alive = 0
        self._generation = 0
        self._procs: set = set()     # every live process, for the exit-time finaliser
        self._finalizer = weakref.finalize(self, _kill_all, self._procs)

    def _acquire(self) -> tuple[_Worker, int]:
        with self._cond:
            while not self._idle and self._alive >= self.size:
                self._cond.wait()
            if self._idle:
                return self._idle.pop(), self._generation
            self._alive += 1
            generation = self._generation
        try:
            worker = _Worker(self.memory_mb)
        except OSError:
            with self._cond:
                self._alive -= 1
                self._cond.notify()
            raise
        self._procs.add(worker.proc)
        return worker, generation

    def start_one(self) -> None:
        """Start a worker now (if the pool has room) instead of at the first check that needs
        one, so a caller can pay the SymPy import during its own set-up."""
        with self._cond:
            if self._idle or self._alive >= self.size:
                return
        worker, generation = self._acquire()
        self._release(worker, generation, healthy=True)

    def _release(self, worker: _Worker, generation: int, healthy: bool) -> None:
        with self._cond:
            keep = healthy and generation == self._generation
            if keep:
                self._idle.append(worker)
            else:
                self._alive -= 1
            self._cond.notify()
        if not keep:
            worker.kill()
            self._procs.discard(worker.proc)

    def run(self, request: dict, timeout: float) -> dict:
        """The worker's reply, {"status": "timeout"} (the answer's: a check past its deadline), or
        {"status": "verifier_error", "error": ...} (ours: a worker that could not start, died or
        answered garbage)."""
        try:
            worker, generation = self._acquire()
        except OSError as exc:
            return {"status": "verifier_error", "error": f"cannot start a SymPy worker: {exc}"}
        try:
            reply = worker.call(request, timeout)
        except WorkerTimeout:
            self._release(worker, generation, healthy=False)
            return {"status": "timeout", "error": f"SymPy check exceeded {timeout:g} s"}
        except WorkerGone as exc:
            self._release(worker, generation, healthy=False)
            return {"status": "verifier_error", "error": f"the SymPy worker died: {exc}"}
        except ValueError as exc:   # a garbled reply line
            self._release(worker, generation, healthy=False)
            return {"status": "verifier_error", "error": f"bad reply from worker: {exc}"}
        self._release(worker, generation, healthy=reply.get("status") != "memory")
        return reply

    def close(self) -> None:
        with self._cond:
            self._generation += 1
            idle, self._idle = self._idle, []
            self._alive -= len(idle)
        for worker in idle:
            worker.kill()
            self._procs.discard(worker.proc)


_SHARED: dict[tuple[int, int], WorkerPool] = {}
_SHARED_LOCK = threading.Lock()


def shared_pool(size: int, memory_mb: int) -> WorkerPool:
    """The process's pool for (size, memory_mb), one more user counted; see `release`."""
    with _SHARED_LOCK:
        pool = _SHARED.get((size, memory_mb))
        if pool is None:
            pool = _SHARED[(size, memory_mb)] = WorkerPool(size, memory_mb)
        pool.users += 1
        return pool


def release(pool: WorkerPool) -> None:
    """One user fewer; the last one out kills the workers (the pool restarts on demand)."""
    with _SHARED_LOCK:
        pool.users = max(0, pool.users - 1)
        last = pool.users == 0
    if last:
        pool.close()


def _after_fork_in_child() -> None:
    """A forked child (a DataLoader worker, say) must not talk to its parent's workers, nor
    wait on a lock another thread of the parent held at the fork: it starts its own."""
    global _SHARED_LOCK
    _SHARED_LOCK = threading.Lock()
    for pool in _SHARED.values():
        pool._finalizer.detach()
        pool._forget_workers()


os.register_at_fork(after_in_child=_after_fork_in_child)
