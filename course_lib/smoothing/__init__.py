r"""Randomized smoothing (Cohen, Rosenfeld, Kolter 2019): a classifier with a certified l_2 radius.

Given a base classifier ``f`` and a noise level ``sigma``, the *smoothed classifier* is

    g(x) = argmax_c  P_{e ~ N(0, sigma^2 I)} [ f(x + e) = c ].

If the top class has probability at least ``p_A`` under noise and every other class at most ``p_B``, then
``g(x + delta) = g(x)`` for every ``||delta||_2 < sigma/2 (Phi^-1(p_A) - Phi^-1(p_B))`` (Theorem 1 of
Cohen et al.); with ``p_B = 1 - p_A`` the radius is ``sigma Phi^-1(p_A)``. One module per idea:

- :mod:`.stats`    -- Clopper-Pearson bound, radii, the largest certifiable radius, PREDICT's binomial test;
- :mod:`.sampling` -- the Monte-Carlo engine (class counts under noise, batched across inputs, reproducible);
- :mod:`.certify`  -- :class:`Smooth` with PREDICT (Proposition 1) and CERTIFY (Proposition 2) as in the paper;
- :mod:`.metrics`  -- (approximate) certified accuracy, its curve, ACR, abstention rate;
- :mod:`.soft`     -- the soft smoothed classifier ``G`` (expected softmax) and the attack on it (Salman et al. 2019).
"""

from .certify import ABSTAIN, CertifyResult, Smooth, certificate, predict_from_counts
from .metrics import abstain_rate, average_certified_radius, certified_accuracy, certified_accuracy_curve
from .sampling import NOISE_CHUNK, noise_counts, noise_softmax_sums
from .soft import SoftSmoothed, attack_smoothed, noisy_logits, smoothed_softmax
from .stats import (certified_radius, lower_confidence_bound, max_certifiable_radius, predict_pvalue,
                    radius_from_probabilities)

__all__ = ["ABSTAIN", "CertifyResult", "NOISE_CHUNK", "Smooth", "SoftSmoothed", "abstain_rate", "attack_smoothed",
           "average_certified_radius", "certificate", "certified_accuracy", "certified_accuracy_curve",
           "certified_radius", "lower_confidence_bound", "max_certifiable_radius", "noise_counts",
           "noise_softmax_sums", "noisy_logits",
           "predict_from_counts", "predict_pvalue", "radius_from_probabilities", "smoothed_softmax"]
