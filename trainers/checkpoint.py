"""Checkpoints of a training run: `output_dir/checkpoint-STEP/`, written with
`torch.distributed.checkpoint` (DCP) by every rank together.

A checkpoint holds, for each registered module (the policy, PPO's critic) with its optimizer,
the trainable parameters and the optimizer state, named by parameter (not by position), in
DCP's sharded format: under FSDP each rank writes its own shards, under ddp or one process the
replicated tensors once. Beside them: `meta.json` (step, data position, elapsed time, world
size), `rng-RANK.pt` (each rank's RNG states) and `config.yaml`. Sampling seeds are derived
from the step and the data position (`trainers.config.derive_seed`), so a resumed run continues
to the same result as an uninterrupted one at the same world size. At another world size DCP
reshards parameters and optimizer state, and the run continues from the same data position,
but ranks draw other random numbers (no RNG file of theirs), so it is not bit-exact. The two
newest checkpoints are kept.

`output_dir` must be on a filesystem every rank sees (a shared one across machines), as DCP
itself requires.

`Checkpoints` is the run's part that saves and resumes: it is built with every stateful part
of the run (the trained modules with their optimizers, the data stream, the clock, the metrics
log), so nothing can be registered after a resume has already happened.
"""

from __future__ import annotations

import json
import random
import shutil
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from evals.config_cli import dump_yaml
from models import distributed
from trainers.clock import RunClock
from trainers.config import derive_seed
from trainers.metrics_log import MetricsLog, progress

KEEP = 2


def _dcp():
    """DCP and its state-dict helpers, imported at the first save or load: importing them takes
    0.8 s, which `--help` and a refused configuration have no need to pay."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import state_dict

    return dcp, state_dict


def _options(**kw):
    """Frozen weights (a LoRA run's base model) are not saved: they are reloaded from the model path."""
    return _dcp()[1].StateDictOptions(ignore_frozen_params=True, **kw)


@dataclass
class Resumed:
    """What a loaded checkpoint hands back to the run, besides the state it restored in place."""

    step: int
    data: dict        # the data stream's `state_dict()`
    elapsed_s: float
    world_size: int   # the world size that wrote it
    path: Path


def _step_of(path: Path) -> int:
    return int(path.name.split("-")[1])


def _state(modules: dict) -> dict:
    """DCP's view of `modules` (name -> (module, optimizer)): per-parameter-name tensors."""
    sd = _dcp()[1]
    return {name: {"model": sd.get_model_state_dict(m, options=_options()),
                   "optim": sd.get_optimizer_state_dict(m, opt, options=_options())}
            for name, (m, opt) in modules.items()}


@contextmanager
def _one_process_is_intended():
    """Without a process group DCP warns on every save and load that it assumes one process:
    here that is the intent, not news."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled, unavailable or uninitialized")
        yield


def _rng_state() -> dict:
    return {"python": random.getstate(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def save(out: Path, cfg, step: int, modules: dict, data: dict, elapsed_s: float,
         files: Callable[[Path], None] | None = None) -> Path:
    """Write `out/checkpoint-STEP/` (every rank calls this) and drop all but the KEEP newest.
    `modules` maps a name to a (module, optimizer) pair; `data` is the data stream's state;
    `files(path)` writes this rank's files of state that is not JSON (an asynchronous run's
    queued batches) into the folder."""
    path = out / f"checkpoint-{step}"
    if distributed.is_main():
        shutil.rmtree(path, ignore_errors=True)  # a stale one from a run that did not reach here
        path.mkdir(parents=True)
    distributed.barrier()
    with _one_process_is_intended():
        _dcp()[0].save(_state(modules), checkpoint_id=path / "dcp")
    torch.save(_rng_state(), path / f"rng-{distributed.rank()}.pt")
    if files is not None:
        files(path)
    distributed.barrier()  # every shard and RNG file is written before meta.json marks it complete
    if distributed.is_main():
        (path / "config.yaml").write_text(dump_yaml(cfg))
        (path / "meta.json").write_text(json.dumps({"step": step, "data": data,
                                                    "elapsed_s": elapsed_s,
                                                    "world_size": distributed.world_size()}))
        for old in sorted(out.glob("checkpoint-*/meta.json"), key=lambda p: _step_of(p.parent))[:-KEEP]:
            shutil.rmtree(old.parent)
    distributed.barrier()
    return path


def latest(out: Path) -> Path:
    """The newest complete checkpoint folder in `out` (one with its meta.json)."""
    found = sorted(out.glob("checkpoint-*/meta.json"), key=lambda p: _step_of(p.parent))
    if not found:
        raise FileNotFoundError(f"resume: no checkpoint in {out} (a complete one has checkpoint-*/meta.json)")
    return found[-1].parent


def load_latest(out: Path, modules: dict, seed: int = 0) -> Resumed:
    """Restore the newest checkpoint's parameters, optimizer states and this rank's RNG states
    in place (every rank calls this). Under another world size than the writer's, ranks without
    an RNG file of theirs are seeded from (seed, rank, step)."""
    path = latest(out)
    meta = json.loads((path / "meta.json").read_text())
    restore(path, modules)
    rng = path / f"rng-{distributed.rank()}.pt"
    if meta["world_size"] == distributed.world_size() and rng.exists():
        r = torch.load(rng, weights_only=False)
        random.setstate(r["python"])
        torch.set_rng_state(r["torch"])
        if r["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(r["cuda"])
    else:  # no RNG state of this rank's: a seed of its own from the run seed, the step and the rank
        rank_seed = derive_seed(seed, "rank_rng", meta["step"] * distributed.world_size() + distributed.rank())
        random.seed(rank_seed)
        torch.manual_seed(rank_seed)
    data = meta["data"] if "data" in meta else {"position": meta["data_position"]}   # written before 2026-12-07
    return Resumed(meta["step"], data, meta["elapsed_s"], meta["world_size"], path)


def restore(path: Path, modules: dict) -> None:
    """Load the saved state of `modules` (name -> (module, optimizer)) from the checkpoint at
    `path` in place, resharded to this run's layout; other saved modules are not read."""
    dcp, sd = _dcp()
    state = _state(modules)
    with _one_process_is_intended():
        dcp.load(state, checkpoint_id=path / "dcp")
    for name, (m, opt) in modules.items():
        sd.set_model_state_dict(m, state[name]["model"], options=_options(strict=False))
        sd.set_optimizer_state_dict(m, opt, state[name]["optim"], options=_options())


def read(path: Path) -> dict:
    """A checkpoint's saved tensors as one plain nested dict, in one process (for inspection and
    tests): {name: {"model": {param: tensor}, "optim": {...}}}."""
    import tempfile

    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    with tempfile.TemporaryDirectory() as tmp:
        dcp_to_torch_save(Path(path) / "dcp", Path(tmp) / "state.pt")
        return torch.load(Path(tmp) / "state.pt", weights_only=False)


class Checkpoints:
    """Saves and resumes a run: the `modules` (name -> (module, optimizer)), the data `stream`
    (`state_dict`, JSON in meta.json; and its own files, when it has `save_files(path)` and
    `load_files(path)`: the queued batches of `trainers.async_rollout`), the `clock` (step,
    training time) and the metrics `log`."""

    def __init__(self, out: Path, cfg, modules: dict, stream, clock: RunClock, log: MetricsLog):
        self.out, self.cfg, self.modules = Path(out), cfg, dict(modules)
        self.stream, self.clock, self.log = stream, clock, log

    def save(self) -> Path:
        return save(self.out, self.cfg, self.clock.step, self.modules, self.stream.state_dict(), self.clock.elapsed(),
                    files=getattr(self.stream, "save_files", None))

    def save_if_due(self) -> None:
        every = self.cfg.checkpoint_every
        if every and self.clock.step % every == 0:
            self.save()

    def resume(self) -> Path:
        """Restore every part from the newest checkpoint in `out`, in place; its path."""
        resumed = load_latest(self.out, self.modules, self.cfg.seed)
        self.stream.load_state_dict(resumed.data)
        if hasattr(self.stream, "load_files"):
            self.stream.load_files(resumed.path)
        self.clock.resume(resumed.step, resumed.elapsed_s)
        self.log.resume_at(resumed.step)
        world = distributed.world_size()
        if resumed.world_size != world:
            progress(f"resuming a {resumed.world_size}-process checkpoint on {world}: parameters and optimizer "
                     f"state are resharded, the data position kept; the random draws differ (not bit-exact)")
        progress(f"resumed from {resumed.path} at step {resumed.step}")
        return resumed.path
