"""The random generator of one training (micro-)step, shared by the trainer and the robust
rules so that neither imports the other."""

from __future__ import annotations

import torch


def step_generator(seed: int, step: int, micro: int, salt: int = 0) -> torch.Generator:
    """The generator of one (micro-)step: a pure function of the run's seed and position."""
    return torch.Generator().manual_seed(
        (seed * 1_000_003 + step * 9_973 + micro * 101 + salt) % (2**63)
    )
