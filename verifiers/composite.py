"""`CompositeVerifier`: a weighted sum of verifiers, registered as `composite`.

Its own module so that `verifiers.base` stays the contract; the part that decides `passed`,
the weights and how a verifier fault in a part becomes the composite's are in the class's
docstring.
"""

from __future__ import annotations

import math
from typing import Any

from verifiers.base import Task, Verdict, Verifier, VerifierError, check_batch, get_verifier, register_verifier


@register_verifier("composite")
class CompositeVerifier(Verifier):
    """Weighted sum of verifiers; `passed` comes from the designated correctness part.

    `parts` maps a part name to a weight, or to `{"weight": w, "verifier": registered name,
    "options": {...}}`; a bare name is the registered verifier of that name. Built verifiers
    may be given as `(verifier, weight)` pairs. A weight of 0 logs the part without
    rewarding it. Per-part rewards, statuses and infos go in `info["parts"]`, the correctness
    part's name in `info["correctness"]` (the trainers' reward-composition telemetry reads both).

    A verifier fault in the correctness part, or in any part with a weight, makes the whole
    verdict that fault (its status and error, and `info["fault_part"]` naming the part): the
    weighted sum would be no judgement either. A fault in a logged-only part (weight 0) does not.
    """

    def __init__(self, parts: dict | list, correctness: str | None = None):
        self.parts: list[tuple[str, Verifier, float]] = []
        items = parts.items() if isinstance(parts, dict) else parts
        for item in items:
            self.parts.append(self._build_part(*item))
        if not self.parts:
            raise VerifierError("CompositeVerifier needs at least one part")
        names = [p[0] for p in self.parts]
        if len(set(names)) != len(names):
            raise VerifierError(f"CompositeVerifier part names must be unique, got {names}")
        self.correctness = correctness or names[0]
        if self.correctness not in names:
            raise VerifierError(f"correctness part {self.correctness!r} is not one of the parts {names}")

    @staticmethod
    def _build_part(key: Any, spec: Any) -> tuple[str, Verifier, float]:
        if isinstance(key, Verifier):
            return key.name, key, float(spec)
        if isinstance(spec, dict):
            unknown = set(spec) - {"weight", "verifier", "options"}
            if unknown:
                raise VerifierError(f"part {key!r}: unknown field(s) {sorted(unknown)}; "
                                    "valid: weight, verifier, options")
            verifier = get_verifier(spec.get("verifier", key), **spec.get("options", {}))
            weight = spec.get("weight", 1.0)
        else:
            verifier, weight = get_verifier(key), spec
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise VerifierError(f"part {key!r}: weight must be a finite number, got {weight!r}")
        return key, verifier, float(weight)

    def _combine(self, verdicts: list[Verdict]) -> Verdict:
        parts = {}
        for (name, _, weight), v in zip(self.parts, verdicts):
            parts[name] = {"reward": v.reward, "passed": v.passed, "weight": weight, "info": v.info}
        main = parts[self.correctness]
        reward = sum(w * v.reward for (_, _, w), v in zip(self.parts, verdicts))
        info = {"status": main["info"].get("status", "passed" if main["passed"] else "failed"), "parts": parts,
                "correctness": self.correctness}
        if "error" in main["info"]:
            info["error"] = main["info"]["error"]
        faulted = next((name for (name, _, weight), v in zip(self.parts, verdicts)
                        if v.verifier_fault and (weight != 0 or name == self.correctness)), None)
        if faulted is not None:
            fault = parts[faulted]["info"]
            info.update(status=fault["status"], error=f"{faulted}: {fault.get('error', 'no error text')}",
                        fault_part=faulted)
        if "audit" in main["info"]:   # the reward audit of the correctness part, where trainers look
            info["audit"] = main["info"]["audit"]
        return Verdict(reward, main["passed"], info)

    def verify(self, completion: str, task: Task) -> Verdict:
        return self._combine([v.verify(completion, task) for _, v, _ in self.parts])

    def verify_batch(self, completions: list[str], tasks: list[Task]) -> list[Verdict]:
        check_batch(completions, tasks)
        per_part = [v.verify_batch(completions, tasks) for _, v, _ in self.parts]
        return [self._combine(list(vs)) for vs in zip(*per_part)]

    def warm_up(self) -> None:
        for _, v, _ in self.parts:
            v.warm_up()

    def close(self) -> None:
        for _, v, _ in self.parts:
            v.close()
