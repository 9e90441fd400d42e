"""Projected Gradient Descent (Madry, Makelov, Schmidt, Tsipras, Vladu 2018; Kurakin et al. 2017).

Approximately solves the inner maximization  max_{||delta|| <= eps} L(f(x + delta), y)  by
    x^0     = a random point of the ball (random start: uniform in the l_inf box; for l_2 a uniformly random
              direction at a radius drawn uniformly from [0, eps], which is NOT uniform in the l_2 ball)   or x
    x^{t+1} = Proj_{B(x, eps) ∩ [0,1]^d} ( x^t + alpha * s(grad_x L(f(x^t), y)) ),
where s(g) = sign(g) for l_inf and g / ||g||_2 for l_2. With restarts, each example keeps the first
restart that fools the model (or, if none does, the one with the highest loss).
Targeted: descend the loss of the target label ``y`` instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import (LossFn, check_attack_inputs, check_steps, cross_entropy_sum, eval_mode, input_gradient,
                   project, random_start as sample_start, steepest_step)


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float | None = None,
        steps: int = 10, norm: str = "linf", random_start: bool = True, restarts: int = 1,
        targeted: bool = False, loss_fn: LossFn = cross_entropy_sum,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """PGD of radius ``eps`` with step ``alpha`` (default 2.5 * eps / steps) for ``steps`` iterations."""
    check_attack_inputs(x, y, eps, norm)
    check_steps(steps, restarts)
    alpha = 2.5 * eps / steps if alpha is None else alpha
    if not alpha > 0 and eps > 0:
        raise ValueError(f"step size alpha must be > 0, got {alpha}")
    if eps == 0:
        return x.detach().clone()
    x = x.detach()
    best = x.clone()
    best_loss = torch.full((x.shape[0],), -float("inf"), device=x.device)
    done = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    with eval_mode(model):
        for _ in range(int(restarts)):
            x_adv = sample_start(x, eps, norm, generator) if random_start else x.clone()
            for _ in range(int(steps)):
                grad = input_gradient(model, x_adv, y, loss_fn, targeted)
                x_adv = project(x_adv + alpha * steepest_step(grad, norm), x, eps, norm).detach()
            with torch.no_grad():
                logits = model(x_adv)
                success = (logits.argmax(1) == y) if targeted else (logits.argmax(1) != y)
                loss = F.cross_entropy(logits, y, reduction="none") * (-1 if targeted else 1)
            better = ~done & (success | (loss > best_loss))
            best[better] = x_adv[better]
            best_loss = torch.where(better, loss, best_loss)
            done |= success
    return best
