"""Data-parallel training on `torch.distributed`: what `--parallelism ddp|fsdp` does to the
modules and gradients of a run launched with torchrun on more than one process.

Each rank draws its own whole groups, generates and verifies them, and computes their group
advantages locally (`trainers/rollout.py`). What needs every rank goes through `DataParallel`,
the part of a run that the loops call for it: the gradients, the step's global rows and tokens
(`core.GlobalBatch`, which the loss aggregation normalises by), the batch std of
`scale_rewards=batch`, dynamic sampling's quota, the logged metrics. Its collectives time
themselves (`comm_s` in the metrics).

`ddp`: every rank holds the whole model; after a step's last backward the gradients are
averaged over ranks with bucketed `all_reduce`s, which is what `DistributedDataParallel` does
under `no_sync` gradient accumulation. We do it without DDP's wrapper on purpose: our forward
passes call the model more than once before one backward (a group's shared prompt, then its
completions; PPO's value head on the policy trunk), and under dynamic sampling ranks can hold
different numbers of micro-batches. One reduction per optimizer step, after all backwards, is
correct in all three cases, where DDP's per-backward hooks would need each rank to run the same
forwards.

`fsdp`: FSDP2 (`torch.distributed.fsdp.fully_shard`) shards each transformer block and the
root: parameters, gradients and Adam state are split across ranks and gathered per block for
each forward; gradients are reduce-scattered (averaged) by FSDP itself. With `bf16` on GPU the
master weights stay float32 and blocks compute in bfloat16 (`MixedPrecisionPolicy`). Every
rank must run the same forwards, so dynamic sampling (ranks keeping different numbers of
groups) is refused with fsdp. Generation reads a full, unsharded copy of the policy that
`full_state_dict` refills after each update ("gather the full parameters"): each rank then
samples on its own, as a colocated vLLM engine would.

Both: a micro-batch's loss is its share of the step's loss on all ranks, times the number of
ranks (`core.aggregate_loss`), so the average over ranks is the 1-process loss over the global
batch (tests/trainers/test_distributed.py checks parameters after one update against 1 process, within
float rounding).
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from models import distributed
from trainers import core

STRATEGIES = ("ddp", "fsdp")
BUCKET_BYTES = 25 * 2**20  # DDP's default bucket size


class CommTimer:
    """Seconds spent in collectives (gradient averaging, metric reductions) since the last `take`."""

    def __init__(self):
        self.seconds = 0.0

    def __enter__(self):
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds += time.perf_counter() - self._t0

    def take(self) -> float:
        seconds, self.seconds = self.seconds, 0.0
        return seconds


def block_classes(module: nn.Module) -> set[str]:
    """Class names of the transformer blocks inside `module` (a causal LM, a peft model around
    one, PPO's critic with its trunk): transformers lists them in each model's
    `_no_split_modules` (the units that must not be split across devices)."""
    return {name for m in module.modules() for name in (getattr(m, "_no_split_modules", None) or [])}


def shard_module(module: nn.Module, *, bf16: bool = False) -> nn.Module:
    """FSDP2 in place: each transformer block, then the root (which keeps the embeddings, the
    final norm and the head). Returns `module`."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    kw = {"mp_policy": MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)} if bf16 else {}
    names = block_classes(module)
    for sub in list(module.modules()):
        if type(sub).__name__ in names:
            fully_shard(sub, **kw)
    fully_shard(module, **kw)
    return module


def broadcast_parameters(module: nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank (as DDP does at construction), so that a
    model initialised at random, or loaded in different precision, starts the same everywhere."""
    if not distributed.active():
        return
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=0)


def average_gradients(params: list[nn.Parameter]) -> None:
    """Average the gradients of `params` over ranks in place (ddp), in buckets of BUCKET_BYTES.
    A parameter without a gradient on this rank (no rows this step) contributes zeros, so every
    rank runs the same collectives and ends with the same gradient."""
    if not distributed.active():
        return
    world = distributed.world_size()
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    bucket, size = [], 0
    for p in params:
        bucket.append(p.grad)
        size += p.grad.numel() * p.grad.element_size()
        if size >= BUCKET_BYTES or p is params[-1]:
            _reduce_bucket(bucket, world)
            bucket, size = [], 0


def _reduce_bucket(grads: list[torch.Tensor], world: int) -> None:
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for g in grads:
        by_dtype.setdefault(g.dtype, []).append(g)
    for same in by_dtype.values():
        flat = torch.cat([g.reshape(-1) for g in same])
        dist.all_reduce(flat)
        flat /= world
        offset = 0
        for g in same:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()


def full_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """The whole (unsharded) state of a sharded module, on every rank: one all-gather per
    parameter, so peak memory is one full copy per rank."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True))


def grad_norm(total) -> float:
    """A float from `clip_grad_norm_`'s result, which is a DTensor when parameters are sharded."""
    return float(total.full_tensor() if hasattr(total, "full_tensor") else total)


# How a metric of several ranks becomes the step's one value (the rest: a mean weighted by the
# groups each rank trained on).
_SUMMED = {"groups", "tokens_per_s", "verifier_faults", "verifier_verdicts"}   # totals and throughputs add up
_MAXED_SUFFIXES = ("_max", "_s", "grad_norm", "draws")   # worst case; timings: the slowest rank sets the pace


def reduce_metrics(per_rank: list[dict]) -> dict:
    """One step's metrics from every rank's dict: sums for totals, maxima for maxima, timings
    and gradient norms (identical on all ranks once gradients are averaged), and means weighted
    by each rank's groups for the rest. `logprob_gap_max` is thus the worst rank's, so a weight
    sync broken on any rank shows."""
    weights = [float(m.get("groups", 0)) for m in per_rank]
    if not sum(weights):
        weights = [1.0] * len(per_rank)
    out = {}
    for key in dict.fromkeys(k for m in per_rank for k in m):
        have = [(m[key], w) for m, w in zip(per_rank, weights) if isinstance(m.get(key), (int, float))]
        if not have:  # not a number (the first verifier fault): the first rank's that has one
            out[key] = next((m[key] for m in per_rank if m.get(key) is not None), None)
        elif key in _SUMMED:
            out[key] = sum(v for v, _ in have)
        elif key == "verifier_failure_rate":  # over all ranks' verdicts, whatever their groups
            out[key] = sum(m.get("verifier_faults", 0) for m in per_rank) / max(
                sum(m.get("verifier_verdicts", 0) for m in per_rank), 1)
        elif key.endswith(_MAXED_SUFFIXES):
            out[key] = max(v for v, _ in have)
        else:
            total = sum(w for _, w in have)
            out[key] = sum(v * w for v, w in have) / total if total else sum(v for v, _ in have) / len(have)
    return out


class DataParallel:
    """The run's data-parallel group, as the training loop and the other parts use it: the world
    size and this rank, the strategy (`ddp` or `fsdp`) applied to trained modules and their
    gradients, and the few collectives a step needs, each timed. On one process every
    collective is a no-op that returns its input."""

    def __init__(self, strategy: str = "ddp", *, bf16: bool = False):
        if strategy not in STRATEGIES:
            raise ValueError(f"parallelism {strategy!r} is not one of {STRATEGIES}")
        self.strategy, self.bf16 = strategy, bf16
        self.world, self.rank = distributed.world_size(), distributed.rank()
        self._comm = CommTimer()

    @classmethod
    def join(cls, strategy: str = "ddp", *, bf16: bool = False) -> "DataParallel":
        """Join the launcher's process group (a no-op without torchrun) and describe it."""
        distributed.init()
        return cls(strategy, bf16=bf16)

    @property
    def sharded(self) -> bool:
        """Whether trained modules are sharded (fsdp on several processes)."""
        return self.world > 1 and self.strategy == "fsdp"

    def distribute(self, module: nn.Module) -> nn.Module:
        """Make a trained module (PPO's critic) data parallel as the policy is: sharded (fsdp) or
        with rank 0's weights on every rank (ddp)."""
        if self.sharded:
            return shard_module(module, bf16=self.bf16)
        broadcast_parameters(module)
        return module

    def reduce_gradients(self, *modules: nn.Module) -> None:
        """ddp on several processes: average the trainable gradients of `modules` over ranks,
        once per optimizer step, after its last backward; fsdp reduces its own in backward."""
        if self.world > 1 and self.strategy == "ddp":
            with self._comm:
                average_gradients([p for m in modules for p in m.parameters() if p.requires_grad])

    def full_state_dict(self, module: nn.Module) -> dict[str, Tensor]:
        """The whole state of a sharded module, on every rank (`full_state_dict`)."""
        with self._comm:
            return full_state_dict(module)

    def all_reduce(self, values: list[float], op: str = "sum") -> list[float]:
        with self._comm:
            return distributed.all_reduce(values, op)

    def all_gather(self, obj: Any) -> list:
        with self._comm:
            return distributed.all_gather_objects(obj)

    def global_batch(self, mask: Tensor, rewards: Tensor | None = None,
                     valid: Tensor | None = None) -> core.GlobalBatch:
        """The optimizer step's batch on all ranks, from this rank's share of it (`mask` (B, T),
        its rewards (B,) when the batch std is needed, `valid` (B,) the rows that count; None:
        all): one collective, none on one process."""
        valid = torch.ones(mask.shape[0], dtype=torch.bool) if valid is None else valid.bool()
        local = [float(valid.sum()), float(mask.sum())]
        if rewards is not None:
            rewards = rewards[valid.to(rewards.device)].float()
            local += [float(rewards.sum()), float((rewards ** 2).sum())]
        total = self.all_reduce(local)
        reward_std = core.sample_std_from_sums(total[0], total[2], total[3]) \
            if rewards is not None and self.world > 1 else None
        return core.GlobalBatch(rows=total[0], tokens=total[1], dp_size=self.world, reward_std=reward_std)

    def step_metrics(self, metrics: dict) -> dict:
        """One step's metrics of all ranks as one dict (`reduce_metrics`), with the seconds spent
        in collectives since the last step (`comm_s`); this rank's own on one process."""
        if self.world == 1:
            return metrics
        metrics = reduce_metrics(self.all_gather(metrics))
        metrics["comm_s"] = self._comm.take()
        return metrics
