"""Asynchronous rollouts (`--rollout async`): a worker process samples and verifies the next
batches while the trainer updates on the current one.

**The schedule** (`trainers.rollout_worker.behaviour_version`): with `max_staleness` N, batch b
is sampled by version b - N (the policy after b - N optimizer steps), that version and no other,
however fast either side runs; the run is reproducible for a seed, timings aside.

**The worker** (`trainers.rollout_worker`) runs in a process of its own with its own copy of
the sampler, its own `RolloutSource` on a copy of the trainer's task stream, and the
environment; for each batch it waits for its version, loads the weights, samples, verifies and
queues the whole batch.

**The trainer's side** (`AsyncRollouts`) takes batches as the loop asks for them (`next_batch`),
and after each optimizer step publishes the new version (`publish`): the weights into shared
memory (`trainers.weights_channel`), then a message with the version number. A task source that
adapts (the curriculum) lives in the worker: its stream observes the verdicts of each batch the
worker draws (`RolloutSource.draw`), in order, so batch b is drawn with the curriculum state
after batches 0 .. b - 1, deterministically, whatever the timings; its state travels with each
batch. Advantages, PPO's values and every loss are computed by the trainer when a batch arrives,
as in sync mode.

**Checkpoints.** A checkpoint after step s holds the weights of version s, but the batches
s .. s + N - 1 were sampled by older versions, which it does not hold: they are saved as they
are (`rollouts-RANK.pt`), with the stream's state after them, so `--resume` continues exactly.
`meta.json`'s data state is the one before batch s, so a run resumed at another world size, or
in sync mode, continues from the same data, not bit-exact.

**Failures.** A worker that raises sends its error and exits; one that dies is noticed within
a second; either ends the run with one line naming the worker and its error (bad input, such as
a prompt the tokenizer cannot read, is the same `error:` line as in sync mode). The worker
ignores Ctrl-C (the trainer finishes its step, saves, and stops it), and dies with the trainer
(`PR_SET_PDEATHSIG`); its verifier children end when their pipes close.
"""

from __future__ import annotations

import pickle
import queue
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import torch
import torch.multiprocessing as mp

from models import distributed
from trainers.metrics_log import progress
from trainers.rollout import Rollout, RolloutSource
from trainers.rollout_worker import POLL_S, RolloutWorkerError, WorkerSpec, worker_main
from trainers.weights_channel import WeightSlots

STOP_GRACE_S = 30.0   # how long a stopping worker may take to finish its batch before it is killed


# --------------------------------------------------------------------------- the trainer's side


class AsyncRollouts:
    """Batches from a rollout worker process, on the schedule of `behaviour_version`: the
    loop's feed under `--rollout async` (`trainers.rollout.SyncRollouts` under sync). Also the
    run's data stream as `Checkpoints` sees it (`state_dict`, and the queued batches in
    `save_files` / `load_files`)."""

    def __init__(self, cfg, env, policy, dp, rollouts: RolloutSource, draw: Callable | None = None):
        self.cfg, self.policy, self.dp, self.rollouts, self.draw = cfg, policy, dp, rollouts, draw
        self.env_module = type(env).__module__
        self.held: dict[int, tuple[Rollout, dict]] = {}   # batch index -> (batch, stream state after it)
        self.trained_state = rollouts.stream.state_dict()  # the stream before the next batch to train
        self.next_index = 0                                # the next batch to train
        self.first = self.floor = 0                        # the worker's first batch; its first version
        self.restored: dict | None = None                  # what a checkpoint queued (load_files)
        self.waited = 0.0
        self.process = self.slots = self.inbox = self.outbox = None

    # ----------------------------------------------------------- the stream, as checkpoints see it
    def state_dict(self) -> dict:
        """The data stream's state before the next batch to train (as in sync mode)."""
        return dict(self.trained_state)

    def load_state_dict(self, state: dict) -> None:
        self.rollouts.stream.load_state_dict(state)
        self.trained_state = self.rollouts.stream.state_dict()

    def _file(self, path: Path) -> Path:
        return Path(path) / f"rollouts-{distributed.rank()}.pt"

    def save_files(self, path: Path) -> None:
        """Write this rank's queued batches: those from the next one to train on up to the
        first that the newest version samples (which a resumed run samples again), with the
        stream's state after them."""
        end = max(self.first, self.next_index + self.cfg.max_staleness) if self.next_index > self.floor \
            else self.first
        while any(b not in self.held for b in range(self.next_index, end)):
            self._receive()
        queued = {b: self.held[b] for b in range(self.next_index, end)}
        torch.save({"first": self.next_index, "batches": pickle.dumps(queued),
                    "worker_state": queued[end - 1][1] if queued else self.trained_state,
                    "world_size": distributed.world_size()}, self._file(path))

    def load_files(self, path: Path) -> None:
        """Read this rank's queued batches back (a checkpoint of the same world size)."""
        file = self._file(path)
        if not file.exists():
            progress(f"resume: {path} holds no queued batches (a sync run's?): the worker starts sampling "
                     "from the saved weights")
            return
        saved = torch.load(file, weights_only=False)
        if saved["world_size"] != distributed.world_size():
            progress("resume: the queued batches were sampled at another world size: sampling again")
            return
        self.restored = {**saved, "batches": pickle.loads(saved["batches"])}

    # ----------------------------------------------------------- the worker's life
    @contextmanager
    def running(self, version: int):
        """The worker, from version `version` (the step the run starts at) until the block ends."""
        self._start(version)
        try:
            yield self
        finally:
            self._stop()

    def _start(self, version: int) -> None:
        cfg = self.cfg
        stream = self.rollouts.stream
        self.floor = self.first = self.next_index = version
        if self.restored is not None:
            if self.restored["first"] != version:
                raise RolloutWorkerError(f"the checkpoint's queued batches start at {self.restored['first']}, "
                                         f"not at step {version}")
            self.held = dict(self.restored["batches"])
            self.first = version + len(self.held)
            stream.load_state_dict(self.restored["worker_state"])
        weights = self.policy.sampler_weights()
        self.slots = WeightSlots.create(weights, cfg.max_staleness + 1)
        self.slots.write(version, weights)
        ctx = mp.get_context("spawn")
        self.inbox, self.outbox = ctx.Queue(), ctx.Queue()
        self.inbox.put(("version", version))
        spec = WorkerSpec(cfg=cfg, env_module=self.env_module, model_path=self.policy.source.path,
                          backend=_backend(cfg), tokenizer=self.policy.tokenizer, stream=stream,
                          threads=torch.get_num_threads(), rank=distributed.rank(), world=distributed.world_size(),
                          first_batch=self.first, last_batch=cfg.steps - 1 + cfg.max_staleness, floor=version,
                          draw=self.draw)
        self.process = ctx.Process(target=worker_main, args=(spec, self.slots, self.inbox, self.outbox),
                                   name=f"verirl-rollout-worker-{distributed.rank()}")
        self.process.start()

    def _stop(self) -> None:
        """Tell the worker to stop, drain what it still sends, and make sure it is gone."""
        process = self.process
        if process is None:
            return
        if process.is_alive():
            self.inbox.put(("stop",))
        deadline = time.monotonic() + STOP_GRACE_S
        while process.is_alive() and time.monotonic() < deadline:
            self._drain()   # a worker exits only once its queued messages are read
            process.join(0.05)
        if process.is_alive():
            process.kill()
        process.join()
        self._drain()
        for q in (self.inbox, self.outbox):
            q.cancel_join_thread()
            q.close()
        self.process = None

    def _drain(self) -> None:
        try:
            while True:
                self.outbox.get_nowait()
        except (queue.Empty, OSError, EOFError, ValueError):
            pass

    # ----------------------------------------------------------- the loop's calls
    def next_batch(self, step: int) -> Rollout:
        """The batch step `step` trains on (batch step - 1), as soon as the worker has it."""
        index = step - 1
        t0 = time.perf_counter()
        while index not in self.held:
            self._receive()
        self.waited = time.perf_counter() - t0
        batch, self.trained_state = self.held.pop(index)
        self.next_index = index + 1
        return batch

    def publish(self, step: int, batch: Rollout) -> dict:
        """Version `step` to the worker: the weights into their slot, then the message. The
        step's async metrics."""
        t0 = time.perf_counter()
        self.policy.sync_weights()   # fsdp: the full copy; the trainer's own sampler, for evaluations
        self.slots.write(step, self.policy.sampler_weights())
        self.inbox.put(("version", step))
        staleness = (step - 1 - batch.versions).float() if len(batch) else torch.zeros(1)
        return {"sync_s": time.perf_counter() - t0, "trainer_wait_s": self.waited,
                "staleness_mean": float(staleness.mean()), "staleness_max": float(staleness.max())}

    def _receive(self) -> None:
        """One message from the worker: a batch into `held`, or its failure raised here."""
        while True:
            try:
                message = self.outbox.get(timeout=POLL_S)
            except queue.Empty:
                if not self.process.is_alive():
                    raise RolloutWorkerError(f"{self._name()} died: {_exit_reason(self.process.exitcode)}") from None
                continue
            if message[0] == "batch":
                self.held[message[1]] = pickle.loads(message[2])
                return
            raise self._failure(message[1], message[2])

    def _failure(self, exc: BaseException, trace: str) -> BaseException:
        """The worker's error as the trainer raises it: bad input as itself (the CLI's one
        `error:` line, as in sync mode), anything else as a RolloutWorkerError naming the worker;
        its traceback goes to output_dir/rollout-worker-RANK.log."""
        from evals.config_cli import user_errors

        log = Path(self.cfg.output_dir) / f"rollout-worker-{distributed.rank()}.log"
        log.write_text(trace)
        if isinstance(exc, user_errors()):
            return exc
        return RolloutWorkerError(f"{self._name()} failed: {type(exc).__name__}: {exc} (traceback in {log})")

    def _name(self) -> str:
        where = f" of rank {distributed.rank()}" if distributed.world_size() > 1 else ""
        return f"rollout worker{where} (pid {self.process.pid})"


def _backend(cfg) -> str:
    from models.backends import resolve_backend

    return resolve_backend(cfg.generation_backend)


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exited with status {code} without a word"
