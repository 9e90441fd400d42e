"""What every attack shares: input checks, eval mode, the loss, norm-specific steps and projections."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..data import check_images

NORMS = ("linf", "l2")
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, y) -> summed loss


def check_eps(eps: float) -> None:
    """Raise ValueError unless ``eps`` is a finite radius >= 0."""
    if not 0 <= eps < float("inf"):  # also rejects NaN; inf would give inf * 0 = NaN pixels
        raise ValueError(f"eps must be finite and >= 0, got {eps}")


def check_steps(steps: int, restarts: int = 1) -> None:
    """Raise ValueError unless the attack's ``steps`` and ``restarts`` are positive integers."""
    for value, name in ((steps, "steps"), (restarts, "restarts")):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")


def check_attack_inputs(x: torch.Tensor, y: torch.Tensor, eps: float, norm: str) -> None:
    """Raise ValueError on a bad threat model or malformed inputs."""
    check_images(x, "x")
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose one of {NORMS}")
    check_eps(eps)
    if not torch.is_tensor(y) or y.shape != x.shape[:1]:
        raise ValueError(f"y must be a tensor with one entry per image: x has {x.shape[0]} images, "
                         f"y has shape {tuple(getattr(y, 'shape', ()))}")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the duration, then restore every submodule's previous mode."""
    modes = [m.training for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, mode in zip(model.modules(), modes):
            module.training = mode


def cross_entropy_sum(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy: per-example gradients do not shrink with the batch size."""
    return F.cross_entropy(logits, y, reduction="sum")


def per_example_norm(t: torch.Tensor) -> torch.Tensor:
    """l_2 norm of each example, shaped N x 1 x 1 x 1 for broadcasting."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def steepest_step(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """The unit-norm steepest-ascent direction: sign(g) for l_inf, g / ||g||_2 for l_2."""
    if norm == "linf":
        return grad.sign()
    return grad / (per_example_norm(grad) + 1e-12)


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Project ``x_adv`` onto {x' : ||x' - x|| <= eps} intersected with [0, 1]^d.

    l_inf: clip each pixel to [x - eps, x + eps], then to [0, 1] (exact Euclidean projection, since both sets
    are boxes). l_2: rescale delta by min(1, eps / ||delta||), then clip to [0, 1]; clipping moves every
    coordinate towards ``x`` so the result stays inside the ball.
    """
    delta = x_adv - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        delta = delta * (eps / (per_example_norm(delta) + 1e-12)).clamp(max=1.0)
    return (x + delta).clamp(0.0, 1.0)


def random_start(x: torch.Tensor, eps: float, norm: str, generator: torch.Generator | None) -> torch.Tensor:
    """A uniform point of the l_inf ball, or a uniformly random direction at a uniform radius in the l_2 ball."""
    if norm == "linf":
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1
        return project(x + eps * noise, x, eps, norm)
    direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    direction = direction / per_example_norm(direction)
    radius = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), generator=generator, device=x.device)
    return project(x + eps * radius * direction, x, eps, norm)


def input_gradient(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor, loss_fn: LossFn,
                   targeted: bool) -> torch.Tensor:
    """Gradient of the attack objective with respect to the input (loss; minus the loss if targeted)."""
    x_adv = x_adv.detach().requires_grad_(True)
    loss = loss_fn(model(x_adv), y)
    (grad,) = torch.autograd.grad(-loss if targeted else loss, x_adv)
    return grad
