"""A run interrupted mid-way, made from a finished one: resume tests compare a straight run with
the same run resumed, and need not train the first steps twice to get there."""

from __future__ import annotations

import shutil
from pathlib import Path


def interrupted_copy(straight: Path, out: Path, step: int) -> Path:
    """`out` as `straight` would have left it had it been killed while writing its last
    checkpoint: its checkpoint after `step` and every line it logged, also those after `step`
    (the resume drops and redoes them). The other files (final model, report, evaluations)
    were not written yet; the resumed run writes its own."""
    out.mkdir(parents=True)
    shutil.copytree(straight / f"checkpoint-{step}", out / f"checkpoint-{step}")
    shutil.copy2(straight / "metrics.jsonl", out / "metrics.jsonl")
    return out
