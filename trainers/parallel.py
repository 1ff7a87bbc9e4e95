"""Data-parallel training on `torch.distributed`: what `--parallelism ddp|fsdp` does to the
modules and gradients of a run launched with torchrun on more than one process.

Each rank draws its own whole groups, generates and verifies them, and computes their group
advantages locally (`trainers/run.py`). What needs every rank is reduced here or in the loops:
the gradients, dapo's global token count, the batch std of `scale_rewards=batch`, dynamic
sampling's quota, the logged metrics.

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

Both: the loss of a micro-batch is weighted `rows * world / global_rows`, so the average over
ranks is the 1-process loss over the global batch (tests/test_distributed.py checks parameters
after one update against 1 process, within float rounding).
"""

from __future__ import annotations

import time

import torch
import torch.distributed as dist
from torch import nn

from models import distributed

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


def shard(module: nn.Module, *, bf16: bool = False) -> nn.Module:
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
_SUMMED = {"groups", "tokens_per_s"}                     # totals and throughputs add up
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
        if not have:
            out[key] = per_rank[0].get(key)
        elif key in _SUMMED:
            out[key] = sum(v for v, _ in have)
        elif key.endswith(_MAXED_SUFFIXES):
            out[key] = max(v for v, _ in have)
        else:
            total = sum(w for _, w in have)
            out[key] = sum(v * w for v, w in have) / total if total else sum(v for v, _ in have) / len(have)
    return out
