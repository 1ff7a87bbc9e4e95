"""math-verify (HuggingFace) as a reference checker, for the `audit` option of `math`.

It runs inside the `math` verifier's worker processes, like SymPy, so that its parser is
bounded by the same kill-on-deadline and memory cap. It is called as its README shows:
`verify(parse(gold), parse(completion))`, a gold without `$` or `\\boxed` wrapped in `$..$`.
Not installed: the reply says so, and the audit records that nothing was compared.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache


@lru_cache(maxsize=1)  # asked on every audited verdict: one sys.path scan per process is enough
def available() -> bool:
    return importlib.util.find_spec("math_verify") is not None


def reference_check(request: dict) -> dict:
    """{"status": "passed"/"failed"} from math-verify, or {"status": "unavailable"}."""
    if not available():
        return {"status": "unavailable", "error": "math-verify is not installed"}
    from math_verify import parse, verify

    gold = request["gold"]
    if "$" not in gold and "\\boxed" not in gold:
        gold = "$" + gold + "$"
    try:
        passed = bool(verify(parse(gold), parse(request["completion"])))
    except Exception as exc:  # noqa: BLE001 - a third-party checker: its failure is its "no"
        return {"status": "failed", "error": f"math-verify raised {type(exc).__name__}: {exc}"}
    return {"status": "passed" if passed else "failed"}
