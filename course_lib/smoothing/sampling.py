"""The Monte-Carlo engine of randomized smoothing: class counts of ``f(x + e)`` over Gaussian noise draws.

:func:`noise_counts` counts, for each input and each *phase* (CERTIFY has two: the selection draw of ``n0`` and the
estimation draw of ``n``), how often the base classifier returns each class under ``e ~ N(0, sigma^2 I)``.
:func:`noise_softmax_sums` sums the softmax vectors instead (the soft smoothed classifier of Salman et al. 2019,
estimated by the mixing chapter); both run the same loop, :func:`noise_sums`, over the same noise stream.

Reproducibility. Noise is drawn image after image (for each image its phases in order), each draw in chunks of
:data:`NOISE_CHUNK` samples, whatever ``batch_size`` is and however many images are counted together; forward
batches are then packed from that stream. Hence counting a stack of images gives exactly the counts of counting
them one by one with the same ``torch.Generator`` (and the same counts for any ``batch_size``), up to
floating-point ties in the model's logits, which a different batch composition could in principle break
differently. Everything runs under ``torch.inference_mode`` with the model in eval mode; memory is bounded by
``batch_size`` noisy samples. If the model is stored channels_last, the noisy batches are too.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..checks import check_choice, check_count
from ..device import eval_mode, model_device

NOISE_CHUNK = 50
"""Samples per noise draw: fixes the random stream whatever the batch size is."""


def is_channels_last(model: nn.Module) -> bool:
    """True if some 4-D parameter is stored channels_last (and not also plain contiguous)."""
    for p in model.parameters():
        if p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous():
            return True
    return False


SCORES = ("argmax", "softmax")


def noise_counts(model: nn.Module, x: torch.Tensor, nums: Sequence[int], sigma: float, num_classes: int,
                 batch_size: int = 100, generator: torch.Generator | None = None, progress: bool = True,
                 desc: str = "sampling") -> np.ndarray:
    """Counts ``B x len(nums) x K`` (int64) of ``f(x_b + e)`` over ``nums[p]`` draws per input b and phase p."""
    sums = noise_sums(model, x, nums, sigma, num_classes, "argmax", batch_size, generator, progress, desc)
    return sums.astype(np.int64)


def noise_softmax_sums(model: nn.Module, x: torch.Tensor, nums: Sequence[int], sigma: float, num_classes: int,
                       batch_size: int = 100, generator: torch.Generator | None = None, progress: bool = True,
                       desc: str = "sampling") -> np.ndarray:
    """Sums ``B x len(nums) x K`` (float64) of ``softmax f(x_b + e)`` over ``nums[p]`` draws per input and phase;
    divided by ``nums[p]`` they estimate the soft smoothed classifier ``E_e[softmax f(x + e)]``."""
    return noise_sums(model, x, nums, sigma, num_classes, "softmax", batch_size, generator, progress, desc)


def noise_sums(model: nn.Module, x: torch.Tensor, nums: Sequence[int], sigma: float, num_classes: int,
               score: str = "argmax", batch_size: int = 100, generator: torch.Generator | None = None,
               progress: bool = True, desc: str = "sampling") -> np.ndarray:
    """Sums ``B x len(nums) x K`` (a float64 array) of a score of ``f(x_b + e)`` over ``nums[p]`` draws per input
    b and phase p: ``score="argmax"`` the one-hot of the predicted class (class counts), ``"softmax"`` its softmax.

    Noise stream: for b in inputs, for p in phases, draws of ``min(NOISE_CHUNK, remaining)`` samples.
    Forward batches hold up to ``batch_size`` samples, possibly of several inputs and phases. A ``generator``
    should live on the model's device (a CPU generator with a GPU model also works: noise is then drawn on the
    CPU and copied, which is slower).
    """
    check_count(batch_size, "batch_size")
    check_choice(score, SCORES, "score")
    device = model_device(model)
    n_images, n_phases, k = x.shape[0], len(nums), num_classes
    shape = tuple(x.shape[1:])
    channels_last = is_channels_last(model) and len(shape) == 3
    noise_device = generator.device if generator is not None else device
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    x = x.to(device=device, dtype=dtype)
    batch_size = min(batch_size, n_images * sum(nums))
    # The buffer is plain contiguous, so that noise drawn straight into a slice of it equals noise drawn into a
    # fresh tensor of the same shape (the random stream does not depend on where a chunk lands).
    buf = torch.empty((batch_size, *shape), device=device, dtype=dtype)
    seg = torch.empty(batch_size, dtype=torch.long, device=device)
    # counts are exact integers; softmax sums accumulate in float64 (float32 on MPS, which has no float64)
    acc_dtype = torch.long if score == "argmax" else torch.float32 if device.type == "mps" else torch.float64
    sums = torch.zeros((n_images * n_phases, k), dtype=acc_dtype, device=device)
    chunk = NOISE_CHUNK
    fill = 0
    bar = tqdm(total=n_images * sum(nums), desc=desc, unit="samples", leave=False,
               disable=not progress, mininterval=0.5)

    def flush(m: int) -> None:
        inputs = buf[:m].contiguous(memory_format=torch.channels_last) if channels_last else buf[:m]
        try:
            logits = model(inputs)
        except RuntimeError as err:
            raise ValueError(f"the base classifier rejected inputs of shape {tuple(buf[:m].shape)}: "
                             f"{err}") from err
        if logits.dim() != 2 or logits.shape != (m, k):
            raise ValueError(f"the base classifier must return logits of shape (batch, {k}), "
                             f"got {tuple(logits.shape)}")
        scores = F.one_hot(logits.argmax(1), k) if score == "argmax" else F.softmax(logits.to(acc_dtype), dim=1)
        sums.index_add_(0, seg[:m], scores)
        bar.update(m)

    with eval_mode(model), torch.inference_mode(), bar:
        for b in range(n_images):
            xb = x[b]
            for p, num in enumerate(nums):
                remaining = int(num)
                while remaining > 0:
                    size = min(chunk, remaining)
                    remaining -= size
                    if fill + size <= batch_size and noise_device == device:  # the chunk fits: draw in place
                        buf[fill:fill + size].normal_(0.0, sigma, generator=generator).add_(xb)
                        seg[fill:fill + size] = b * n_phases + p
                        fill += size
                        if fill == batch_size:
                            flush(fill)
                            fill = 0
                        continue
                    noise = torch.empty((size, *shape), device=noise_device, dtype=dtype).normal_(
                        0.0, sigma, generator=generator)
                    if noise_device != device:
                        noise = noise.to(device)
                    off = 0
                    while off < size:
                        take = min(size - off, batch_size - fill)
                        torch.add(noise[off:off + take], xb, out=buf[fill:fill + take])
                        seg[fill:fill + take] = b * n_phases + p
                        fill += take
                        off += take
                        if fill == batch_size:
                            flush(fill)
                            fill = 0
        if fill:
            flush(fill)
    return sums.view(n_images, n_phases, k).cpu().numpy().astype(np.float64)
