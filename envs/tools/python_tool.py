"""`python`: run a program in the `code` verifier's sandbox and show the model its output.

The program runs as a script (the sandbox's `io` mode, empty stdin) under every isolation
rule of the `code` verifier (`verifiers.code.sandbox`: no host files, no network, own user, pid
and mount namespaces, CPU, memory, process, file and output limits). The model is shown
stdout then stderr, cut to their first and last `output_chars / 2` characters, and a last line saying why the
program ended when it did not exit cleanly (time limit, output limit, exit code, signal).

The CPU limit is the smaller of `time_limit` and the episode's tool timeout, rounded up to
whole seconds by the sandbox; the wall-clock cap is the sandbox's (2 x CPU + 5 s).
"""

from __future__ import annotations

import math
import signal
import threading

from envs.tools.base import Tool, ToolError, ToolTimeout, register_tool
from verifiers import VerifierError


def run_in_sandbox(pool, code: str, limits):
    """The one call into the code sandbox: `code` as a script with empty stdin. Returns the
    sandbox's `Execution` (stdout, stderr, exit status, limits hit, sandbox error)."""
    return pool.run({"mode": "io", "program": code, "stdin": ""}, limits)


@register_tool("python")
class Python(Tool):
    """Run a Python program in the sandbox; see its stdout and stderr."""

    description = "Run a Python 3 program in a sandbox (no files, no network) and return what it prints."
    argument = "code"
    bounds_time = True

    def __init__(self, time_limit: float = 5.0, memory_mb: int = 512, output_chars: int = 2000,
                 workers: int | None = None, unsafe_no_sandbox: bool = False):
        from verifiers.code.sandbox import INSTALL_HINT, Limits, bwrap_path

        if not unsafe_no_sandbox and bwrap_path() is None:  # now, not as an error at every call
            raise VerifierError(INSTALL_HINT)
        if not (isinstance(output_chars, int) and output_chars > 0):
            raise ValueError(f"option output_chars must be a positive int, got {output_chars!r}")
        self.limits = Limits(time_limit=time_limit, memory_mb=memory_mb, output_kb=max(1, 2 * output_chars // 1024))
        self.output_chars, self.workers, self.unsafe_no_sandbox = output_chars, workers, unsafe_no_sandbox
        self._pool = None
        self._lock = threading.Lock()

    @property
    def pool(self):
        from verifiers.code.sandbox import SandboxPool

        with self._lock:  # built on first call: it checks for bwrap and starts workers lazily
            if self._pool is None:
                self._pool = SandboxPool(self.workers, self.unsafe_no_sandbox)
            return self._pool

    def run(self, arguments: dict, timeout: float) -> str:
        from dataclasses import replace

        limits = replace(self.limits, time_limit=max(1, math.ceil(min(self.limits.time_limit, timeout))))
        ex = run_in_sandbox(self.pool, arguments[self.argument], limits)
        if ex.sandbox_error:
            raise ToolError(f"the sandbox failed: {ex.sandbox_error[:200]}")
        text = (ex.stdout + ex.stderr).decode("utf-8", "replace")
        if len(text) > self.output_chars:  # head and tail: a traceback's last line is the useful one
            head = self.output_chars // 2
            text = (text[:head] + f"\n[... {len(text) - self.output_chars} characters cut ...]\n"
                    + text[len(text) - (self.output_chars - head):])
        if ex.timed_out:
            raise ToolTimeout(f"time limit exceeded ({limits.time_limit:g} s CPU)\n{text}".rstrip())
        if ex.output_limited:
            return text + "\n[output limit exceeded: the program was stopped]"
        if ex.signal is not None:
            return text + f"\n[killed by {signal.Signals(ex.signal).name}]"
        if ex.exit_code:
            return text + f"\n[exit code {ex.exit_code}]"
        return text

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
