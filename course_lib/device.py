"""Where models run: the one place in course_lib that chooses a device, seeding, and eval mode.

``get_device()`` prefers CUDA, then Apple's MPS, then the CPU. Set ``COURSE_DEVICE`` (e.g. ``cpu``,
``cuda``, ``cuda:1``, ``mps``) to override. Everything else in the library takes the device from the model
(``next(model.parameters()).device``) or from the tensors it is given.
"""

from __future__ import annotations

import os
import random
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch

DEVICE_ENV = "COURSE_DEVICE"


def get_device() -> torch.device:
    """Return ``$COURSE_DEVICE`` if set, else CUDA, else MPS, else CPU."""
    requested = os.environ.get(DEVICE_ENV, "").strip()
    if requested:
        try:
            device = torch.device(requested)
        except RuntimeError as err:  # a wrong value of the right type
            raise ValueError(f"{DEVICE_ENV}={requested!r} is not a torch device name") from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"{DEVICE_ENV}={requested!r} but CUDA is not available on this machine")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"{DEVICE_ENV}={requested!r} but MPS is not available on this machine")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); return a CPU ``torch.Generator`` seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device a model lives on (the device of its first parameter or buffer; CPU if it has none)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Put ``model`` in eval mode for the duration, then restore every submodule's previous mode.

    Attacks, certification and evaluation run the model in eval mode (batch norm uses its running statistics,
    dropout is off) even when called from inside a training step.
    """
    modes = [m.training for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, mode in zip(model.modules(), modes):
            module.training = mode
