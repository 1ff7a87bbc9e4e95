"""`python -m verifiers serve` as a subprocess on a free loopback port, for the server and client tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 60.0  # seconds for a server to answer /health (a loaded 2-core machine)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server process (in its own session, so that killing it takes its sandboxes too)."""

    def __init__(self, log_path: Path, verifier: str, *args: str, script: str | None = None):
        """`python -m verifiers serve --verifier VERIFIER ARGS...`, or `python SCRIPT PORT ARGS...`
        (a server of a test's own, such as `tests/flaky_server.py`)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "w")
        cmd = [sys.executable, "-m", "verifiers", "serve", "--verifier", verifier, "--host", "127.0.0.1",
               "--port", str(self.port), *args] if script is None else [sys.executable, script, str(self.port), *args]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as reply:
                    if json.loads(reply.read())["status"] == "ok":
                        return
            except OSError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"server did not answer /health within {START_TIMEOUT} s: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            time.sleep(0.02)
        return False

    def post(self, path: str, body: bytes, headers: dict | None = None) -> tuple[int, object]:
        """(status, decoded JSON answer) of a POST, 4xx and 5xx included."""
        request = urllib.request.Request(self.url + path, data=body, method="POST",
                                         headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            text = exc.read()
            try:
                return exc.code, json.loads(text)
            except ValueError:
                return exc.code, text.decode(errors="replace")

    def alive(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=10) as reply:
                return reply.status == 200 and self.proc.poll() is None
        except OSError:
            return False

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: the server and its sandboxes
        self.proc.wait(timeout=30)
        self._log.close()
