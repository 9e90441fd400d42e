r"""Certified radii of the mixed classifier from its robust part (Bai, Anderson and Sojoudi 2024, Section 3.1).

Let ``y = argmax_i h_i(x)`` and ``y'`` the runner-up, ``h_i`` the robust model's probabilities, and
``mu = (1 - alpha) / alpha``. By Lemma 2, the mixture keeps class y within radius r if h keeps a margin
``h_y - h_i >= mu`` there. Two ways to guarantee that margin:

- Theorem 4 (every ``h_i`` is ``L``-Lipschitz in some l_p norm):
  ``r = (alpha (h_y - h_y') + alpha - 1) / (2 alpha L) = (h_y - h_y' - mu) / (2 L)``;
- Theorem 5 (h is a Gaussian-smoothed soft classifier ``h_i(x) = E_e[s_i(x + e)]``, ``s_i`` in [0, 1],
  ``e ~ N(0, sigma^2 I)``; l_2): ``r = sigma/2 (Phi^-1(h_y / (1 + mu)) - Phi^-1((h_y' + mu) / (1 + mu)))``.

Both are clipped at 0, and both are 0 for ``alpha <= 1/2`` (then ``mu >= 1``: no margin of a probability is that
large). A Gaussian-smoothed soft classifier is ``sqrt(2/pi) / sigma``-Lipschitz in l_2 (Salman et al. 2019), so
Theorem 4 applies to it too, and Theorem 5 is never smaller: ``Phi^-1`` has slope at least ``sqrt(2 pi)``, so
Theorem 5's radius is at least ``sigma/2 sqrt(2 pi) (h_y - h_y' - mu) / (1 + mu)``, which is at least Theorem 4's
``sigma/2 sqrt(pi/2) (h_y - h_y' - mu)`` because ``1 + mu <= 2`` for ``alpha >= 1/2``.

The smoothed probabilities are estimated by Monte Carlo (:func:`smoothed_probability_bounds`): the class is
chosen on ``n0`` selection draws, and ``n`` fresh draws give Hoeffding bounds (an average of ``n`` independent
[0, 1]-valued softmax entries deviates from its mean by ``t`` with probability at most ``exp(-2 n t^2)``;
Clopper-Pearson is exact only for 0/1 counts, so it does not apply to softmax averages), a lower bound on ``h_y``
and an upper bound on every other ``h_i``, each at level ``alpha_conf / K``; by the union bound all K hold at once
with probability at least ``1 - alpha_conf``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..checks import check_count, check_labels, check_positive, check_unit_interval
from ..data import DataSplit
from ..evaluation import register_evaluation
from ..profiles import Profile
from ..smoothing.sampling import noise_softmax_sums
from ..smoothing.stats import check_alpha, check_sigma, radius_from_probabilities


def _probabilities(p_top, p_runner) -> tuple[np.ndarray, np.ndarray]:
    pt, pr = np.asarray(p_top, dtype=float), np.asarray(p_runner, dtype=float)
    if np.any(np.isnan(pt)) or np.any(np.isnan(pr)) or np.any((pt < 0) | (pt > 1) | (pr < 0) | (pr > 1)):
        raise ValueError("probabilities must lie in [0, 1]")
    return pt, pr


def _out(r: np.ndarray):
    return float(r) if r.ndim == 0 else r


def gaussian_lipschitz(sigma: float) -> float:
    """``sqrt(2/pi) / sigma``: the l_2 Lipschitz constant of each entry of a Gaussian-smoothed [0, 1]-valued
    function (Salman et al. 2019, Lemma 1)."""
    return math.sqrt(2 / math.pi) / check_sigma(sigma)


def lipschitz_radius(p_top, p_runner, alpha: float, lipschitz: float):
    r"""Theorem 4: ``max(0, (alpha (p_top - p_runner) + alpha - 1) / (2 alpha L))``, 0 for ``alpha = 0``.

    ``p_top`` (a lower bound on) h's top probability, ``p_runner`` (an upper bound on) every other class's,
    ``L = lipschitz`` the Lipschitz constant of each ``h_i`` in the norm the radius is measured in."""
    alpha = check_unit_interval(alpha, "alpha")
    lipschitz = check_positive(lipschitz, "lipschitz")
    pt, pr = _probabilities(p_top, p_runner)
    if alpha == 0:
        return _out(np.zeros(np.broadcast(pt, pr).shape))
    return _out(np.maximum(0.0, (alpha * (pt - pr) + alpha - 1) / (2 * alpha * lipschitz)))


def smoothing_radius(p_top, p_runner, alpha: float, sigma: float):
    r"""Theorem 5: ``sigma/2 (Phi^-1(p_top / (1 + mu)) - Phi^-1((p_runner + mu) / (1 + mu)))`` clipped at 0, with
    ``mu = (1 - alpha) / alpha``; 0 for ``alpha <= 1/2``. At ``alpha = 1`` it is Cohen et al.'s Theorem 1
    radius of the soft smoothed classifier (:func:`course_lib.smoothing.radius_from_probabilities`)."""
    alpha = check_unit_interval(alpha, "alpha")
    check_sigma(sigma)
    pt, pr = _probabilities(p_top, p_runner)
    if alpha <= 0.5:
        return _out(np.zeros(np.broadcast(pt, pr).shape))
    mu = (1 - alpha) / alpha
    return radius_from_probabilities(pt / (1 + mu), (pr + mu) / (1 + mu), sigma)


def hoeffding_bounds(mean, n: int, alpha_conf: float) -> tuple[np.ndarray, np.ndarray]:
    r"""One-sided Hoeffding bounds ``mean -/+ sqrt(log(1 / alpha_conf) / (2 n))``, clipped to [0, 1]: each holds
    with probability at least ``1 - alpha_conf`` for the mean of ``n`` independent [0, 1]-valued draws."""
    n = check_count(n, "n")
    check_alpha(alpha_conf)
    m = np.asarray(mean, dtype=float)
    if np.any(np.isnan(m)) or np.any((m < 0) | (m > 1)):
        raise ValueError("means of [0, 1]-valued draws must lie in [0, 1]")
    t = math.sqrt(math.log(1 / alpha_conf) / (2 * n))
    return np.clip(m - t, 0.0, 1.0), np.clip(m + t, 0.0, 1.0)


def smoothed_probability_bounds(base_classifier: nn.Module, x: torch.Tensor, sigma: float, n0: int, n: int,
                                alpha_conf: float, num_classes: int, batch_size: int = 500,
                                generator: torch.Generator | None = None, progress: bool = True) -> dict:
    """Monte-Carlo bounds on the soft smoothed classifier ``h(x) = E_e[softmax f(x + e)]`` at each input: the
    softmax sums of ``n0`` selection and ``n`` estimation draws of ``N(0, sigma^2 I)`` noise
    (:func:`course_lib.smoothing.noise_softmax_sums`), turned into bounds by :func:`probability_bounds`."""
    check_sigma(sigma)
    n0, n = check_count(n0, "n0"), check_count(n, "n")
    check_alpha(alpha_conf)
    k = check_count(num_classes, "num_classes", minimum=2)
    sums = noise_softmax_sums(base_classifier, x, [n0, n], sigma, k, batch_size, generator, progress,
                              desc="soft smoothing")
    return probability_bounds(sums, n, alpha_conf)


def probability_bounds(sums: np.ndarray, n: int, alpha_conf: float) -> dict:
    """The bounds of :func:`smoothed_probability_bounds` from its softmax sums ``B x 2 x K`` (selection, estimation).

    The class ``y_hat`` is the argmax of the selection draws' sum; over the ``n`` estimation draws, ``p_top``
    lower-bounds ``h_{y_hat}`` and ``p_runner`` upper-bounds ``max_{i != y_hat} h_i`` (the larger of the other
    classes' Hoeffding bounds, or ``1 - p_top`` if smaller); jointly valid with probability at least
    ``1 - alpha_conf`` (Hoeffding at ``alpha_conf / K`` per class, union bound). Returns NumPy arrays
    ``prediction``, ``p_top``, ``p_runner``, ``mean`` (the estimation draws' mean softmax, B x K)."""
    sums = np.asarray(sums, dtype=float)
    if sums.ndim != 3 or sums.shape[1] != 2 or sums.shape[2] < 2:
        raise ValueError(f"sums must have shape (inputs, 2, classes >= 2), got {sums.shape}")
    n = check_count(n, "n")
    check_alpha(alpha_conf)
    k = sums.shape[2]
    prediction = sums[:, 0].argmax(1)
    mean = sums[:, 1] / n
    lower, upper = hoeffding_bounds(mean, n, alpha_conf / k)
    rows = np.arange(len(sums))
    p_top = lower[rows, prediction]
    others = upper.copy()
    others[rows, prediction] = -np.inf
    p_runner = np.minimum(others.max(1), 1 - p_top)
    return {"prediction": prediction, "p_top": p_top, "p_runner": p_runner, "mean": mean}


@register_evaluation("soft_smoothing")
def evaluate_soft_smoothing(model: nn.Module, data: DataSplit, profile: Profile, sigma: float, n0: int, n: int,
                            images: int, seed: int = 0, batch_size: int = 500) -> dict:
    """The softmax sums of :func:`smoothed_probability_bounds` on the first ``images`` test images, noise from a CPU
    generator seeded with ``seed``, cached with the model (:func:`course_lib.zoo.evaluate`) so that a chapter
    rebuilds the bounds with :func:`probability_bounds` instead of sampling again on every build.
    Returns ``{"sums": B x 2 x K nested lists, "sigma", "n0", "n", "images", "seed"}``."""
    check_sigma(sigma)
    x = data.x_test[:min(check_count(images, "images"), len(data.x_test))]
    sums = noise_softmax_sums(model, x, [check_count(n0, "n0"), check_count(n, "n")], sigma, data.num_classes,
                              batch_size, torch.Generator().manual_seed(seed), True, desc="soft smoothing")
    return {"sums": np.asarray(sums).tolist(), "sigma": sigma, "n0": n0, "n": n, "images": len(x), "seed": seed}


def certify_mixture(bounds: dict, y: torch.Tensor, alpha: float, sigma: float) -> dict:
    """Certified l_2 radii of the mixture with a Gaussian-smoothed robust model, from
    :func:`smoothed_probability_bounds`: ``lipschitz`` (Theorem 4 with ``L = sqrt(2/pi) / sigma``) and
    ``smoothing`` (Theorem 5), both 0 where h's selected class is not the label ``y`` (the theorems certify h's
    class, so where h is wrong nothing correct is certified), and ``correct`` (h's class is the label)."""
    prediction = np.asarray(bounds["prediction"])
    check_labels(y, len(prediction))
    correct = prediction == y.cpu().numpy()
    lip = lipschitz_radius(bounds["p_top"], bounds["p_runner"], alpha, gaussian_lipschitz(sigma))
    smo = smoothing_radius(bounds["p_top"], bounds["p_runner"], alpha, sigma)
    return {"correct": correct, "lipschitz": np.where(correct, lip, 0.0), "smoothing": np.where(correct, smo, 0.0)}


__all__ = ["certify_mixture", "gaussian_lipschitz", "hoeffding_bounds", "lipschitz_radius", "probability_bounds",
           "smoothed_probability_bounds", "smoothing_radius"]
