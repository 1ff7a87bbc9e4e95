"""The one place that turns the model a user names into something loaders can read.

A user names a model three ways: `tiny` (the built-in character-level model, built and
warm-started on first use, see `models/tiny.py`), a hub id (`Qwen/Qwen2.5-0.5B`), or a local
folder. `resolve_model` gives the path transformers and vLLM load, and keeps the name the user
gave for titles and logs: a cache path such as `.../tiny-llama-22b5ec5e40f5-warm` means nothing
to a reader.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

TINY = "tiny"


@dataclass(frozen=True)
class ModelRef:
    """A model as the user named it (`name`) and as loaders read it (`path`)."""

    name: str
    path: str

    @property
    def label(self) -> str:
        """Short name for titles: `tiny`, a hub id, or a local folder's own name."""
        local = Path(self.name)
        return local.name if self.name != TINY and local.is_dir() else self.name


def resolve_model(name: str, *, warm_start: bool = True, log=None, env: str | None = None) -> ModelRef:
    """`tiny` -> the cached tiny model (warm-started unless `warm_start=False`) for environment
    `env` (`models.tiny.tiny_configs`); anything else is a local folder or hub id that
    transformers loads as it is."""
    if name != TINY:
        return ModelRef(name, name)
    from models.tiny import ensure_tiny_model, tiny_configs

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    return ModelRef(name, ensure_tiny_model(warm_start, *tiny_configs(env), log=log))


def is_tiny(name: str) -> bool:
    return name == TINY
