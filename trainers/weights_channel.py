"""Versioned weights in shared memory: how the trainer hands each new policy to an asynchronous
rollout worker (`trainers.async_rollout`) without pickling a model per step.

`WeightSlots` holds `slots` copies of the sampler's weights (checkpoint names, LoRA merged in:
`Policy.sampler_weights()`) in CPU shared memory, one flat buffer per dtype and slot, so a
worker process started with it maps the same pages and no file descriptor is spent per tensor.
Version v lives in slot `v % slots`. The trainer writes version v there after its v-th
optimizer step (`write`) and then tells the worker; the worker reads the slot (`read`: views,
no copy) into its own sampler between batches.

Why `max_staleness + 1` slots and no lock: under the schedule "batch b is sampled with version
b - N", writing version u overwrites version u - N - 1, whose last batch (u - 1) the trainer
already holds, since it has just trained on it. So no version is overwritten while a worker may
still read it, and each side only ever waits for the other's message.

On a GPU the trainer copies its weights to host memory (one device-to-host copy per step) and
the worker copies them back to its device; `write` returns the seconds the copy took.
"""

from __future__ import annotations

import time
from typing import Iterable

import torch
import torch.multiprocessing  # noqa: F401 - registers the reductions that share tensors with a spawned child
from torch import Tensor


class WeightSlots:
    """`slots` copies of one model's named weights in shared CPU memory."""

    def __init__(self, layout: list[tuple[str, torch.Size, torch.dtype, int]],
                 buffers: list[dict[torch.dtype, Tensor]]):
        self.layout, self.buffers = layout, buffers

    @classmethod
    def create(cls, named_tensors: Iterable[tuple[str, Tensor]], slots: int) -> "WeightSlots":
        """Room for `slots` versions of tensors shaped and typed as `named_tensors`."""
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        layout, sizes = [], {}
        for name, tensor in named_tensors:
            offset = sizes.get(tensor.dtype, 0)
            layout.append((name, tensor.shape, tensor.dtype, offset))
            sizes[tensor.dtype] = offset + tensor.numel()
        buffers = [{dtype: torch.empty(size, dtype=dtype).share_memory_() for dtype, size in sizes.items()}
                   for _ in range(slots)]
        return cls(layout, buffers)

    @property
    def slots(self) -> int:
        return len(self.buffers)

    def nbytes(self) -> int:
        """Shared memory held, all slots together."""
        return sum(b.numel() * b.element_size() for slot in self.buffers for b in slot.values())

    def read(self, version: int) -> list[tuple[str, Tensor]]:
        """Version `version`'s tensors (views into its slot: copy them before the slot is reused)."""
        slot = self.buffers[version % self.slots]
        return [(name, slot[dtype][offset:offset + shape.numel()].view(shape))
                for name, shape, dtype, offset in self.layout]

    @torch.no_grad()
    def write(self, version: int, named_tensors: Iterable[tuple[str, Tensor]]) -> float:
        """Copy `named_tensors` (the same names, shapes and dtypes as at creation) into version
        `version`'s slot; the seconds it took."""
        t0 = time.perf_counter()
        views = dict(self.read(version))
        written = 0
        for name, tensor in named_tensors:
            if name not in views or views[name].shape != tensor.shape:
                raise ValueError(f"weight {name!r} {tuple(tensor.shape)} is not in the slots' layout")
            views[name].copy_(tensor.detach())
            written += 1
        if written != len(views):
            raise ValueError(f"{len(views) - written} of the slots' {len(views)} weights were not given")
        return time.perf_counter() - t0
