"""Math answer verifier (`math`): the model's final answer against `Task.answer`.

Minimal first version: extraction of `\\boxed{}` / `#### n` / the last number, and exact
rational comparison. The SymPy-backed version replaces it.
"""

from __future__ import annotations

import re
from fractions import Fraction

from verifiers.base import Task, Verdict, Verifier, VerifierError, register_verifier

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


def _extract(completion: str) -> str | None:
    i = completion.rfind("\\boxed{")
    if i >= 0:
        depth, start = 0, i + len("\\boxed{")
        for j in range(start, len(completion)):
            depth += {"{": 1, "}": -1}.get(completion[j], 0)
            if depth < 0:
                return completion[start:j]
    if "####" in completion:
        return completion.rsplit("####", 1)[1].strip().splitlines()[0] if completion.rsplit("####", 1)[1].strip() else None
    numbers = _NUMBER.findall(completion)
    return numbers[-1] if numbers else None


def _number(text: str) -> Fraction | None:
    try:
        return Fraction(text.strip().replace(",", "").replace("$", "").rstrip("."))
    except (ValueError, ZeroDivisionError):
        return None


@register_verifier("math")
class MathVerifier(Verifier):
    """Final math answer against the gold answer."""

    def verify(self, completion: str, task: Task) -> Verdict:
        if task.answer is None:
            raise VerifierError(f"task {task.id!r} has no answer (Task.answer is None)")
        answer = _extract(completion)
        gold, pred = _number(str(task.answer)), _number(answer) if answer is not None else None
        passed = answer is not None and (answer.strip() == str(task.answer).strip() or (gold is not None and gold == pred))
        return Verdict(float(passed), passed, {"status": "passed" if passed else "failed", "answer": answer})
