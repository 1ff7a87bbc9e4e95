"""The main loop of one worker process of the `math` verifier (started by `verifiers.math.pool`).

It reads one JSON request per stdin line and writes one JSON reply per stdout line: a check
(`verifiers.math.compare.check`) or, for the audit, a math-verify check
(`verifiers.math.reference`). It ignores SIGINT (Ctrl-C is the parent's to handle), caps its
address space (`memory_mb`) and the CPU time of each request, and exits at end of input, so
that it dies with its parent.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import warnings

from verifiers.math.compare import check
from verifiers.math.parse import parse
from verifiers.math.reference import reference_check

# One parse before "ready" pays ANTLR's first-use set-up outside any check's deadline; the
# parser's caches for other shapes of answer fill as checks arrive.
_WARM_UP = ("x^2+1",)


def _cap_cpu(seconds: float | None) -> None:
    """A kernel-enforced CPU budget for one request (SIGXCPU ends the process). The parent
    kills an overrunning worker long before; this only stops a worker whose parent died
    mid-check (killed with -9, say) from spinning on for ever with nobody to kill it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    limit = hard
    if seconds is not None:
        limit = int(sum(os.times()[:2]) + seconds) + 1
        limit = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (limit, hard))


def _reply_channel():
    """Replies go to the original stdout; fd 1 itself now points at stderr, so stray prints
    (Python or C level) can never corrupt the protocol."""
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def serve(memory_mb: int = 0) -> None:
    """Worker main loop: one JSON request per stdin line, one JSON reply per stdout line."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warnings.simplefilter("ignore")
    sys.setrecursionlimit(20_000)
    out = _reply_channel()
    if memory_mb > 0:
        limit = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    for text in _WARM_UP:
        parse(text)
    out.write('{"ready": true}\n')
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        _cap_cpu(request.get("cpu_budget"))
        try:
            reply = reference_check(request) if request.get("kind") == "reference" else check(request)
        except MemoryError:
            parse.cache_clear()
            out.write(json.dumps({"status": "memory", "error": "answer exceeded the worker memory limit"}) + "\n")
            out.flush()
            return                          # a fresh worker replaces this one
        _cap_cpu(None)
        out.write(json.dumps(reply) + "\n")
        out.flush()
