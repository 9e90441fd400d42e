"""PreAct ResNet-18 (He, Zhang, Ren and Sun, "Identity mappings in deep residual networks", ECCV 2016), the network
of Rice, Wong and Kolter (2020) and of most CIFAR-10 adversarial-training baselines, and its lambda-conditioned
version for once-for-all adversarial training (Wang et al. 2020: dual batch norm and FiLM after every batch norm).

Pre-activation block: BN-ReLU-conv3x3(stride)-BN-ReLU-conv3x3, plus the input (or, if the shape changes, a 1x1
convolution of the pre-activated input). The network: conv3x3(64), four stages of two blocks with widths 64, 128,
256, 512 (stride 2 from the second), a final BN-ReLU, global average pooling and a linear layer: 11.2 million
parameters for CIFAR-10. ``width`` scales every stage (64 is the published network).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .conditioned import LAMBDA_CHOICES, ConditionedSequential, DualBatchNorm2d, FiLM, LambdaEncoding

STAGES = (1, 2, 4, 8)  # stage widths as multiples of ``width``
BLOCKS = (2, 2, 2, 2)  # blocks per stage: ResNet-18


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)


class PreActBlock(nn.Module):
    """BN-ReLU-conv-BN-ReLU-conv plus a shortcut (identity, or a 1x1 convolution of the pre-activated input)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), _conv3x3(c_in, c_out, stride)
        self.bn2, self.conv2 = nn.BatchNorm2d(c_out), _conv3x3(c_out, c_out)
        self.shortcut = (nn.Conv2d(c_in, c_out, 1, stride, bias=False)
                         if stride != 1 or c_in != c_out else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv2(torch.relu(self.bn2(self.conv1(out))))
        return out + shortcut


class PreActResNet(nn.Module):
    """PreAct ResNet-18 (module docstring) on ``c_in``-channel images, any size >= 8 pixels (global pooling)."""

    def __init__(self, c_in: int, num_classes: int, width: int = 64, blocks: Sequence[int] = BLOCKS):
        super().__init__()
        self.stem = _conv3x3(c_in, width)
        layers, c = [], width
        for i, (mult, n) in enumerate(zip(STAGES, blocks)):
            for j in range(n):
                layers.append(PreActBlock(c, width * mult, 2 if i > 0 and j == 0 else 1))
                c = width * mult
        self.blocks = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(c)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.bn(self.blocks(self.stem(x)))))


def preact_resnet18(c_in: int, num_classes: int, width: int = 64) -> PreActResNet:
    """The PreAct ResNet-18 of Rice et al. (2020) (``width = 64``)."""
    return PreActResNet(c_in, num_classes, width)


class ConditionedNorm(nn.Module):
    """Dual batch norm (or one batch norm), then FiLM (if any): the conditioned replacement of one BatchNorm2d."""

    def __init__(self, channels: int, enc_dim: int, dual_bn: bool, film: bool):
        super().__init__()
        self.bn = DualBatchNorm2d(channels) if dual_bn else nn.BatchNorm2d(channels)
        self.film = FiLM(enc_dim, channels) if film else None

    def forward(self, h: torch.Tensor, clean: torch.Tensor, encoding: torch.Tensor) -> torch.Tensor:
        h = self.bn(h, clean) if isinstance(self.bn, DualBatchNorm2d) else self.bn(h)
        return h if self.film is None else self.film(h, encoding.to(h.dtype))


class ConditionedPreActBlock(nn.Module):
    """:class:`PreActBlock` with every batch norm replaced by :class:`ConditionedNorm`."""

    def __init__(self, c_in: int, c_out: int, stride: int, enc_dim: int, dual_bn: bool, film: bool):
        super().__init__()
        self.norm1, self.conv1 = ConditionedNorm(c_in, enc_dim, dual_bn, film), _conv3x3(c_in, c_out, stride)
        self.norm2, self.conv2 = ConditionedNorm(c_out, enc_dim, dual_bn, film), _conv3x3(c_out, c_out)
        self.shortcut = (nn.Conv2d(c_in, c_out, 1, stride, bias=False)
                         if stride != 1 or c_in != c_out else None)

    def forward(self, x: torch.Tensor, clean: torch.Tensor, encoding: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.norm1(x, clean, encoding))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(torch.relu(self.norm2(out, clean, encoding)))
        return out + shortcut


class ConditionedPreActResNet(nn.Module):
    """The PreAct ResNet-18 conditioned on lambda (dual batch norm and FiLM after every batch norm, as OAT's
    ResNet-34): ``forward(x, lam)`` with one lambda per input, each one of ``choices``."""

    sequential_class = ConditionedSequential

    def __init__(self, c_in: int, num_classes: int, width: int = 64, choices: Sequence[float] = LAMBDA_CHOICES,
                 enc_dim: int = 128, dual_bn: bool = True, film: bool = True, seed: int = 0):
        super().__init__()
        self.encoding = LambdaEncoding(choices, enc_dim, seed)
        self.stem = _conv3x3(c_in, width)
        blocks, c = [], width
        for i, (mult, n) in enumerate(zip(STAGES, BLOCKS)):
            for j in range(n):
                blocks.append(ConditionedPreActBlock(c, width * mult, 2 if i > 0 and j == 0 else 1, enc_dim,
                                                     dual_bn, film))
                c = width * mult
        self.blocks = nn.ModuleList(blocks)
        self.norm = ConditionedNorm(c, enc_dim, dual_bn, film)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))

    def forward(self, x: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
        if lam.shape != (x.shape[0],):
            raise ValueError(f"lam must hold one lambda per input: shape ({x.shape[0]},), got {tuple(lam.shape)}")
        encoding = self.encoding(lam)  # checks that every lambda is one of the choices
        clean = lam.to(x.device) == 0
        h = self.stem(x)
        for block in self.blocks:
            h = block(h, clean, encoding)
        return self.head(torch.relu(self.norm(h, clean, encoding)))
