"""What every attack shares: input checks, eval mode, the loss, norm-specific steps and projections.

Errors: TypeError for a wrong type (e.g. labels as floats), ValueError for a wrong value (eps < 0, images
outside [0, 1], an unknown norm) -- see :mod:`course_lib.checks`.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_choice, check_count, check_eps, check_images, check_labels
from ..device import eval_mode

__all__ = ["NORMS", "LossFn", "check_attack_inputs", "check_steps", "eval_mode", "cross_entropy_sum",
           "per_example_norm", "steepest_step", "project", "random_start", "input_gradient"]

NORMS = ("linf", "l2")
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, y) -> summed loss


def check_steps(steps: int, restarts: int = 1) -> None:
    """The attack's ``steps`` and ``restarts``: integers >= 1 (TypeError / ValueError otherwise)."""
    check_count(steps, "steps")
    check_count(restarts, "restarts")


def check_attack_inputs(x: torch.Tensor, y: torch.Tensor, eps: float, norm: str) -> None:
    """Images in [0, 1], one label per image, a known norm and a finite radius >= 0."""
    check_images(x, "x")
    check_choice(norm, NORMS, "norm")
    check_eps(eps)
    check_labels(y, x.shape[0])


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
