r"""The minimum-margin attack (MixedNUTS's MMAA idea, Bai et al. 2024), on chapter 1's PGD and chapter 2's APGD.

An ordinary attack stops caring about an example once it is misclassified, and for one still classified
correctly it returns the last iterate. Algorithm 1 of MixedNUTS needs something else: for each example, the
perturbed input with the *smallest* margin

    m_y(x') = p_y(x') - max_{i != y} p_i(x'),      p = softmax(model(x')),

that the attack can find in the eps-ball (negative: misclassified). This attack runs PGD (the same steps, random
starts and generator as :func:`course_lib.attacks.pgd`) and records the margin of every iterate of every restart,
and optionally adds the final points of APGD-CE and APGD-T as candidates; each example keeps its candidate of
least margin. Since plain PGD's returned point is one of the candidates, the margin found is never larger than
PGD's and the error rate never lower.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .autoattack import apgd_ce, apgd_t
from .base import (LossFn, check_attack_inputs, check_steps, cross_entropy_sum, eval_mode, project,
                   random_start as sample_start, steepest_step)


def label_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``p_y - max_{i != y} p_i`` of ``softmax(logits)`` per row, in float64."""
    p = F.softmax(logits.double(), dim=1)
    true = p.gather(1, y.view(-1, 1)).squeeze(1)
    return true - p.scatter(1, y.view(-1, 1), -1.0).max(1).values


def min_margin(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float | None = None,
               steps: int = 20, norm: str = "linf", restarts: int = 1, autoattack: bool = False,
               apgd_steps: int = 100, seed: int = 0, loss_fn: LossFn = cross_entropy_sum,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Per example, the least-margin point over PGD's iterates (all restarts) [and APGD-CE's and APGD-T's final
    points, with ``autoattack``], inside the eps-ball and [0, 1]."""
    check_attack_inputs(x, y, eps, norm)
    check_steps(steps, restarts)
    alpha = 2.5 * eps / steps if alpha is None else alpha
    if eps == 0:
        return x.detach().clone()
    x = x.detach()
    best = x.clone()
    best_margin = torch.full((len(x),), torch.inf, dtype=torch.float64, device=x.device)

    def keep(candidate: torch.Tensor, logits: torch.Tensor) -> None:
        margin = label_margin(logits, y)
        better = margin < best_margin
        best[better] = candidate[better]
        best_margin[better] = margin[better]

    with eval_mode(model):
        for _ in range(int(restarts)):
            x_adv = sample_start(x, eps, norm, generator)
            for _ in range(int(steps)):
                x_adv.requires_grad_(True)
                logits = model(x_adv)
                (grad,) = torch.autograd.grad(loss_fn(logits, y), x_adv)
                keep(x_adv.detach(), logits.detach())
                x_adv = project(x_adv.detach() + alpha * steepest_step(grad, norm), x, eps, norm)
            with torch.no_grad():
                keep(x_adv, model(x_adv))
        if autoattack:
            for attack in (apgd_ce, apgd_t):
                candidate = attack(model, x, y, eps, steps=apgd_steps, norm=norm, seed=seed)
                with torch.no_grad():
                    keep(candidate, model(candidate))
    return best
