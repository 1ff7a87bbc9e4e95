"""verifiers.worker_process: a long-lived child, framed JSON on its pipes, deadlines, kill and reap.

The children are small Python programs; the math pool and the sandbox pool are tested through
this mechanism in test_math.py, test_math_rules.py and test_sandbox.py.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from verifiers.code import forkserver
from verifiers.worker_process import _NOTHING, LENGTH_PREFIXED, LINES, WorkerGone, WorkerProcess, WorkerTimeout

ECHO = "import os\nwhile chunk := os.read(0, 1 << 16):\n    os.write(1, chunk)\n"   # bytes back, until end of input
SILENT = "import sys, time\nsys.stdin.readline()\ntime.sleep(60)\n"                # reads, never answers
MESSAGES = [None, 0, "line\nbreak", "héllo \u2028", {"a": [1, 2.5, True]}, list(range(1000)),
            "x" * 50_000]   # its echo fits in a pipe (64 KiB): the child never blocks while we write


def _child(code: str, framing=LINES) -> WorkerProcess:
    return WorkerProcess([sys.executable, "-c", code], framing)


def _gone(pid: int, within: float = 10.0) -> bool:
    """True once `pid` no longer runs (gone, or a zombie nobody reaped yet)."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        status = Path(f"/proc/{pid}/status")
        try:
            if "zombie" in status.read_text().lower():
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("framing", [LINES, LENGTH_PREFIXED])
def test_messages_survive_the_round_trip_in_order(framing):
    child = _child(ECHO, framing)
    try:
        for message in MESSAGES:
            child.send(message)
            assert child.receive(time.monotonic() + 30) == message
    finally:
        child.kill()


@pytest.mark.parametrize("framing", [LINES, LENGTH_PREFIXED])
def test_a_message_split_anywhere_is_taken_whole_and_only_then(framing):
    data = framing.encode({"k": "v"}) + framing.encode([1])
    buffer, taken = bytearray(), []
    for i, byte in enumerate(data, 1):                   # one byte at a time, as a pipe may deliver
        buffer.append(byte)
        value = framing.take(buffer)
        if value is not _NOTHING:
            taken.append((i, value))
    assert taken == [(len(framing.encode({"k": "v"})), {"k": "v"}), (len(data), [1])] and buffer == bytearray()


def test_length_prefixed_is_what_the_fork_server_reads_and_writes():
    read, write = os.pipe()
    try:
        os.write(write, LENGTH_PREFIXED.encode({"mode": "io", "program": "print(1)\n"}))
        assert forkserver.read_msg(read) == {"mode": "io", "program": "print(1)\n"}
        forkserver.write_msg(write, {"ready": True})
        buffer = bytearray(os.read(read, 1 << 16))
        assert LENGTH_PREFIXED.take(buffer) == {"ready": True} and buffer == bytearray()
    finally:
        os.close(read)
        os.close(write)


def test_no_reply_by_the_deadline_is_a_timeout_and_the_child_lives_on():
    child = _child(SILENT)
    try:
        child.send({"q": 1})
        with pytest.raises(WorkerTimeout):
            child.receive(time.monotonic() + 0.2)
        assert child.proc.poll() is None                 # the caller decides: wait longer, or kill
    finally:
        child.kill()
    assert child.proc.returncode is not None and child.proc.stdin.closed and child.proc.stdout.closed


def test_a_child_that_ends_is_gone_not_timed_out():
    child = _child("import sys\nsys.stdin.readline()\nsys.exit(3)\n")
    child.send({"q": 1})
    with pytest.raises(WorkerGone) as info:
        child.receive(time.monotonic() + 30)
    assert not isinstance(info.value, WorkerTimeout)
    child.kill()
    assert child.proc.returncode == 3
    with pytest.raises(WorkerGone, match="pipe closed"):
        child.send({"q": 2})                             # its input is closed too


def test_the_child_has_its_own_session_so_ctrl_c_misses_it():
    child = _child(SILENT)
    try:
        assert os.getsid(child.pid) == child.pid != os.getsid(0)
    finally:
        child.kill()


def test_kill_takes_the_childs_whole_process_group():
    code = ("import subprocess, sys\np = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            "print(p.pid, flush=True)\nsys.stdin.readline()\n")
    child = _child(code)
    grandchild = child.receive(time.monotonic() + 30)
    child.kill()
    assert _gone(grandchild)


def test_close_lets_the_child_exit_at_end_of_input_else_kills_it():
    polite = _child(ECHO)
    polite.close(timeout=30)
    assert polite.proc.returncode == 0                   # it read end of input and ended itself
    stubborn = _child("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)\n")
    stubborn.close(timeout=0.2)
    assert stubborn.proc.returncode == -9                # SIGKILL, after the grace time
