"""Fast Gradient Sign Method (Goodfellow, Shlens, Szegedy 2015), with its l_2 analogue (fast gradient method).

    x' = clip_[0,1]( x + eps * sign(grad_x L(f(x), y)) )              (l_inf)
    x' = clip_[0,1]( x + eps * grad_x L / ||grad_x L||_2 )             (l_2)

One gradient step to the boundary of the eps-ball: the exact maximizer of the loss's linearization.
Targeted: step *down* the loss of the target label ``y``.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import LossFn, check_attack_inputs, cross_entropy_sum, eval_mode, input_gradient, project, steepest_step


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "linf",
         targeted: bool = False, loss_fn: LossFn = cross_entropy_sum) -> torch.Tensor:
    """One-step attack of radius ``eps``; returns adversarial images in the ball and in [0, 1]."""
    check_attack_inputs(x, y, eps, norm)
    if eps == 0:
        return x.detach().clone()
    with eval_mode(model):
        grad = input_gradient(model, x, y, loss_fn, targeted)
        return project(x + eps * steepest_step(grad, norm), x, eps, norm).detach()
