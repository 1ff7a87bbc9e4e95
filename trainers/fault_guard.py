"""The run's stop rule for a broken verifier: `--max-verifier-failure-rate` over a window of steps.

A verifier fault (`Verdict.verifier_fault`: a sandbox that could not start, no server that
answered, a checker that crashed) is no judgement of the completion, so the trainers leave its
row out of the loss (`trainers.rollout`). A few such rows cost a little data; many mean the run
learns from whatever samples happened to reach a working checker, or from nothing. So each
step's `verifier_faults` and verdict count are summed over the last `window` steps (fewer at the
start of a run, so a dead server stops it after its first step), and when the faults' share of
those verdicts exceeds `max_rate` the run saves a checkpoint and ends with one line naming the
verifier, the failure and the rate (exit status 3; `--resume true` continues once the verifier
works). The default window, 10 steps, lets a transient outage of one step pass, masked, while
a dead server or sandbox stops the run at once. The rates are those of all ranks (the logged
metrics are reduced first), so every rank stops at the same step.
"""

from __future__ import annotations

from collections import deque


class RunStopped(Exception):
    """A safety rule ended the run after a checkpoint; the message is the one line to print."""


class VerifierFaultStop(RunStopped):
    """The verifier failed on too many samples of the last steps."""


class FaultGuard:
    """Sums the last `window` steps' verdicts and faults; `check` raises `VerifierFaultStop`
    when their rate exceeds `max_rate` (1.0: never). `verifier` names the run's verifier when a
    fault does not name its part."""

    def __init__(self, max_rate: float, window: int, verifier: str = "the verifier"):
        self.max_rate, self.verifier = max_rate, verifier
        self.recent: deque[tuple[int, int]] = deque(maxlen=window)

    @classmethod
    def of(cls, cfg, env) -> "FaultGuard":
        """The guard of a run config (`max_verifier_failure_rate`, `verifier_failure_window`) on
        `env`, named after its verifier (a composite's correctness part)."""
        verifier = env.verifier
        return cls(cfg.max_verifier_failure_rate, cfg.verifier_failure_window,
                   getattr(verifier, "correctness", None) or getattr(verifier, "name", "the verifier"))

    def rate(self) -> float:
        samples = sum(n for n, _ in self.recent)
        return sum(f for _, f in self.recent) / samples if samples else 0.0

    def check(self, step: int, metrics: dict) -> None:
        """Count a logged step's `verifier_verdicts` and `verifier_faults` (all ranks') and stop
        the run when the window's rate is over the limit."""
        self.recent.append((int(metrics.get("verifier_verdicts", 0)), int(metrics.get("verifier_faults", 0))))
        if self.rate() <= self.max_rate:
            return
        first = metrics.get("verifier_fault") or {}
        name = first.get("verifier") or self.verifier
        n = len(self.recent)
        raise VerifierFaultStop(
            f"stopped at step {step}: verifier {name!r} failed on {self.rate():.1%} of the samples of the last "
            f"{n} step{'s' if n > 1 else ''}, above --max-verifier-failure-rate {self.max_rate:g} "
            f"(last failure: {first.get('status', '?')}: {first.get('error', '?')}); the faulted samples were left "
            f"out of the loss and a checkpoint is saved: fix the verifier, then continue with --resume true")
