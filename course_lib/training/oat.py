r"""Once-for-all adversarial training, OAT (Wang, Chen, Gui, Hu, Liu and Wang, NeurIPS 2020).

A lambda-conditioned model ``f(x; lambda)`` (:mod:`course_lib.models.conditioned`) is trained on a loss whose
weight is drawn per sample,

    L = mean_i [ (1 - lambda_i) CE(f(x_i; lambda_i), y_i) + lambda_i CE(f(x_i^adv; lambda_i), y_i) ],

with ``x_i^adv`` a PGD point of the model AT ``lambda_i`` (made only for the samples with lambda_i > 0, model in
eval mode). :func:`sample_lambdas` draws the lambdas as the reference implementation does: a share of
``1 / len(choices)`` of each batch at lambda = 0 (which trains the clean batch norm), the rest uniformly from
the non-zero choices. A model trained with one fixed lambda is the *dedicated* model of that lambda: PGD-AT with
clean weight ``1 - lambda`` (:func:`course_lib.training.pgd_at_loss`).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import pgd
from ..checks import check_eps, check_unit_interval
from ..models.conditioned import LAMBDA_CHOICES, FixedLambda, check_choices
from .loop import TrainLoss
from .losses import _check_steps, ramp, register_loss


def sample_lambdas(batch_size: int, choices: Sequence[float], zero_share: float | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """One lambda per sample: the first ``round(zero_share * B)`` are 0 (default share ``1 / len(choices)`` if 0 is
    a choice, else none), the others uniform over the non-zero choices (no random draw if there is only one)."""
    choices = check_choices(choices)
    nonzero = [c for c in choices if c != 0]
    if zero_share is None:
        zero_share = 1 / len(choices) if 0.0 in choices else 0.0
    check_unit_interval(zero_share, "zero_share")
    if zero_share > 0 and 0.0 not in choices:
        raise ValueError("zero_share > 0 needs lambda = 0 among the choices")
    n_zero = int(round(zero_share * batch_size)) if nonzero else batch_size
    lam = torch.zeros(batch_size)
    rest = batch_size - n_zero
    if rest:
        if len(nonzero) == 1:
            lam[n_zero:] = nonzero[0]
        else:
            pick = torch.randint(len(nonzero), (rest,), generator=generator)
            lam[n_zero:] = torch.tensor(nonzero)[pick]
    return lam


@register_loss("oat")
def oat_loss(eps: float, choices: Sequence[float] = LAMBDA_CHOICES, zero_share: float | None = None,
             steps: int = 7, step_ratio: float = 1 / 6, norm: str = "linf", ramp_epochs: float = 3.0) -> TrainLoss:
    """The OAT loss (module docstring) for ``model(x, lam)``; PGD as in :func:`pgd_at_loss` (random start, step
    ``step_ratio * eps``, eps ramped up over ``ramp_epochs``). Parameters are checked before any work."""
    check_eps(eps)
    choices = check_choices(choices)
    _check_steps(steps, step_ratio)
    if zero_share is not None:
        check_unit_interval(zero_share, "zero_share")

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: float) -> torch.Tensor:
        lam = sample_lambdas(x.shape[0], choices, zero_share).to(x.device)
        eps_now = ramp(eps, epoch, ramp_epochs)
        adv = lam > 0
        # the attack first (eval mode, running statistics of before this step), as in pgd_at_loss
        x_adv = pgd(FixedLambda(model, lam[adv]), x[adv], y[adv], eps_now, alpha=step_ratio * eps_now, steps=steps,
                    norm=norm) if adv.any() and eps_now > 0 else x[adv]
        total = (1 - lam) * F.cross_entropy(model(x, lam), y, reduction="none")
        if adv.any():
            adv_loss = F.cross_entropy(model(x_adv, lam[adv]), y[adv], reduction="none")
            total = total.index_add(0, adv.nonzero().squeeze(1), lam[adv] * adv_loss)
        return total.mean()

    return loss
