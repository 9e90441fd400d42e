"""Training losses, each registered under the name a recipe uses: standard, FGSM-AT, PGD-AT, TRADES, Gaussian.

A *training loss* is a callable ``loss(model, x, y, epoch) -> scalar`` called with the model in train mode (see
:mod:`course_lib.training.loop`); ``epoch`` is fractional so that a loss can ramp its radius up. Each
``*_loss`` function here is a *factory*: it checks its parameters and returns the loss, and
``@register_loss(name)`` adds it to :data:`LOSSES`, where the model cache looks a recipe's loss up. Attacks inside
a loss run with the model in eval mode and put it back in train mode (see ``attacks.base``). A new chapter's loss
(SmoothMix, OAT) goes in a file of its own in this package and registers itself the same way.

- standard:   E[ CE(f(x), y) ]
- FGSM-AT:    E[ CE(f(x_fgsm), y) ]                                 (Goodfellow et al. 2015)
              optionally from a random start, "FGSM-RS"             (Wong et al. 2020)
- PGD-AT:     E[ max_{||d|| <= eps} CE(f(x + d), y) ] ~ E[ CE(f(x_pgd), y) ]   (Madry et al. 2018)
              By Danskin's theorem the gradient of the inner max is the gradient at the maximizer.
- TRADES:     E[ CE(f(x), y) + beta * max_{||x'-x|| <= eps} KL(p(x) || p(x')) ]  (Zhang et al. 2019)
- Gaussian:   E[ CE(f(x + sigma * n), y) ], n ~ N(0, I) fresh per batch  (Cohen et al. 2019)
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import fgsm, pgd
from ..attacks.base import check_steps
from ..checks import check_eps, check_positive, check_real, check_unit_interval
from ..device import eval_mode
from .loop import TrainLoss

LOSSES: dict[str, Callable[..., TrainLoss]] = {}
"""Loss factories by the name recipes use (``Recipe.loss``); filled by :func:`register_loss`."""


def register_loss(name: str) -> Callable[[Callable[..., TrainLoss]], Callable[..., TrainLoss]]:
    """Decorator: register a loss factory under ``name`` (names are unique)."""
    def add(factory: Callable[..., TrainLoss]) -> Callable[..., TrainLoss]:
        if name in LOSSES:
            raise ValueError(f"a loss named {name!r} is already registered")
        LOSSES[name] = factory
        return factory
    return add


def ramp(value: float, epoch: float, ramp_epochs: float) -> float:
    """Linear warm-up from 0 to ``value`` over the first ``ramp_epochs`` epochs (constant if ramp_epochs = 0)."""
    return value if ramp_epochs <= 0 else value * min(1.0, (epoch + 1e-9) / ramp_epochs)


def standard_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: float = 0.0) -> torch.Tensor:
    """Cross-entropy on clean inputs."""
    return F.cross_entropy(model(x), y)


@register_loss("standard")
def standard_training() -> TrainLoss:
    """Standard training: :func:`standard_loss` (no parameters)."""
    return standard_loss


def _at_loss(model, x, y, epoch, attack, eps, ramp_epochs, clean_weight):
    eps_now = ramp(eps, epoch, ramp_epochs)
    x_adv = attack(model, x, y, eps_now) if eps_now > 0 else x
    loss = F.cross_entropy(model(x_adv), y)
    if clean_weight > 0:
        loss = (1 - clean_weight) * loss + clean_weight * F.cross_entropy(model(x), y)
    return loss


@register_loss("pgd_at")
def pgd_at_loss(eps: float, steps: int = 7, step_ratio: float = 1 / 6, norm: str = "linf",
                ramp_epochs: float = 3.0, clean_weight: float = 0.0) -> TrainLoss:
    """PGD adversarial training (Madry et al. 2018): cross-entropy at a PGD point with random start.

    Step size = ``step_ratio * eps`` (eps 0.3 -> 0.05); eps and step grow linearly over ``ramp_epochs``.
    ``clean_weight`` in [0, 1) mixes in the clean loss: (1 - w) CE(x_adv) + w CE(x).
    """
    check_eps(eps)
    _check_steps(steps, step_ratio)
    check_unit_interval(clean_weight, "clean_weight", open_high=True)

    def attack(model, x, y, eps_now):
        return pgd(model, x, y, eps_now, alpha=step_ratio * eps_now, steps=steps, norm=norm)

    return partial(_at_loss, attack=attack, eps=eps, ramp_epochs=ramp_epochs, clean_weight=clean_weight)


@register_loss("fgsm_at")
def fgsm_at_loss(eps: float, norm: str = "linf", ramp_epochs: float = 3.0, clean_weight: float = 0.0,
                 random_start: bool = False, step_ratio: float = 1.25) -> TrainLoss:
    """FGSM adversarial training (Goodfellow et al. 2015): cross-entropy at the FGSM point.

    Plain FGSM starts at x and steps to the boundary of the ball. With ``random_start`` it is "FGSM-RS" (Wong et al.
    2020): a uniform start in the ball, then one signed step of ``step_ratio * eps`` projected back, i.e. one-step
    PGD with a random start; the random start is what keeps one-step training from collapsing.
    """
    check_eps(eps)
    check_unit_interval(clean_weight, "clean_weight", open_high=True)
    check_positive(step_ratio, "step_ratio")

    def attack(model, x, y, eps_now):
        if random_start:
            return pgd(model, x, y, eps_now, alpha=step_ratio * eps_now, steps=1, norm=norm)
        return fgsm(model, x, y, eps_now, norm=norm)

    return partial(_at_loss, attack=attack, eps=eps, ramp_epochs=ramp_epochs, clean_weight=clean_weight)


def trades_kl(logits_clean: torch.Tensor, logits_adv: torch.Tensor) -> torch.Tensor:
    """(1/B) sum_i KL( softmax f(x_i) || softmax f(x'_i) ), the TRADES robustness term."""
    return F.kl_div(F.log_softmax(logits_adv, 1), F.log_softmax(logits_clean, 1), reduction="batchmean",
                    log_target=True)


def trades_attack(model: nn.Module, x: torch.Tensor, eps: float, steps: int, step_ratio: float,
                  norm: str = "linf") -> torch.Tensor:
    """TRADES' inner maximization: PGD on KL(p(x) || p(x')) around x (model in eval mode).

    We start from a uniform point of the ball (TRADES starts at x + 0.001 N(0, I)); either start avoids the
    zero gradient of the KL at x' = x.
    """
    with eval_mode(model), torch.no_grad():
        p_clean = F.log_softmax(model(x), 1)

    def kl_sum(logits_adv, _y):
        return F.kl_div(F.log_softmax(logits_adv, 1), p_clean, reduction="sum", log_target=True)

    dummy = torch.zeros(len(x), dtype=torch.long, device=x.device)
    return pgd(model, x, dummy, eps, alpha=step_ratio * eps, steps=steps, norm=norm, loss_fn=kl_sum)


@register_loss("trades")
def trades_loss(eps: float, beta: float, steps: int = 7, step_ratio: float = 1 / 6, norm: str = "linf",
                ramp_epochs: float = 3.0) -> TrainLoss:
    """TRADES (Zhang et al. 2019): CE(f(x), y) + beta * KL(p(x) || p(x_adv)); beta trades accuracy for robustness.

    x_adv maximizes the KL term (not the cross-entropy) inside the ball: see :func:`trades_attack`.
    beta = 0 is standard training (no attack is run).
    """
    check_eps(eps)
    _check_steps(steps, step_ratio)
    if not check_real(beta, "beta") >= 0:
        raise ValueError(f"beta must be >= 0, got {beta}")

    def loss(model, x, y, epoch):
        eps_now = ramp(eps, epoch, ramp_epochs)
        if beta == 0:
            return F.cross_entropy(model(x), y)
        x_adv = trades_attack(model, x, eps_now, steps, step_ratio, norm) if eps_now > 0 else x
        logits = model(x)
        return F.cross_entropy(logits, y) + beta * trades_kl(logits, model(x_adv))

    return loss


@register_loss("gaussian")
def gaussian_loss(sigma: float) -> TrainLoss:
    """Gaussian data augmentation (Cohen et al. 2019): CE(f(x + sigma n), y), fresh n ~ N(0, I) each batch.

    The noise is added in [0, 1] pixel space, before the model's normalization layer, and is not clipped,
    exactly as the smoothed classifier will sample it.
    """
    check_positive(sigma, "sigma")

    def loss(model, x, y, epoch):
        return F.cross_entropy(model(x + sigma * torch.randn_like(x)), y)

    return loss


def _check_steps(steps: int, step_ratio: float) -> None:
    check_steps(steps)
    check_positive(step_ratio, "step_ratio")
