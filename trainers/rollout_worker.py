"""The rollout worker of asynchronous rollouts (`--rollout async`, `trainers.async_rollout`):
the process that samples and verifies the next batches while the trainer updates, and the
schedule it samples on.

**The schedule.** Version v is the policy after v optimizer steps; step s trains on batch s - 1.
With `max_staleness` N, batch b is sampled with version `max(floor, b - N)` (`behaviour_version`;
`floor` is the version the run started or resumed from), that version and no other, however
fast either side runs. So a run is reproducible for a seed, timings aside, and N = 1 overlaps the
generation of batch b + 1 with the update on batch b. The worker runs at most N + 1 batches ahead
of the trainer: it cannot sample batch b before version b - N exists.

**The worker** (`worker_main`) runs in a process of its own (spawned: it imports torch afresh,
and CUDA and vLLM need that) with its own copy of the sampler: the transformers sampler on a
model of its own, with its own torch threads, or a vLLM engine. It holds its own `RolloutSource`
on a copy of the trainer's task stream (any class with `take`, `state_dict`, `load_state_dict`),
rebuilds the environment (importing the module that registered it), and for each batch waits for
its version, loads the weights between batches, samples, verifies (in process or on
`--verifier-url` servers) and queues the whole batch, pickled, with the stream's state after it.
Rows carry their version (`Rollout.versions`) and the sampler's log-probs (`gen_logprobs`), the
behaviour policy of the off-policy correction (`trainers.core_offpolicy`). Under torchrun each
rank has its own worker, which samples the rank's share of the prompts; GRPO's dynamic sampling
runs in the worker, filling the rank's share of the quota (`RankLocal`).

A worker that raises sends its error to the trainer and exits; it ignores Ctrl-C (the trainer
finishes its step, saves, and stops it), dies with the trainer (`PR_SET_PDEATHSIG`), and notices
a trainer that is gone when it next waits.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import os
import pickle
import queue
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import torch

from models import distributed
from trainers.rollout import Rollout, RolloutSource
from trainers.weights_channel import WeightSlots

POLL_S = 0.5          # how often a waiting side checks that the other is alive


def behaviour_version(batch: int, staleness: int, floor: int = 0) -> int:
    """The policy version that samples batch `batch` (0-based): `batch - staleness`, but never
    below `floor`, the version the run started or resumed from."""
    return max(floor, batch - staleness)


class RolloutWorkerError(RuntimeError):
    """The rollout worker failed or died: the run cannot go on."""


class RankLocal:
    """The collectives `trainers.grpo.draw_batch` asks for, answered by one rank's worker alone,
    as if every rank kept what this one kept: dynamic sampling then fills this rank's share of
    the quota (prompts_per_step / world groups) without a process group. Ranks may then draw
    different numbers of rounds; each rank's stream state is checkpointed with its batches."""

    def __init__(self, rank: int, world: int):
        self.rank, self.world = rank, world

    def all_reduce(self, values: list[float], op: str = "sum") -> list[float]:
        return [v * self.world for v in values] if op == "sum" else list(values)

    def all_gather(self, obj: Any) -> list:
        return [obj] * self.world


@dataclass
class WorkerSpec:
    """What a rollout worker is started with (pickled into the spawned process)."""

    cfg: Any                    # the run's config (GRPOConfig, PPOConfig)
    env_module: str             # the module whose import registers the environment
    model_path: str             # what the sampler loads before the first version's weights
    backend: str                # "hf" or "vllm"
    tokenizer: Any              # the trainer's tokenizer (pad id, decoding), so rows collate alike
    stream: Any                 # the trainer's task stream, in the state to draw from
    threads: int                # torch threads (0: torch's default)
    rank: int
    world: int
    first_batch: int            # the batches to sample: first_batch .. last_batch
    last_batch: int
    floor: int                  # the version it starts from (see `behaviour_version`)
    draw: Callable | None       # `draw(cfg, rollouts, dp)` (GRPO's dynamic sampling) or None


# --------------------------------------------------------------------------- the worker process


def worker_main(spec: WorkerSpec, slots: WeightSlots, inbox, outbox) -> None:
    """The rollout worker's process: sample the batches of `spec`, or report why it cannot."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the trainer's to handle: it stops us
    _die_with_parent()
    gc.freeze()  # torch, transformers and the trainer's modules are loaded: see trainers/__init__.py
    worker = None
    try:
        worker = RolloutWorker(spec, slots, inbox, outbox)
        worker.run()
    except BaseException as exc:  # noqa: BLE001 - every failure is reported to the trainer, then we exit
        outbox.put(("error", _portable(exc), traceback.format_exc()))
        sys.exit(1)
    finally:
        if worker is not None:
            worker.sampler.close()


def _die_with_parent() -> None:
    """Ask Linux to kill this process when the trainer dies (even by SIGKILL)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)   # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass   # not Linux: the worker still notices a dead parent when it next waits (`_orphaned`)


def _portable(exc: BaseException) -> BaseException:
    """`exc` if it survives pickling (the trainer re-raises bad-input errors as they are), else
    a RuntimeError that names its type and message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - anything unpicklable is described instead
        return RuntimeError(f"{type(exc).__name__}: {exc}")


class RolloutWorker:
    """The loop of `worker_main`: wait for a version, load it, draw a batch, queue it."""

    def __init__(self, spec: WorkerSpec, slots: WeightSlots, inbox, outbox):
        from transformers.utils import logging as transformers_logging

        import envs
        from models.backends import make_sampler

        transformers_logging.disable_progress_bar()   # the trainer's own loading already showed one
        self.spec, self.slots, self.inbox, self.outbox = spec, slots, inbox, outbox
        self.parent = os.getppid()
        cfg = spec.cfg
        if spec.threads:
            torch.set_num_threads(spec.threads)
        if torch.cuda.is_available():
            torch.cuda.set_device(distributed.local_rank())
        if spec.env_module != "__main__":   # spawn already re-ran a main script, registrations and all
            importlib.import_module(spec.env_module)
        env = envs.get_env(cfg.env, **cfg.env_kwargs())
        self.sampler = make_sampler(spec.model_path, spec.backend, tokenizer=spec.tokenizer,
                                    dtype="bfloat16" if cfg.bf16 else "float32", seed=cfg.seed, verbose=cfg.verbose,
                                    logprobs=True)
        self.rollouts = RolloutSource(cfg, env, self.sampler, spec.tokenizer, spec.stream, rank=spec.rank,
                                      world=spec.world)
        self.latest, self.loaded = -1, None

    def run(self) -> None:
        spec = self.spec
        for index in range(spec.first_batch, spec.last_batch + 1):
            version = behaviour_version(index, spec.cfg.max_staleness, spec.floor)
            t0 = time.perf_counter()
            if not self._wait_for(version):
                return
            waited = time.perf_counter() - t0
            load_s = self._load(version)
            batch = self._draw()
            batch.versions = torch.full((len(batch),), version, dtype=torch.long)
            batch.timings.update(worker_wait_s=waited, worker_load_s=load_s)
            self.outbox.put(("batch", index, pickle.dumps((batch, self.rollouts.stream.state_dict()))))
        self._wait_for(None)   # every batch is queued: wait to be stopped

    def _draw(self) -> Rollout:
        spec, cfg = self.spec, self.spec.cfg
        if spec.draw is None:
            return self.rollouts.draw(cfg.prompts_per_step)
        return spec.draw(cfg, self.rollouts, RankLocal(spec.rank, spec.world))

    def _wait_for(self, version: int | None) -> bool:
        """Read the trainer's messages until `version` is published (None: until stopped);
        False once told to stop."""
        while version is None or self.latest < version:
            try:
                message = self.inbox.get(timeout=POLL_S)
            except queue.Empty:
                if self._orphaned():
                    raise RolloutWorkerError("the trainer is gone") from None
                continue
            if message[0] == "stop":
                return False
            _, self.latest = message
        return True

    def _orphaned(self) -> bool:
        return os.getppid() != self.parent

    def _load(self, version: int) -> float:
        """Load `version`'s weights into the sampler, unless it has them; seconds."""
        if version == self.loaded:
            return 0.0
        t0 = time.perf_counter()
        self.sampler.load_weights(self.slots.read(version))
        self.loaded = version
        return time.perf_counter() - t0
