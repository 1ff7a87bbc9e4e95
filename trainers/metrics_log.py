"""What a run reports while it trains: `metrics.jsonl` (one JSON object per optimizer step),
TensorBoard scalars when asked, a progress line on stderr every `log_every` steps, the warnings
of the reward-hacking telemetry (`trainers.telemetry`) and, through its `guard`, the stop rule
for a failing verifier (`trainers.fault_guard`), checked once each step is logged.

Every rank computes its own step metrics; `MetricsLog.record` reduces them over ranks
(`DataParallel.step_metrics`) and rank 0 alone writes. A resumed run first drops the lines
logged after its checkpoint (`resume_at`): they will be logged again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from models import distributed
from trainers.fault_guard import FaultGuard
from trainers.parallel import DataParallel
from trainers.telemetry import HackingMonitor


def progress(*args) -> None:
    """A progress line on stderr, from rank 0 only (every rank would print the same)."""
    if distributed.is_main():
        print(*args, file=sys.stderr, flush=True)


class MetricsLog:
    """`out/metrics.jsonl` and `history`, the metrics logged so far (one dict per step)."""

    def __init__(self, out: Path, dp: DataParallel, *, log_every: int = 10, tensorboard: bool = False,
                 guard: FaultGuard | None = None):
        self.path, self.dp, self.log_every = Path(out) / "metrics.jsonl", dp, log_every
        self.history: list[dict] = []
        self.guard = guard
        self.monitor = HackingMonitor(progress)
        self._tb = None
        if tensorboard and distributed.is_main():
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(Path(out) / "tb"))

    def record(self, step: int, elapsed_s: float, metrics: dict) -> dict:
        """Log one step's metrics (this rank's; reduced over ranks here); the logged dict."""
        metrics = self.dp.step_metrics(metrics)
        metrics = {"step": step, "elapsed_s": round(elapsed_s, 3), "world_size": self.dp.world, **metrics}
        warnings = self.monitor.observe_step(step, metrics)   # prints a line per warning (rank 0)
        if warnings:
            metrics["hacking_warnings"] = warnings
        self.history.append(metrics)
        if not distributed.is_main():
            self._check(step, metrics)
            return metrics
        with open(self.path, "a") as f:
            f.write(json.dumps(metrics) + "\n")
        if self._tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)):
                    self._tb.add_scalar(k, v, step)
        if step % self.log_every == 0 or step == 1:
            faults = (f"  verifier faults {metrics['verifier_failure_rate']:.1%}"
                      if metrics.get("verifier_faults") else "")
            progress(f"step {step:4d}  reward {metrics['reward_mean']:.3f}  pass {metrics['pass_rate']:.3f}  "
                     f"loss {metrics['loss']:+.4f}  gen {metrics['generation_s']:.2f}s  upd {metrics['update_s']:.2f}s"
                     + faults)
        self._check(step, metrics)
        return metrics

    def _check(self, step: int, metrics: dict) -> None:
        """The stop rule (`trainers.fault_guard`), once the step is logged: every rank sees the
        same reduced metrics, so all stop together."""
        if self.guard is not None:
            self.guard.check(step, metrics)

    def heldout_gap(self, step: int, heldout_pass_at_1: float, since: int) -> dict:
        """The held-out gap at an evaluation after step `step`: the mean training pass rate of
        the steps after `since` minus `heldout_pass_at_1` (`HackingMonitor.observe_evaluation`)."""
        rates = [m["pass_rate"] for m in self.history if since < m["step"] <= step and "pass_rate" in m]
        train = sum(rates) / len(rates) if rates else float("nan")
        return self.monitor.observe_evaluation(step, train, heldout_pass_at_1)

    def resume_at(self, step: int) -> None:
        """Keep the lines of steps up to `step` (those after it are redone) as the history."""
        self.history = trim_metrics(self.path, step)


def trim_metrics(path: Path, step: int) -> list[dict]:
    """Drop the lines of metrics.jsonl logged after `step` (they will be redone); the rest.
    Only rank 0 rewrites the file; every rank gets the kept lines."""
    if not path.exists():
        return []
    lines = [ln for ln in path.read_text().splitlines() if json.loads(ln)["step"] <= step]
    distributed.barrier()  # every rank has read the file before rank 0 rewrites it
    if distributed.is_main():
        path.write_text("".join(ln + "\n" for ln in lines))
    return [json.loads(ln) for ln in lines]
