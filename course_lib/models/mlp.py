"""The multilayer perceptron: of flattened images, or of the 2-D points of :mod:`course_lib.toy`."""

from __future__ import annotations

from torch import nn


def mlp(in_features: int, num_classes: int, hidden: int = 256, depth: int = 2) -> nn.Sequential:
    """``depth`` hidden layers of ``hidden`` ReLU units: in -> hidden -> ... -> hidden -> num_classes."""
    if in_features < 1 or num_classes < 2 or hidden < 1 or depth < 1:
        raise ValueError(f"need in_features >= 1, num_classes >= 2, hidden >= 1 and depth >= 1, "
                         f"got {in_features}, {num_classes}, {hidden}, {depth}")
    layers: list[nn.Module] = []
    width = in_features
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, num_classes))


def image_mlp(c_in: int, hw: int, num_classes: int, hidden: int = 256) -> nn.Sequential:
    """Flatten, then :func:`mlp` with two hidden layers."""
    return nn.Sequential(nn.Flatten(), mlp(c_in * hw * hw, num_classes, hidden))
