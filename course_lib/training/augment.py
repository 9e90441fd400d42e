"""Data augmentation for the training loop: random crop with zero padding and horizontal flip, on whole batches.

An augmentation is a callable ``augment(x, y) -> (x, y)`` (the loop's ``augment=``), applied to each batch on the
batch's device before the loss. :data:`AUGMENTS` names the ones a recipe can ask for (``Recipe.augment``):

- ``none``: no augmentation (the quick, mnist and fashion profiles);
- ``crop_flip``: the standard CIFAR-10 augmentation of every paper the cifar10 recipes follow (He et al. 2016; Rice
  et al. 2020; Cohen et al. 2019): pad each image with 4 zero pixels on every side, crop a random window of the
  original size, and flip it left-right with probability 1/2; torchvision's ``RandomCrop(32, padding=4)`` and
  ``RandomHorizontalFlip()``, but drawn for the whole batch at once on its device.

The random draws come from a generator of the augmentation's own, seeded once, on the batch's device: the same seed
gives the same crops for the same sequence of batches, and the global random stream (which the losses use) is
untouched.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..checks import check_choice, check_count

Augment = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class RandomCropFlip:
    """Random crop after zero padding of ``padding`` pixels, then (if ``flip``) a left-right flip, probability 1/2."""

    def __init__(self, padding: int = 4, flip: bool = True, seed: int = 0):
        self.padding = check_count(padding, "padding", minimum=0)
        self.flip = bool(flip)
        self.seed = int(seed)
        self._generator: torch.Generator | None = None

    def generator(self, device: torch.device) -> torch.Generator:
        """The augmentation's generator on ``device`` (created and seeded on first use)."""
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        return self._generator

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 4:
            raise ValueError(f"crop and flip need a batch of images N x C x H x W, got shape {tuple(x.shape)}")
        n, c, h, w = x.shape
        p, g, dev = self.padding, self.generator(x.device), x.device
        rows = torch.arange(h, device=dev).expand(n, h)
        cols = torch.arange(w, device=dev).expand(n, w)
        if p:
            x_padded = F.pad(x, (p, p, p, p))
            rows = rows + torch.randint(0, 2 * p + 1, (n, 1), generator=g, device=dev)
            cols = cols + torch.randint(0, 2 * p + 1, (n, 1), generator=g, device=dev)
        else:
            x_padded = x
        if self.flip:
            flipped = torch.rand(n, generator=g, device=dev) < 0.5
            cols = torch.where(flipped[:, None], cols.flip(1), cols)
        batch = torch.arange(n, device=dev).view(n, 1, 1, 1)
        channel = torch.arange(c, device=dev).view(1, c, 1, 1)
        out = x_padded[batch, channel, rows.view(n, 1, h, 1), cols.view(n, 1, 1, w)]
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            out = out.contiguous(memory_format=torch.channels_last)
        return out, y


AUGMENTS: dict[str, Callable[[int], Augment | None]] = {
    "none": lambda seed: None,
    "crop_flip": lambda seed: RandomCropFlip(padding=4, flip=True, seed=seed),
}
"""Augmentations by the name recipes use: ``AUGMENTS[name](seed)`` is the loop's ``augment`` (None: none)."""


def make_augment(name: str, seed: int = 0) -> Augment | None:
    """The named augmentation (:data:`AUGMENTS`), seeded; None for ``"none"``."""
    check_choice(name, AUGMENTS, "augmentation")
    return AUGMENTS[name](seed)
