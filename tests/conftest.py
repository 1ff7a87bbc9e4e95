"""Shared fixtures: the project's tiny model, built (untrained) once per test session, and a
hub switched off for the tests of hub-backed loaders.

The tests are grouped by the package they test (`tests/verifiers/`, `tests/trainers/`, ...);
the repository-wide checks (layers, README, set-up) stay here. The helpers that several groups
share (`procs.py`, `numeric.py`, the rank scripts, the tables) stay in `tests/` too, which is
put on the import path for every group."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))   # the shared helpers, for tests in the groups
# One torch thread per test process, and in the runs the tests start (they inherit it): the test
# models are tiny, and `make test` already runs one test per core, so torch's own threads would
# only contend for the same cores. A test of thread counts sets its own.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> str:
    """Path of the untrained tiny character-level Llama, in a cache private to the session."""
    from models.tiny import ensure_tiny_model

    cache = tmp_path_factory.mktemp("verirl-cache")
    old = os.environ.get("VERIRL_CACHE")
    os.environ["VERIRL_CACHE"] = str(cache)
    try:
        return ensure_tiny_model(warm_start=False)
    finally:
        if old is None:
            os.environ.pop("VERIRL_CACHE")
        else:
            os.environ["VERIRL_CACHE"] = old


@pytest.fixture
def offline(monkeypatch):
    """Fail at once instead of retrying the network (as HF_HUB_OFFLINE=1 does at start-up)."""
    import datasets
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
