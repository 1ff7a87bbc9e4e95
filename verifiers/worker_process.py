"""A long-lived child process spoken to in framed JSON: the one mechanism under the `math`
verifier's SymPy workers (`verifiers.math.pool`) and the `code` verifier's sandboxes
(`verifiers.code.sandbox`).

`WorkerProcess` owns what both need and nothing of their policies:

* spawning: `subprocess.Popen` with pipes on the child's stdin and stdout (unbuffered), in a
  session of its own, so that a terminal's Ctrl-C (SIGINT to the foreground process group)
  never reaches it, and its whole process group can be killed at once. `Popen` is
  thread-safe and never forks the calling process, so workers may start from any thread;
* messages: one JSON value per message, framed as `LINES` (one line each; `json.dumps` never
  writes a raw newline) or `LENGTH_PREFIXED` (a 4-byte big-endian length, then the JSON).
  The child's side of a framing lives with the child: the sandbox's fork server has its own
  copy, because it runs where only the standard library is visible;
* reading with a deadline: `receive(deadline)` waits in `select` on the child's stdout, and
  raises `WorkerTimeout` at the deadline or `WorkerGone` when the child closed its stdout;
  a caller with another notion of deadline (CPU time) calls it again with a later one;
* ending it: `close()` closes the pipes (end of input: a well-behaved child exits by itself)
  and kills it if it has not exited in time; `kill()` kills its process group with SIGKILL,
  reaps it and closes the pipes.

Every child of this mechanism reads its requests on its stdin and exits at end of input, so
it dies with its parent: the kernel closes the parent's end of the pipe however the parent
ends (`kill -9` included). The pools add their own guarantees on top (see their docstrings):
the math pool kills its workers at interpreter exit and makes a forked child forget its
parent's workers; the sandbox pool closes its workers on `close()` and when collected.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from typing import Any, Callable

_NOTHING = object()   # no complete message buffered yet (a message may itself be JSON `null`)


class WorkerGone(Exception):
    """The child cannot answer any more (it closed its output, or its input pipe broke); it
    must be replaced."""


class WorkerTimeout(WorkerGone):
    """No complete message arrived by the deadline."""


class Framing:
    """How JSON messages are cut out of a byte stream: `encode(value) -> bytes`, and
    `take(buffer)`, which removes the first complete message from the bytearray and returns
    its value, or `_NOTHING`."""

    def __init__(self, name: str, encode: Callable[[Any], bytes], take: Callable[[bytearray], Any]):
        self.name, self.encode, self.take = name, encode, take

    def __repr__(self) -> str:
        return f"Framing({self.name!r})"


def _take_line(buffer: bytearray) -> Any:
    end = buffer.find(b"\n")
    if end < 0:
        return _NOTHING
    line = bytes(buffer[:end])
    del buffer[:end + 1]
    return json.loads(line)


def _take_prefixed(buffer: bytearray) -> Any:
    if len(buffer) < 4:
        return _NOTHING
    end = 4 + int.from_bytes(buffer[:4], "big")
    if len(buffer) < end:
        return _NOTHING
    data = bytes(buffer[4:end])
    del buffer[:end]
    return json.loads(data)


def _encode_prefixed(value: Any) -> bytes:
    data = json.dumps(value).encode()
    return len(data).to_bytes(4, "big") + data


LINES = Framing("lines", lambda value: json.dumps(value).encode() + b"\n", _take_line)
LENGTH_PREFIXED = Framing("length-prefixed", _encode_prefixed, _take_prefixed)


def kill_process(proc: subprocess.Popen) -> None:
    """SIGKILL the process group of a child started in its own session, reap the child and
    close its pipes. The group is signalled only while the child is unreaped: until then its
    pid (the group's id) cannot have been reused."""
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # already gone
    _close_pipes(proc)
    proc.wait()


def _close_pipes(proc: subprocess.Popen) -> None:
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            pipe.close()


class WorkerProcess:
    """One child process (`argv`), spoken to in `framing` on its stdin and stdout. Other
    `Popen` arguments (stderr, env, cwd) pass through."""

    def __init__(self, argv: list[str], framing: Framing = LINES, **popen: Any):
        self.framing = framing
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
                                     start_new_session=True, **popen)
        self._buffer = bytearray()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, message: Any) -> None:
        """Write one message; `WorkerGone` if the child's input is closed."""
        view = memoryview(self.framing.encode(message))
        try:
            while view:
                view = view[os.write(self.proc.stdin.fileno(), view):]
        except (OSError, ValueError) as exc:   # ValueError: our end already closed
            raise WorkerGone(f"worker pipe closed: {exc}") from None

    def receive(self, deadline: float) -> Any:
        """The next message, waiting until `deadline` (`time.monotonic()`) at most: then
        `WorkerTimeout`. `WorkerGone` when the child closed its output. A reply that is not
        JSON raises `ValueError`."""
        fd = self.proc.stdout.fileno()
        while (message := self.framing.take(self._buffer)) is _NOTHING:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise WorkerTimeout("timeout")
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                code = self.proc.poll()
                raise WorkerGone("worker closed its output" if code is None else f"worker exited with code {code}")
            self._buffer += chunk
        return message

    def close(self, timeout: float) -> None:
        """End of input, so that the child exits by itself; killed if it has not within `timeout` s."""
        _close_pipes(self.proc)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        kill_process(self.proc)
