"""Models. Inputs are images in [0, 1]; the first layer normalizes, so attacks and noise live in pixel space.

One file per model family; :data:`ARCHS` names the architectures a recipe can ask for:

- ``small_cnn``: conv16-conv32-fc100 (163k parameters for MNIST), the CPU workhorse (:mod:`.cnn`);
- ``cnn``: conv32-conv64-fc128 (422k parameters), for the full-data profiles;
- ``tiny_cnn``: conv4-conv8-fc32, a low-capacity model that shows the cost of robustness;
- ``mlp``: 2 hidden layers of 256 (:mod:`.mlp`, which also builds the 2-D toy MLP);
- ``resnet``: a small ResNet for CIFAR-10 (:mod:`.resnet`);
- ``preact_resnet18``: the PreAct ResNet-18 of Rice et al. (2020), 11.2M parameters, the cifar10 profile's network
  (:mod:`.preact_resnet`); ``oat_preact_resnet18`` is its lambda-conditioned version for OAT.

- ``oat_tiny_cnn``: the tiny_cnn conditioned on lambda (dual batch norm and FiLM, :mod:`.conditioned`), for
  once-for-all adversarial training; called as ``model(x, lam)``, and through :class:`FixedLambda` as ``model(x)``;
  ``oat_tiny_cnn_single_bn`` and ``oat_tiny_cnn_no_film`` are its ablations (one batch norm; no FiLM).

A new model kind adds a file and an entry of :data:`ARCHS`. A body whose class names a ``sequential_class`` is
wrapped in that class instead of ``nn.Sequential`` (the conditioned models take a second argument).
"""

from __future__ import annotations

from typing import Callable, Sequence

from torch import nn

from ..checks import check_choice
from .cnn import conv_net
from .conditioned import (LAMBDA_CHOICES, ConditionedCNN, ConditionedSequential, DualBatchNorm2d, FiLM,
                          FixedLambda, LambdaEncoding)
from .mlp import image_mlp, mlp
from .normalize import Normalize
from .preact_resnet import ConditionedPreActResNet, PreActBlock, PreActResNet, preact_resnet18
from .resnet import BasicBlock, resnet

__all__ = ["ARCHS", "BasicBlock", "ConditionedCNN", "ConditionedPreActResNet", "ConditionedSequential",
           "DualBatchNorm2d", "FiLM", "FixedLambda", "LAMBDA_CHOICES", "LambdaEncoding", "Normalize", "PreActBlock",
           "PreActResNet", "build_model", "conv_net", "count_parameters", "image_mlp", "mlp", "preact_resnet18",
           "resnet"]

ARCHS: dict[str, Callable[[int, int, int], nn.Module]] = {
    "small_cnn": lambda c, hw, k: conv_net(c, hw, (16, 32, 100), k),
    "cnn": lambda c, hw, k: conv_net(c, hw, (32, 64, 128), k),
    "tiny_cnn": lambda c, hw, k: conv_net(c, hw, (4, 8, 32), k),
    "mlp": lambda c, hw, k: image_mlp(c, hw, k),
    "resnet": lambda c, hw, k: resnet(c, k),
    "preact_resnet18": lambda c, hw, k: preact_resnet18(c, k),
    "oat_preact_resnet18": lambda c, hw, k: ConditionedPreActResNet(c, k),
    "oat_tiny_cnn": lambda c, hw, k: ConditionedCNN(c, hw, (4, 8, 32), k),
    "oat_tiny_cnn_single_bn": lambda c, hw, k: ConditionedCNN(c, hw, (4, 8, 32), k, dual_bn=False),  # ablations
    "oat_tiny_cnn_no_film": lambda c, hw, k: ConditionedCNN(c, hw, (4, 8, 32), k, film=False),
}


def build_model(arch: str, in_channels: int, image_size: int, num_classes: int,
                mean: Sequence[float], std: Sequence[float]) -> nn.Sequential:
    """``Normalize(mean, std)`` followed by the named architecture; on the CPU, in float32."""
    check_choice(arch, ARCHS, "architecture")
    if len(mean) != in_channels or len(std) != in_channels:
        raise ValueError(f"mean/std need {in_channels} entries, got {len(mean)} and {len(std)}")
    if min(std) <= 0:
        raise ValueError("std must be positive")
    body = ARCHS[arch](in_channels, image_size, num_classes)
    return getattr(body, "sequential_class", nn.Sequential)(Normalize(mean, std), body)


def count_parameters(model: nn.Module) -> int:
    """The number of trainable and frozen parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())
