"""The `math` verifier (and `math_audit`) and its helpers.

In the calling process (standard library only, so that `import verifiers` never imports SymPy):

    verifier.py    MathVerifier, MathAuditVerifier: the three stages, the options, the policies
    extract.py     the final answer of a completion or a gold solution (`last_boxed`, boxes, markers)
    ending.py      the fallback without a marker: last number or span, checks, hedges, cut-off text
    normalize.py   canonical strings, number bases, trig of degrees, exact numbers (`numbers_match`)
    labels.py      labelled answers (`(p,q)=(3,2)`), membership, clock times and text answers
    fast.py        form rules (multiple choice, bases, labels, degrees) and the fast path
    pool.py        the shared pools of SymPy worker processes: start, deadline in CPU time, kill

In the worker processes only (they import SymPy):

    worker.py      a worker's main loop: JSON lines in, JSON lines out, CPU and memory caps
    compare.py     equality of two parsed answers with SymPy, by the gold's type
    parse.py       LaTeX to SymPy (latex2sympy2_extended) behind a size guard
    reference.py   math-verify as the reference checker of the `audit` option

A worker imports `verifiers.math.worker` without running this file (see `pool._BOOT`).
"""

from verifiers.math.verifier import MathAuditVerifier, MathVerifier

__all__ = ["MathAuditVerifier", "MathVerifier"]
