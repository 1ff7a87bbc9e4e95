"""Run untrusted programs in a pool of warm bubblewrap sandboxes.

Each worker is one `bwrap` process holding a fork server (`forkserver.py`) and its zygote,
from which every sample's processes are forked (the process tree, the wire format and the
threat model are in docs/sandbox.md). `SandboxPool.run` hands a request to a free worker; the
`code` verifier runs one request per sample (per case for `io`). With bubblewrap (the
default), the sandbox protects against:

* Reading the host: the program sees `/usr`, the interpreter and its standard library, and the
  packages of the `packages` allow-list, read-only, and nothing else -- no site-packages (so
  no dataset shipped in one), not the home directory, the caller's working directory, the
  host's `/tmp`, `/etc`, or the files of other samples. `/proc` holds only the program's own
  process and the environment is a fixed minimal set (`confine.py`).
* Writing the host: the root is read-only; `/tmp` and `/dev/shm` are private tmpfs mounts,
  capped at `tmp_size_mb` and discarded with the sample.
* Network: the sandbox has its own network namespace with no interfaces but loopback, and
  programs may open only Unix sockets (seccomp, x86_64).
* Other processes and samples: each program has its own user, pid, mount and IPC namespaces
  and process group; it cannot see or signal the worker, the judge, the host or other
  samples, and when it ends the kernel kills everything left in its namespace. Samples are
  forked from a zygote that never held another sample's data.
* Privileges: an unprivileged uid (65534 when the caller is root; 1000 inside its
  namespaces), no capabilities, `no_new_privs`, nosuid mounts, and on x86_64 a seccomp filter
  that refuses what programs never need (new namespaces, mounts, SysV IPC, memfd, io_uring,
  bpf, userfaultfd, perf events, keyrings, ptrace, modules, non-Unix sockets, ... `jail.py`).
* Exhaustion: CPU seconds of the sample's processes together (counted by the fork server from
  the sample cgroup or /proc, plus a wall-clock cap), memory per sample (a cgroup that holds
  only the program's processes, or a split of `RLIMIT_AS` over a process-count limit:
  `memory.py`), file size, open files, processes and threads, and the bytes of output are
  all capped. Verdicts use CPU time, not wall time, so machine load does not change them.
* Forged verdicts: see `verifiers.code.verifier` and docs/sandbox.md.

Not against kernel bugs (the sandbox shares the host kernel; the seccomp filter is a
deny-list, and only on x86_64), nor anything when `unsafe_no_sandbox=True`, which keeps only
the rlimits and a scratch directory (trusted code only). The fork server runs as root inside
the sandbox with CAP_SETUID/SETGID/KILL (to switch samples to the sandbox uid and end them);
it never runs program code.
"""

from __future__ import annotations

import json
import math
import os
import queue
import secrets
import shutil
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from verifiers.base import VerifierError
from verifiers.code.cgroups import PREFIX
from verifiers.code.confine import ancestors, bwrap_has_size, check_packages, code_files, interpreter, package_paths
from verifiers.code.memory import MemoryCap, SampleCgroup
from verifiers.worker_process import LENGTH_PREFIXED, WorkerGone, WorkerProcess

SANDBOX_UID = 65534                  # nobody: the programs' uid on the host when we run as root
START_TIMEOUT_S = 30.0
REPLY_SLACK_S = 10.0                 # beyond the wall cap, before a worker counts as hung
# A sample spends part of its time waiting (a fork's wake-ups, the kernel tearing down its namespaces), not computing:
# two workers per core keep the cores busy when other work shares them (164 HumanEval samples on 2 cores at load 9:
# 1.98 s with 4 workers, 2.7 s with 2); on free cores 2 and 4 take the same time (1.30 s and 1.33 s).
WORKERS_PER_CORE = 2
# Loaded by path from /sandbox (their folder, bound there: `confine.code_files`): standard library only.
FILES = ("forkserver", "sample", "accounting", "wire", "decoder", "channel", "hosting", "proxies", "judging",
         "judge_side", "jail", "harness")
_HERE = os.path.dirname(os.path.abspath(__file__))
INSTALL_HINT = ("bubblewrap (`bwrap`) is required to run model code safely; install it with "
                "`apt-get install bubblewrap` (Debian/Ubuntu) or `dnf install bubblewrap` (Fedora), "
                "or pass unsafe_no_sandbox=True to run with resource limits only (trusted code only)")


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the program)."""


@dataclass(frozen=True)
class Limits:
    """Limits of one execution (the `code` verifier's options of the same names)."""

    time_limit: float = 5.0               # CPU seconds of all the program's processes together
    wall_time_limit: float | None = None  # wall-clock backstop; default 2 * time_limit + 5
    memory_mb: int = 1024                 # per sample: see `memory.py` for each mode
    output_kb: int = 8192                 # stdout + stderr, together
    max_processes: int = 16               # processes and threads of the program at once
    file_size_mb: int = 16                # largest file the program may write
    tmp_size_mb: int = 64                 # its private /tmp (and the judge's)
    open_files: int = 256
    reply_kb: int = 65536                 # one message between judge and program; the results of `call`
    max_depth: int = 500                  # containers nested in a value that crosses
    message_chars: int = 100_000          # an exception's text, a docstring
    iter_items: int = 1_000_000           # items of an iterator a `call` test's entry point returns

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value is None and name == "wall_time_limit":
                continue
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0
                    or not math.isfinite(value)):
                raise VerifierError(f"option {name} must be a positive number, got {value!r}")
            if (name in ("max_processes", "open_files", "max_depth", "message_chars", "iter_items")
                    and type(value) is not int):
                raise VerifierError(f"option {name} must be a whole number, got {value!r}")

    @property
    def wall_s(self) -> float:
        return self.wall_time_limit if self.wall_time_limit is not None else 2 * self.time_limit + 5

    def for_worker(self, memory: MemoryCap | None = None, cgroup: bool = False) -> dict:
        mib = 1 << 20
        cap = int(self.memory_mb * mib)
        per_process, processes = (memory or MemoryCap("rlimit")).process_limits(cap, int(self.max_processes), cgroup)
        return {"cpu_s": self.time_limit, "wall_s": self.wall_s, "memory_bytes": per_process,
                "judge_memory_bytes": max(cap, 256 * mib), "output_bytes": int(self.output_kb * 1024),
                "processes": processes, "file_bytes": int(self.file_size_mb * mib),
                "tmp_bytes": int(self.tmp_size_mb * mib), "open_files": int(self.open_files),
                "reply_bytes": int(self.reply_kb * 1024), "max_depth": self.max_depth,
                "message_chars": self.message_chars, "iter_items": self.iter_items}


@dataclass
class Execution:
    """One run of a program, as the trusted parent sees it."""

    exit_code: int | None = None   # None when killed by a signal or never started
    signal: int | None = None
    timed_out: bool = False        # the fork server's word: the sample's CPU time reached the limit, or the wall cap
    output_limited: bool = False
    cpu_s: float | None = None
    wall_s: float = 0.0
    stdout: bytes = b""
    stderr: bytes = b""
    result: bytes = b""            # the result channel: the judge's report, or call results
    sandbox_error: str | None = None
    oom_killed: bool = False       # the memory cgroup killed a process of the sample
    supervisor_lost: bool = False  # the sample's supervisor ended without reporting
    memory_mode: str = "rlimit"

    @classmethod
    def from_reply(cls, reply: dict) -> "Execution":
        """The fork server's reply. Why it ended the sample (`reason`) is its word alone: a SIGKILL is not read as
        a timeout from the CPU time it reports (see `accounting.py`)."""
        if reply.get("error") or reply.get("setup_error"):
            return cls(sandbox_error=reply.get("error") or reply["setup_error"])
        ex = cls(cpu_s=reply["cpu_s"], wall_s=reply["wall_s"], stdout=reply["out"].encode("latin-1"),
                 stderr=reply["err"].encode("latin-1"), result=reply["res"].encode("latin-1"),
                 output_limited=reply["reason"] == "output", timed_out=reply["reason"] == "timeout",
                 oom_killed=bool(reply.get("oom")))
        status = reply["status"]
        if status is None:
            if reply["reason"] is None:  # the supervisor (for `assert`, the judge) died
                ex.sandbox_error, ex.supervisor_lost = "the program's process reported no exit status", True
            return ex
        if os.WIFSIGNALED(status):
            ex.signal = os.WTERMSIG(status)
        else:
            ex.exit_code = os.WEXITSTATUS(status)
        return ex


def bwrap_path() -> str | None:
    return shutil.which("bwrap") or (os.path.exists("/usr/bin/bwrap") and "/usr/bin/bwrap") or None


def sandbox_command(bwrap: str, packages: tuple[str, ...] = (), tmp_bytes: int = 64 << 20) -> tuple[list[str], dict]:
    """The bwrap command line of one worker, and the worker's config. Its /tmp is a tmpfs of
    `tmp_bytes` that only the judges write (each program has its own over it, `jail.py`)."""
    python, binds, hidden = interpreter()
    extra, paths = package_paths(packages)
    argv = [bwrap, "--ro-bind", "/usr", "/usr"]
    # The allowed packages are shown under PACKAGES_ROOT, not at their own paths: a venv under
    # /tmp (a fresh clone there, say) would be covered by the program's private /tmp.
    shown = {folder: f"{PACKAGES_ROOT}/{i}" for i, folder in enumerate(paths)}
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = "/" + name
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    made: set[str] = set()
    targets = [(tree, tree) for tree in binds] + [(tree, shown[os.path.dirname(tree)] + "/" + os.path.basename(tree))
                                                  for tree in extra]
    for tree, target in targets:  # bwrap would create the parents mode 0700, closed to the sandbox user
        for parent in ancestors(target):
            if (parent not in made and not parent.startswith("/usr")
                    and not any(parent == b or parent.startswith(b + "/") for b in binds)):
                argv += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        argv += ["--ro-bind", tree, target]
    for folder in hidden:  # empty, read-only: the site-packages of the bound trees
        argv += ["--perms", "0555", "--tmpfs", folder, "--remount-ro", folder]
    for source, target in code_files(_HERE, FILES):
        argv += ["--ro-bind", source, target]
    size = ["--size", str(int(tmp_bytes))] if bwrap_has_size(bwrap) else []
    argv += ["--dev", "/dev", "--proc", "/proc", "--perms", "1777", *size, "--tmpfs", "/tmp",
             "--unshare-ipc", "--unshare-pid", "--unshare-net",
             "--unshare-uts", "--unshare-cgroup-try", "--new-session", "--clearenv", "--chdir", "/"]
    for key, value in _ENV.items():
        argv += ["--setenv", key, value]
    root = os.geteuid() == 0
    if root:  # keep only what the fork server needs to switch programs to SANDBOX_UID
        argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_KILL"]
    else:
        argv += ["--unshare-user"]
    argv += ["--remount-ro", "/", "--", python, *_PY_FLAGS, "-c", _BOOT, "/sandbox/forkserver.py"]
    return argv, {"isolate": True, "uid": SANDBOX_UID if root else None, "paths": list(shown.values())}


PACKAGES_ROOT = "/opt/verirl-packages"  # inside the sandbox: one numbered folder per site-packages folder


def unsafe_command(packages: tuple[str, ...] = ()) -> tuple[list[str], dict]:
    python = os.path.realpath(sys.executable)
    _, paths = package_paths(packages)
    forkserver = os.path.join(_HERE, "forkserver.py")
    return [python, *_PY_FLAGS, "-c", _BOOT, forkserver], {"isolate": False, "uid": None, "paths": paths}


# -S: no site import (we add the allowed packages ourselves, without .pth side effects); -s: no user site;
# -B: no .pyc writes. Not -I/-E: PYTHONHASHSEED must apply, for reproducible verdicts.
_PY_FLAGS = ("-S", "-s", "-B", "-X", "utf8")
# Run the fork server's file with neither its folder nor the working directory on sys.path (programs would find its
# modules under plain names: `wire`, `jail`), via the loader: it uses the .pyc bound beside it (`confine.code_files`).
_BOOT = ("import sys; del sys.path[0]; sys.argv = sys.argv[1:]; p = sys.argv[0]; "
         "from importlib.machinery import SourceFileLoader as L; "
         "exec(L('forkserver', p).get_code('forkserver'), {'__name__': '__main__', '__file__': p})")
# One thread for numerical libraries (numpy's OpenBLAS starts one per core at import): the
# process limit counts threads, and a sample has one core's worth of time.
_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONHASHSEED": "0", "HOME": "/tmp",
        "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class _Worker:
    """One warm fork server, spoken to over length-prefixed JSON on its stdin/stdout."""

    def __init__(self, argv: list[str], cfg: dict, cgroup: SampleCgroup | None = None):
        self.errors, self.cgroup, self.memory_mb = "", cgroup, None
        self.errlog = tempfile.TemporaryFile()
        env = dict(_ENV, HOME=tempfile.gettempdir())
        try:  # the sample cgroup's files, as descriptors the fork server inherits (it cannot open them)
            fds = cgroup.descriptors() if cgroup else {}
            self.child = WorkerProcess([*argv, json.dumps({**cfg, "cgroup": fds})], LENGTH_PREFIXED,
                                       stderr=self.errlog, env=env, cwd="/", pass_fds=cgroup.fds if cgroup else ())
        except OSError as exc:
            self.errlog.close()
            raise SandboxError(f"the sandbox did not start: {exc}") from None
        finally:
            if cgroup:
                cgroup.close_descriptors()
        try:
            hello = self.child.receive(time.monotonic() + START_TIMEOUT_S)
        except WorkerGone:
            hello = None
        if not hello or not hello.get("ready"):
            self.kill()
            raise SandboxError(f"the sandbox did not start: {self.errors or 'no output'}")

    def run(self, request: dict, wall_s: float) -> dict:
        try:
            self.child.send(request)
        except WorkerGone as exc:
            raise SandboxError(f"the sandbox worker is gone ({exc}): {self.stderr_tail()}") from None
        try:
            return self.child.receive(time.monotonic() + wall_s + REPLY_SLACK_S)
        except WorkerGone:
            raise SandboxError(f"the sandbox worker did not answer: {self.stderr_tail() or 'no output'}") from None

    def stderr_tail(self, n: int = 2000) -> str:
        if self.errlog.closed:
            return self.errors
        self.errlog.seek(0)
        return self.errlog.read().decode("utf-8", "replace")[-n:].strip()

    def close(self, timeout: float = 5.0) -> None:
        """End of input makes the fork server exit, and with it the whole sandbox."""
        self.child.close(timeout)
        self._release()

    def kill(self) -> None:
        self.child.kill()  # bwrap's process group; the fork server sees end of input and ends the sandbox
        self._release()

    def _release(self) -> None:
        self.errors = self.stderr_tail()  # kept for the error message once the log is closed
        self.errlog.close()
        if self.cgroup:  # empty once the sandbox is gone (its processes may take a moment to go)
            self.cgroup.remove(wait_s=1.0)
            self.cgroup = None


def check_workers(workers) -> None:
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise VerifierError(f"option workers must be a positive int or None, got {workers!r}")


class SandboxPool:
    """`workers` warm sandboxes (default: two per core), started on first use; thread-safe.

    `packages`: names of installed packages the programs may import (none by default);
    `memory_mode`: `auto`, `cgroup` or `rlimit` (see `memory.py`); `preload`: modules
    (of the standard library or `packages`) each fork server imports before its first request,
    so that samples start with them loaded, and `env`: variables set before those imports.

    Each worker is a `verifiers.worker_process.WorkerProcess`: in its own session (a terminal's Ctrl-C does not
    reach it), and it dies with the parent (the fork server returns at end of input, whatever ended the parent).
    `close()`, or the pool's collection, ends every worker, killing one that has not gone within 5 s. Unlike the
    math pool, a forked child does not forget its parent's workers: a process that forks should build its pool
    after forking (workers start on first use, so a pool that never ran holds none)."""

    def __init__(self, workers: int | None = None, unsafe_no_sandbox: bool = False, packages=(),
                 memory_mode: str = "auto", preload: tuple[str, ...] = (), env: dict | None = None):
        check_workers(workers)
        self.preload, self.env = tuple(preload), dict(env or {})
        self.size = workers or WORKERS_PER_CORE * (os.cpu_count() or 1)
        self.unsafe = bool(unsafe_no_sandbox)
        self.packages = check_packages(packages)
        package_paths(self.packages)  # an unknown package fails here
        if self.unsafe:
            warnings.warn("unsafe_no_sandbox=True: model code runs WITHOUT isolation (rlimits only); it can "
                          "read and write this machine's files, use the network and leave processes behind",
                          RuntimeWarning, stacklevel=3)
            self.bwrap = None
        else:
            self.bwrap = bwrap_path()
            if self.bwrap is None:
                raise VerifierError(INSTALL_HINT)
        # In every worker's command line, hence in all its processes' (forks keep it), and the
        # name of the pool's cgroup folders: a way to find anything this pool left behind.
        self.tag = f"{PREFIX}{secrets.token_hex(6)}"
        self.memory = MemoryCap(memory_mode, self.tag)
        self._idle: queue.Queue = queue.Queue()
        for _ in range(self.size):
            self._idle.put(None)  # a slot whose worker starts on first use
        self._closed = False

    @property
    def memory_mode(self) -> str:
        return self.memory.mode

    def _start(self, limits: Limits) -> _Worker:
        cgroup = self.memory.make()
        if self.unsafe:
            argv, cfg = unsafe_command(self.packages)
        else:
            argv, cfg = sandbox_command(self.bwrap, self.packages, int(limits.tmp_size_mb * (1 << 20)))
        try:
            return _Worker(argv, {**cfg, "tag": self.tag, "preload": list(self.preload), "env": self.env}, cgroup)
        except SandboxError:
            if cgroup:
                cgroup.remove(wait_s=1.0)
            raise

    def run(self, request: dict, limits: Limits) -> Execution:
        """Run one request (`mode`, `program`, ... see the harnesses) on a free worker."""
        if self._closed:
            raise VerifierError("this sandbox pool is closed")
        slot: _Worker | None = self._idle.get()
        try:
            if slot is None:
                slot = self._start(limits)
            cgroup = slot.cgroup is not None
            if cgroup and slot.memory_mb != limits.memory_mb:
                try:
                    self.memory.set_cap(slot.cgroup, int(limits.memory_mb * (1 << 20)))
                except OSError as exc:
                    raise SandboxError(f"cannot cap the worker's memory cgroup: {exc}") from None
                slot.memory_mb = limits.memory_mb
            reply = slot.run({**request, "limits": limits.for_worker(self.memory, cgroup)}, limits.wall_s)
            ex = Execution.from_reply(reply)
            ex.memory_mode = self.memory.mode if cgroup else "rlimit"
            return ex
        except SandboxError as exc:
            if slot is not None:
                slot.kill()
                slot = None
            return Execution(sandbox_error=str(exc))
        finally:
            self._idle.put(slot)

    def close(self) -> None:
        self._closed = True
        slots = [slot for slot in (self._idle.get() for _ in range(self.size)) if slot is not None]
        try:  # in parallel: each waits tens of ms for its sandbox to go
            with ThreadPoolExecutor(max(1, len(slots))) as closing:
                list(closing.map(_Worker.close, slots))
        except RuntimeError:  # collected at interpreter exit, when no thread may start: one by one
            list(map(_Worker.close, slots))
        self.memory.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()
