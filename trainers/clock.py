"""The run's clock: the optimizer step counter, the `max_minutes` safety cap, Ctrl-C, and the
checkpoint before a safety rule ends the run (`trainers.fault_guard.RunStopped`).

A run's result depends on its step count, not on the machine's speed, unless `max_minutes` is
hit: then every rank stops at the same step (one collective decides). Ctrl-C lets the step in
progress finish, then saves a checkpoint and exits with status 130, and `--resume true`
continues from it exactly (a step cut in the middle would leave weights, data position and a
rollout worker's queue at different steps); a second Ctrl-C stops at once. With several
processes the ranks stop at different points and cannot save together, so Ctrl-C stops them at
once and they resume from the last periodic checkpoint instead.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from trainers.fault_guard import RunStopped
from trainers.metrics_log import progress
from trainers.parallel import DataParallel


class RunClock:
    """Steps done (`step`) out of `steps`, and the training time, which a resumed run continues."""

    def __init__(self, steps: int, max_minutes: float, dp: DataParallel):
        self.steps, self.max_minutes, self.dp = steps, max_minutes, dp
        self.step = 0
        self._start = time.perf_counter()
        self._interrupted = False

    def elapsed(self) -> float:
        """Seconds of training so far, a resumed run's earlier ones included."""
        return time.perf_counter() - self._start

    def resume(self, step: int, elapsed_s: float) -> None:
        self.step = step
        self._start -= elapsed_s

    def next_step(self) -> bool:
        """Advance the step counter; False once `steps` are done or `max_minutes` is up.
        Raises KeyboardInterrupt here, between steps, after a deferred Ctrl-C."""
        if self._interrupted:
            raise KeyboardInterrupt
        if self.step >= self.steps or self.time_is_up():
            return False
        self.step += 1
        return True

    def time_is_up(self) -> bool:
        limit = self.max_minutes
        up = bool(limit) and self.elapsed() > 60 * limit
        if self.dp.world > 1 and limit:  # all ranks stop at the same step, or some would wait forever
            up = self.dp.all_reduce([float(up)], "max")[0] > 0
        if up:
            progress(f"max_minutes={limit} reached: stopping at step {self.step} of {self.steps}")
        return up

    def _defer(self, signum, frame) -> None:
        """The first Ctrl-C: finish the step (`next_step` raises); the next one interrupts at once."""
        self._interrupted = True
        signal.signal(signal.SIGINT, signal.default_int_handler)
        progress("interrupted: finishing this step, then saving (Ctrl-C again to stop at once)")

    @contextmanager
    def interruptible(self, save: Callable[[], Path]):
        """Ctrl-C inside the block calls `save` (one process: after the step in progress) and
        exits with status 130; a safety rule's `RunStopped` (every rank at the same step) calls
        `save` and goes on up."""
        defer = self.dp.world == 1 and threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, self._defer) if defer else None
        try:
            yield
        except RunStopped:
            save()
            raise
        except KeyboardInterrupt:
            if self.dp.world > 1:
                progress("interrupted: with several processes no checkpoint is saved on Ctrl-C; "
                         "--resume true continues from the last periodic one")
            else:
                progress(f"interrupted: saved {save()}; continue with --resume true")
            raise SystemExit(130) from None
        finally:
            if defer:
                signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)
