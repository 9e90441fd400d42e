"""Models. Inputs are images in [0, 1]; the first layer normalizes, so attacks and noise live in pixel space.

- ``small_cnn``: conv16-conv32-fc100 (163k parameters for MNIST), the CPU workhorse.
- ``cnn``: conv32-conv64-fc128 (422k parameters), for the full-data profiles.
- ``tiny_cnn``: conv4-conv8-fc32, a low-capacity model that shows the cost of robustness.
- ``mlp``: 2 hidden layers of 256.
- ``resnet``: a small pre-activation-free ResNet (ResNet-ish, 4 stages of basic blocks) for CIFAR-10.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn


class Normalize(nn.Module):
    """(x - mean) / std per channel, as the model's first layer."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _conv_net(c_in: int, hw: int, widths: tuple[int, int, int], num_classes: int) -> nn.Sequential:
    c1, c2, fc = widths
    return nn.Sequential(
        nn.Conv2d(c_in, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(c2 * (hw // 4) ** 2, fc), nn.ReLU(), nn.Linear(fc, num_classes),
    )


def _mlp(c_in: int, hw: int, num_classes: int, hidden: int = 256) -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(c_in * hw * hw, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def _resnet(c_in: int, num_classes: int, width: int = 32) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    c = width
    for i, c_out in enumerate([width, 2 * width, 4 * width, 8 * width]):
        layers += [BasicBlock(c, c_out, 1 if i == 0 else 2), BasicBlock(c_out, c_out, 1)]
        c = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)]
    return nn.Sequential(*layers)


ARCHS: dict[str, Callable[[int, int, int], nn.Module]] = {
    "small_cnn": lambda c, hw, k: _conv_net(c, hw, (16, 32, 100), k),
    "cnn": lambda c, hw, k: _conv_net(c, hw, (32, 64, 128), k),
    "tiny_cnn": lambda c, hw, k: _conv_net(c, hw, (4, 8, 32), k),
    "mlp": lambda c, hw, k: _mlp(c, hw, k),
    "resnet": lambda c, hw, k: _resnet(c, k),
}


def build_model(arch: str, in_channels: int, image_size: int, num_classes: int,
                mean: Sequence[float], std: Sequence[float]) -> nn.Sequential:
    """``Normalize(mean, std)`` followed by the named architecture; on the CPU, in float32."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHS)}")
    if len(mean) != in_channels or len(std) != in_channels:
        raise ValueError(f"mean/std need {in_channels} entries, got {len(mean)} and {len(std)}")
    if min(std) <= 0:
        raise ValueError("std must be positive")
    return nn.Sequential(Normalize(mean, std), ARCHS[arch](in_channels, image_size, num_classes))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
