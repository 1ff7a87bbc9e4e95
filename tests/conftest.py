"""Shared fixtures: the project's tiny model, built (untrained) once per test session."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> str:
    """Path of the untrained tiny character-level Llama, in a cache private to the session."""
    from trainers.tiny_model import ensure_tiny_model

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
