r"""The statistics of randomized smoothing: a confidence bound, the certified radius, PREDICT's test.

- :func:`lower_confidence_bound`: one-sided Clopper-Pearson bound on a binomial proportion (Clopper and Pearson 1934);
- :func:`certified_radius`, :func:`radius_from_probabilities`: Theorem 1 of Cohen, Rosenfeld and Kolter (2019);
- :func:`max_certifiable_radius`: the largest radius ``n`` samples can ever certify (a cap of the sample size);
- :func:`predict_pvalue`: PREDICT's two-sided exact binomial test of the top two counts (Proposition 1).

All of them are thin layers over SciPy (``scipy.stats.beta``, ``norm``, ``binomtest``), and the tests check them
against SciPy and statsmodels. Errors: TypeError for wrong types, ValueError for wrong values.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import beta as beta_dist
from scipy.stats import binomtest, norm

from ..checks import check_count, check_positive, check_unit_interval


def check_alpha(alpha: float) -> float:
    """A confidence level in the open interval (0, 1)."""
    return check_unit_interval(alpha, "alpha", open_low=True, open_high=True)


def check_sigma(sigma: float) -> float:
    """A noise level: a positive finite number."""
    return check_positive(sigma, "sigma")


def lower_confidence_bound(n_a: int | np.ndarray, n: int | np.ndarray, alpha: float) -> np.ndarray | float:
    r"""One-sided (1 - alpha) Clopper-Pearson lower bound on a binomial proportion.

    ``p_lower = Beta^-1(alpha; n_a, n - n_a + 1)`` (the alpha-quantile of a Beta distribution), and 0 when
    ``n_a = 0``. With probability >= 1 - alpha over ``n_a ~ Binomial(n, p)``, ``p_lower <= p``
    (Clopper and Pearson 1934). Equals statsmodels' ``proportion_confint(n_a, n, alpha=2*alpha,
    method="beta")[0]`` (the lower end of the two-sided 1 - 2 alpha interval).
    """
    check_alpha(alpha)
    n_a_arr, n_arr = np.asarray(n_a), np.asarray(n)
    if np.any(n_arr < 1) or np.any(n_a_arr < 0) or np.any(n_a_arr > n_arr):
        raise ValueError(f"need 0 <= n_a <= n and n >= 1, got n_a={n_a}, n={n}")
    with np.errstate(invalid="ignore"):
        bound = beta_dist.ppf(alpha, n_a_arr, n_arr - n_a_arr + 1)
    bound = np.where(n_a_arr == 0, 0.0, bound)
    return float(bound) if bound.ndim == 0 else bound


def certified_radius(p_a_lower: float | np.ndarray, sigma: float) -> np.ndarray | float:
    r"""``sigma * Phi^-1(p_A_lower)`` (Cohen et al., Theorem 1 with p_B = 1 - p_A); 0 where ``p_A_lower <= 1/2``.

    ``Phi^-1`` is ``scipy.stats.norm.ppf``. A lower bound of exactly 1 would give an infinite radius; it never
    comes out of :func:`lower_confidence_bound` (which is < 1 for alpha > 0).
    """
    check_sigma(sigma)
    p = np.asarray(p_a_lower, dtype=float)
    if np.any((p < 0) | (p > 1)) or np.any(np.isnan(p)):
        raise ValueError(f"p_a_lower must lie in [0, 1], got {p_a_lower}")
    radius = np.where(p > 0.5, sigma * norm.ppf(np.clip(p, 0.5, 1.0)), 0.0)
    return float(radius) if radius.ndim == 0 else radius


def radius_from_probabilities(p_a: float | np.ndarray, p_b: float | np.ndarray,
                              sigma: float) -> np.ndarray | float:
    r"""The general radius of Theorem 1: ``sigma/2 (Phi^-1(p_A) - Phi^-1(p_B))``, clipped at 0.

    ``p_A`` lower-bounds the top class's probability under noise, ``p_B`` upper-bounds every other class's
    (so ``p_A >= p_B`` is needed for a positive radius). With ``p_B = 1 - p_A`` this is ``sigma Phi^-1(p_A)``.
    """
    check_sigma(sigma)
    pa, pb = np.asarray(p_a, dtype=float), np.asarray(p_b, dtype=float)
    if np.any((pa < 0) | (pa > 1) | (pb < 0) | (pb > 1)):
        raise ValueError("probabilities must lie in [0, 1]")
    with np.errstate(invalid="ignore"):
        radius = np.maximum(0.5 * sigma * (norm.ppf(pa) - norm.ppf(pb)), 0.0)
    radius = np.nan_to_num(radius, nan=0.0)
    return float(radius) if radius.ndim == 0 else radius


def max_certifiable_radius(n: int, alpha: float, sigma: float) -> float:
    r"""The largest radius CERTIFY can return with ``n`` samples: all ``n`` noisy copies in the top class.

    Then ``p_A_lower = alpha^(1/n)`` (the Beta(n, 1) quantile), so ``R_max = sigma Phi^-1(alpha^(1/n))``:
    about 2.46 sigma at n = 1,000 and alpha = 0.001, and it grows only like sqrt(2 log(n / log(1/alpha))).
    """
    check_count(n, "n")
    return float(certified_radius(lower_confidence_bound(n, n, alpha), sigma))


def predict_pvalue(count1: int, count2: int) -> float:
    r"""Two-sided exact binomial test of ``count1 ~ Binomial(count1 + count2, 1/2)`` (PREDICT's abstention test).

    PREDICT answers only if this p-value is <= alpha, and then returns a class other than ``g(x)`` with
    probability at most alpha (Proposition 1 of Cohen et al. 2019). The two counts may be the top two of the
    very samples that ranked them: given ``n_A + n_B``, the count of either of two fixed classes is binomial
    whatever the other classes do, and Hung and Fithian (2019) show that testing the winner against the
    runner-up this way keeps the level.
    """
    if count1 + count2 == 0:
        return 1.0
    return float(binomtest(int(count1), int(count1 + count2), 0.5, alternative="two-sided").pvalue)


# --------------------------------------------------------------------------------------------------------
# The smoothed classifier
