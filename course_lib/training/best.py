"""Robust overfitting (Rice, Wong and Kolter 2020): keep the epoch with the best held-out robust accuracy.

Adversarially trained networks overfit: past the first learning-rate decay their robust test accuracy falls while the
training loss keeps improving, so the published recipes report the checkpoint of the best epoch on held-out images
("early stopping"). :class:`KeepBest` wraps a training monitor (``monitor(model) -> dict``, run by the loop after
every epoch in eval mode, on images disjoint from the evaluation images): whenever the record's ``key`` (e.g.
``"pgd"``) beats every earlier epoch it copies the model's state; :meth:`KeepBest.restore` loads the best state back
after training and returns its epoch (1-based), which the model cache records. Ties keep the earlier epoch.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

Monitor = Callable[[nn.Module], dict]


class KeepBest:
    """``monitor`` that also remembers the model's state at the epoch where ``record[key]`` was highest."""

    def __init__(self, monitor: Monitor, key: str):
        if not callable(monitor):
            raise TypeError(f"monitor must be callable, got {type(monitor).__name__}")
        self.monitor, self.key = monitor, key
        self.epoch, self.best, self.calls = 0, -float("inf"), 0
        self.state: dict[str, torch.Tensor] | None = None

    def __call__(self, model: nn.Module) -> dict:
        record = self.monitor(model)
        if self.key not in record:
            raise KeyError(f"the monitor records {sorted(record)}, not {self.key!r}")
        self.calls += 1
        if record[self.key] > self.best:
            self.best, self.epoch = float(record[self.key]), self.calls
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return record

    def restore(self, model: nn.Module) -> int:
        """Load the best epoch's state into ``model`` (unchanged if the monitor never ran); return that epoch."""
        if self.state is not None:
            model.load_state_dict(self.state)
        return self.epoch
