"""The process group of a data-parallel run, and the few collectives the trainers and the
evaluation use: PyTorch's own `torch.distributed`, set up from the launcher's environment.

Launchers: `torchrun`, `accelerate launch` (which starts torchrun's agent) and `srun torchrun`
on SLURM all set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT. Without them a
command runs as one process and every function here is a cheap no-op (rank 0 of 1), so the
single-process code path is the same code.

Backends: NCCL when the process has a CUDA device (one per LOCAL_RANK), gloo on CPU; the CPU
tests run 2 processes on gloo. Object collectives (`gather_objects`, `broadcast_object`) pickle
through the default group: they carry small things (metric dicts, per-task counts), never
tensors of a model.

Failure: torchrun's agent ends every worker when one exits with an error, so a bad option seen
by one rank stops the whole run instead of leaving the others in a collective. The group's
`timeout` bounds any wait that no launcher ends (a worker killed by hand under plain `srun`).
"""

from __future__ import annotations

import os
import pickle
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

# A collective waits at most this long for its peers: long enough for one rank to generate a
# batch or evaluate while the others already wait, short enough that a stuck run ends.
DEFAULT_TIMEOUT_MIN = 30


def launched_world_size() -> int:
    """The number of processes the launcher started (WORLD_SIZE; 1 without a launcher), known
    before the group is joined, so configs can be checked against it first."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched() -> bool:
    """Whether a launcher started this process as one of several (WORLD_SIZE > 1)."""
    return launched_world_size() > 1


def init(timeout_min: float = DEFAULT_TIMEOUT_MIN) -> bool:
    """Join the launcher's process group (once); True when this process is one of several.
    Sets this process's CUDA device to LOCAL_RANK first, as NCCL requires."""
    if not launched():
        return False
    if dist.is_initialized():
        return True
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank())
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(minutes=timeout_min),
                            device_id=torch.device("cuda", local_rank()) if cuda else None)
    return True


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank; before the group is joined, the launcher's RANK."""
    if active():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0")) if launched() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """Rank 0: the one process that logs, plots and writes reports."""
    return rank() == 0


def device() -> torch.device:
    """This process's device: its own GPU (LOCAL_RANK) on a CUDA machine, else the CPU."""
    return torch.device("cuda", local_rank()) if torch.cuda.is_available() else torch.device("cpu")


def rank_share_bounds(n: int, rank_: int | None = None, world: int | None = None) -> tuple[int, int]:
    """[start, end) of this rank's contiguous share of n items; shares differ by at most one,
    the first `n % world` ranks taking the larger."""
    r = rank() if rank_ is None else rank_
    w = world_size() if world is None else world
    base, extra = divmod(n, w)
    start = r * base + min(r, extra)
    return start, start + base + (r < extra)


def rank_share(items: list, rank_: int | None = None, world: int | None = None) -> list:
    """This rank's contiguous share of `items` (see `rank_share_bounds`)."""
    start, end = rank_share_bounds(len(items), rank_, world)
    return items[start:end]


def _group_device() -> torch.device:
    """Where tensors of a collective must live: the GPU under NCCL, the CPU under gloo."""
    return device() if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce(values: list[float], op: str = "sum") -> list[float]:
    """Element-wise sum (or max, min) of `values` over ranks, as float64; one collective."""
    if not active():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=_group_device())
    dist.all_reduce(t, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}[op])
    return t.tolist()


def all_gather_objects(obj: Any) -> list:
    """Every rank's `obj`, in rank order, on every rank."""
    if not active():
        return [obj]
    out: list = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def gather_objects(obj: Any) -> list | None:
    """Every rank's `obj` in rank order on rank 0; None on the others."""
    if not active():
        return [obj]
    out = [None] * world_size() if is_main() else None
    dist.gather_object(obj, out, dst=0)  # under NCCL this uses the device `init` set
    return out


def broadcast_object(obj: Any) -> Any:
    """Rank 0's `obj` on every rank (the others pass anything, e.g. None)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextmanager
def main_first():
    """Rank 0 runs the block first, the others after it (e.g. building a cache they then read);
    an error in rank 0's block is raised on every rank (`raise_if_any_failed`)."""
    if not is_main():
        raise_if_any_failed(None)  # waits for rank 0's outcome
        yield
        return
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - any error of rank 0 must reach every rank
        raise_if_any_failed(exc)  # the others, waiting above, raise it too; this re-raises it
    raise_if_any_failed(None)


def on_main(fn, default=None):
    """`fn()` run on rank 0 alone (the others get `default`); an error there is raised on every
    rank, so none walks on into a collective rank 0 will not join."""
    result, error = default, None
    if is_main():
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - raised again, on every rank, just below
            error = exc
    raise_if_any_failed(error)
    return result


class PeerError(RuntimeError):
    """Another rank failed (`raise_if_any_failed`): names the rank and its error."""


def raise_if_any_failed(error: BaseException | None) -> None:
    """After work that can fail on some ranks only: raise on every rank when any failed, so that
    no rank walks on into a collective that a failed peer will never join (the group's timeout,
    not the error, would end it). The failed rank re-raises its own `error`; the others raise a
    copy of the first failed rank's error (its type and message, so that callers handle it
    alike on every rank) from a `PeerError` naming that rank, or the `PeerError` alone when the
    error cannot be pickled. One small all-gather; on one process, raises `error` if any."""
    if not active():
        if error is not None:
            raise error
        return
    mine = None if error is None else (rank(), _portable(error), f"{type(error).__name__}: {error}")
    failed = [entry for entry in all_gather_objects(mine) if entry is not None]
    if error is not None:
        raise error
    if failed:
        failed_rank, blob, text = failed[0]
        peer = PeerError(f"rank {failed_rank} failed: {text}")
        if blob is None:
            raise peer
        raise pickle.loads(blob) from peer


def _portable(error: BaseException) -> bytes | None:
    """The pickled error when it also unpickles (an exception whose __init__ takes other
    arguments than its message does not), else None."""
    try:
        blob = pickle.dumps(error)
        pickle.loads(blob)
    except Exception:  # noqa: BLE001 - whatever fails the round trip, the error is not portable
        return None
    return blob


def barrier() -> None:
    if active():
        dist.barrier()


def close() -> None:
    """Leave the process group (at the end of a command; a no-op on one process)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()

