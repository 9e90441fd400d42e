r"""The soft smoothed classifier: the expected softmax under Gaussian noise, differentiable, and attacks on it.

    G(x) = E_{e ~ N(0, sigma^2 I)} [ softmax f(x + e) ]  ~  (1/m) sum_j softmax f(x + e_j).

Salman et al. (2019) attack the smoothed classifier through ``G`` (SmoothAdv), and SmoothMix (Jeong et al. 2021)
trains on it. :func:`smoothed_softmax` takes the noise as an argument, so that one draw can be shared, e.g. by
SmoothMix's attack and its loss; :class:`SoftSmoothed` draws fresh noise on every call and returns ``log G``, so
every attack of :mod:`course_lib.attacks` applies to it unchanged.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import pgd
from ..checks import check_count, check_tensor
from .sampling import is_channels_last
from .stats import check_sigma


def noisy_logits(model: nn.Module, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The logits ``f(x_b + noise[b, j])`` of all noisy copies, ``(B * m) x K``, the m copies of input b together.

    ``x`` is ``B x *shape``; ``noise`` is ``B x m x *shape`` (already scaled by sigma). Noisy inputs are not
    clipped (as the smoothed classifier samples them); images keep the model's memory format.
    """
    check_tensor(x, "x")
    check_tensor(noise, "noise")
    if noise.dim() != x.dim() + 1 or noise.shape[0] != x.shape[0] or noise.shape[2:] != x.shape[1:]:
        raise ValueError(f"noise must have shape B x m x {tuple(x.shape[1:])} for x of shape {tuple(x.shape)}, "
                         f"got {tuple(noise.shape)}")
    noisy = (x.unsqueeze(1) + noise).flatten(0, 1)
    if is_channels_last(model) and noisy.dim() == 4:
        noisy = noisy.contiguous(memory_format=torch.channels_last)
    return model(noisy)


def smoothed_softmax(model: nn.Module, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``(1/m) sum_j softmax f(x_b + noise[b, j])`` for each input b: probabilities ``B x K``.

    ``x`` is ``B x *shape``; ``noise`` is ``B x m x *shape`` (already scaled by sigma), see :func:`noisy_logits`.
    Differentiable in ``x`` and in the model's parameters.
    """
    logits = noisy_logits(model, x, noise)
    return F.softmax(logits, dim=1).view(x.shape[0], noise.shape[1], -1).mean(dim=1)


class SoftSmoothed(nn.Module):
    r"""``log G(x)`` with ``m`` fresh draws ``e_j ~ N(0, sigma^2 I)`` per call (from ``generator`` if given).

    The output is a log-probability vector, so the usual cross-entropy attack on this module maximizes
    ``-log G_y(x)``: the attack of Salman et al. (2019) on the smoothed classifier.
    """

    def __init__(self, base_classifier: nn.Module, sigma: float, m: int = 32,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.base_classifier = base_classifier
        self.sigma, self.m, self.generator = check_sigma(sigma), check_count(m, "m"), generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = self.generator.device if self.generator is not None else x.device
        noise = torch.randn((x.shape[0] * self.m, *x.shape[1:]), generator=self.generator, device=device)
        noise = self.sigma * noise.to(x.device).view(x.shape[0], self.m, *x.shape[1:])
        return torch.log(smoothed_softmax(self.base_classifier, x, noise).clamp_min(1e-20))


def attack_smoothed(base_classifier: nn.Module, sigma: float, x: torch.Tensor, y: torch.Tensor,
                    eps: float | Sequence[float] | np.ndarray, m: int = 32, steps: int = 20,
                    step_size: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""l_2 PGD on the soft smoothed classifier (Salman et al. 2019): maximize ``-log G_y(x')``.

    ``||x' - x||_2 <= eps`` (a number, or one radius per image, e.g. each image's certified radius), and
    ``x'`` in [0, 1]. ``m`` noise draws per step (fresh each step). Uses :func:`course_lib.attacks.pgd`.
    """
    check_sigma(sigma)
    eps_arr = np.broadcast_to(np.asarray(eps, dtype=float), (x.shape[0],))
    if np.any(np.isnan(eps_arr)) or np.any(eps_arr < 0):
        raise ValueError(f"eps must be >= 0, got {eps}")
    surrogate = SoftSmoothed(base_classifier, sigma, m, generator)
    out = x.detach().clone()
    for value in np.unique(eps_arr[eps_arr > 0]):  # images sharing a radius are attacked as one batch
        idx = torch.as_tensor(np.flatnonzero(eps_arr == value), device=x.device)
        alpha = step_size if step_size is not None else 2.5 * float(value) / steps
        out[idx] = pgd(surrogate, x[idx], y[idx], float(value), alpha=alpha, steps=steps, norm="l2",
                       random_start=False, generator=generator)
    return out
