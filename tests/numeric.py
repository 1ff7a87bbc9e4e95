"""Tolerant tensor comparison shared by the RL-math tests (hand-computed numbers, float32)."""

from __future__ import annotations

import torch


def close(actual, expected, atol=1e-5, rtol=1e-5):
    torch.testing.assert_close(torch.as_tensor(actual, dtype=torch.float32),
                               torch.as_tensor(expected, dtype=torch.float32), atol=atol, rtol=rtol)
