"""Small convolutional networks: two conv-ReLU-maxpool stages and a hidden fully-connected layer."""

from __future__ import annotations

from torch import nn


def conv_net(c_in: int, hw: int, widths: tuple[int, int, int], num_classes: int) -> nn.Sequential:
    """conv(c1)-pool-conv(c2)-pool-fc(fc)-fc(K) on ``c_in x hw x hw`` images (3x3 convolutions, 2x2 pooling)."""
    c1, c2, fc = widths
    return nn.Sequential(
        nn.Conv2d(c_in, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(c2 * (hw // 4) ** 2, fc), nn.ReLU(), nn.Linear(fc, num_classes),
    )
