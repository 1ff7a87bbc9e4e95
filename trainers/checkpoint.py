"""Checkpoints of a training run: `output_dir/checkpoint-STEP/state.pt` (+ its config.yaml).

A checkpoint holds the trainable parameters, the optimizer, every RNG state, the step, the data
position and the elapsed time, plus any extra objects a trainer registers (PPO's critic and its
optimizer). Sampling seeds are derived from the step and the data position
(`trainers.config.derive_seed`), so a resumed run continues to the same result as an
uninterrupted one. The two newest checkpoints are kept.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from verifiers.options import dump_yaml

KEEP = 2


@dataclass
class Resumed:
    """What a loaded checkpoint hands back to the run, besides the weights it restored in place."""

    step: int
    data_position: int
    elapsed_s: float
    extra: dict            # name -> state_dict of objects registered with `RunContext.add_state`
    path: Path


def _step_of(path: Path) -> int:
    return int(path.name.split("-")[1])


def save(out: Path, cfg, step: int, model, optimizer, data_position: int, elapsed_s: float,
         extra: dict) -> Path:
    """Write `out/checkpoint-STEP/` and drop all but the KEEP newest; `extra` maps a name to an
    object with `state_dict()`."""
    path = out / f"checkpoint-{step}"
    path.mkdir(parents=True, exist_ok=True)
    trainable = {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}
    torch.save({"trainable": trainable, "optimizer": optimizer.state_dict(), "step": step,
                "data_position": data_position, "elapsed_s": elapsed_s,
                "rng": {"python": random.getstate(), "torch": torch.get_rng_state(),
                        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
                "extra": {name: obj.state_dict() for name, obj in extra.items()}},
               path / "state.pt")
    (path / "config.yaml").write_text(dump_yaml(cfg))
    for old in sorted(out.glob("checkpoint-*"), key=_step_of)[:-KEEP]:
        shutil.rmtree(old)
    return path


def load_latest(out: Path, model, optimizer) -> Resumed:
    """Restore the newest checkpoint's parameters, optimizer and RNG states in place."""
    found = sorted(out.glob("checkpoint-*/state.pt"), key=lambda p: _step_of(p.parent))
    if not found:
        raise FileNotFoundError(f"resume: no checkpoint-*/state.pt in {out}")
    state = torch.load(found[-1], weights_only=False)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state["trainable"].items():
            params[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    random.setstate(state["rng"]["python"])
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"]["cuda"] is not None:
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return Resumed(state["step"], state["data_position"], state["elapsed_s"], dict(state.get("extra", {})),
                   found[-1].parent)


def trim_metrics(path: Path, step: int) -> list[dict]:
    """Drop the lines of metrics.jsonl logged after `step` (they will be redone); the rest."""
    if not path.exists():
        return []
    lines = [ln for ln in path.read_text().splitlines() if json.loads(ln)["step"] <= step]
    path.write_text("".join(ln + "\n" for ln in lines))
    return [json.loads(ln) for ln in lines]
