"""A `math` server whose checker crashes on every other sample it is sent, for the tests of
what the trainers do with verifier faults: `python tests/flaky_server.py PORT`.

The crash is a registered-function verifier raising, which `FunctionVerifier` turns into that
sample's `verifier_error` verdict; so a batch of an even size gets exactly half its verdicts
faulted, the other half judged by the real `math` verifier.
"""

from __future__ import annotations

import itertools
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from verifiers import get_verifier  # noqa: E402
from verifiers.base import FunctionVerifier  # noqa: E402
from verifiers.serve import ServeLimits, serve  # noqa: E402


def main(port: int) -> int:
    math = get_verifier("math")
    calls, lock = itertools.count(), threading.Lock()

    def flaky(completion, task):
        with lock:
            n = next(calls)
        if n % 2:
            raise RuntimeError("the checker crashed")
        return math.verify(completion, task)

    # Served under the name the trainer's environment asks for, so its client accepts it.
    return serve(FunctionVerifier(flaky, "math", ""), "math", {}, "127.0.0.1", port, ServeLimits())


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
