"""Small building blocks shared by several test modules (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import torch
from torch import nn


class Probe(nn.Module):
    """Identity that records whether it ran in training mode (to check that code restores a model's mode)."""

    def __init__(self):
        super().__init__()
        self.seen: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(self.training)
        return x
