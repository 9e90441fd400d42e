"""Where models run: the one place in course_lib that chooses a device, its precision and memory format, seeding,
and eval mode.

``get_device()`` prefers CUDA, then Apple's MPS, then the CPU. Set ``COURSE_DEVICE`` (e.g. ``cpu``,
``cuda``, ``cuda:1``, ``mps``) to override. Everything else in the library takes the device from the model
(``next(model.parameters()).device``) or from the tensors it is given.

Precision. Training may run in mixed precision, and only on CUDA: :func:`autocast` is bfloat16 autocast where the
GPU supports bfloat16, else float16 autocast with the loss scaled by :func:`grad_scaler`; on the CPU and MPS it
does nothing (float32, bit-identical to training without it). Attacks used for *evaluation*, certification and the
per-epoch monitor run in float32: they are called outside the training step's autocast region, and
:func:`full_precision` turns autocast off inside one (a weaker attack or a miscounted noisy prediction would
overstate robustness; the adversarial examples made *inside* a training step may use the training precision, as in
fast adversarial training). ``COURSE_AMP=off`` turns mixed precision off everywhere.

Memory format. :func:`memory_format` is channels_last on CUDA (tensor cores, with autocast) and on the CPU (the
cheapest CPU speed-up measured here), the default contiguous format elsewhere.
"""

from __future__ import annotations

import os
import random
from contextlib import contextmanager, nullcontext
from typing import ContextManager, Iterator

import numpy as np
import torch

DEVICE_ENV = "COURSE_DEVICE"
AMP_ENV = "COURSE_AMP"


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


def _device(device: torch.device | str) -> torch.device:
    return device if isinstance(device, torch.device) else torch.device(device)


def amp_dtype(device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype of training on ``device``: bfloat16 on a CUDA GPU that supports it, float16 on an older
    one, None (float32, no autocast) on every other device or with ``COURSE_AMP=off``."""
    device = _device(device)
    if device.type != "cuda" or os.environ.get(AMP_ENV, "").strip().lower() in ("off", "0", "false", "no"):
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device | str) -> ContextManager:
    """Mixed precision for a training step on ``device`` (see the module docstring); a no-op off CUDA."""
    dtype = amp_dtype(device)
    return nullcontext() if dtype is None else torch.autocast("cuda", dtype=dtype)


def grad_scaler(device: torch.device | str) -> torch.amp.GradScaler | None:
    """A loss scaler for float16 training on ``device`` (bfloat16 has float32's range and needs none), else None."""
    return torch.amp.GradScaler("cuda") if amp_dtype(device) == torch.float16 else None


def full_precision(device: torch.device | str) -> ContextManager:
    """Autocast off (float32) for the duration, even inside an autocast region: for evaluation attacks and
    certification, whose gradients and counts must not be weakened by reduced precision."""
    device = _device(device)
    if device.type not in ("cuda", "cpu", "mps", "xpu"):
        return nullcontext()
    return torch.autocast(device.type, enabled=False)


def memory_format(device: torch.device | str) -> torch.memory_format:
    """channels_last for image batches and models on CUDA and on the CPU, the contiguous format elsewhere."""
    return torch.channels_last if _device(device).type in ("cuda", "cpu") else torch.contiguous_format
