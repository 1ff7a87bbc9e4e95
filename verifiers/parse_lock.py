"""`parse`: `ast.parse`, one thread at a time.

CPython 3.11 converts a parsed tree to `ast` objects with a recursion-depth counter kept per
interpreter, not per thread; when two threads parse at once (the verifiers' `verify_batch`
threads do), a switch in the middle of one conversion makes the other raise `SystemError: AST
constructor recursion depth mismatch` (seen in `make test` under load, on HumanEval tests parsed
by the code verifier). Parsing is microseconds against a verdict's milliseconds, so the
verifiers parse through this lock rather than ever raise on that.
"""

from __future__ import annotations

import ast
import threading

_LOCK = threading.Lock()


def parse(source: str, mode: str = "exec") -> ast.AST:
    """`ast.parse(source, mode=mode)`, serialised across threads (see the module docstring)."""
    with _LOCK:
        return ast.parse(source, mode=mode)
