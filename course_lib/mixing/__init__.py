r"""Mixing an accurate and a robust classifier (Bai, Anderson and Sojoudi, L4DC 2024), one module per idea:

- :mod:`.classifier` -- ``h_alpha(x) = log((1 - alpha) softmax g(x) + alpha softmax h(x))`` as a model, and the
  logit-mixing variant;
- :mod:`.margins`    -- probability margins and the statistics of the paper's Table 1;
- :mod:`.certify`    -- certified radii of the mixture: Theorem 4 (Lipschitz h) and Theorem 5 (Gaussian-smoothed
  h), with Monte-Carlo (Hoeffding) bounds on the smoothed probabilities;
- :mod:`.sweep`      -- the alpha sweep under adaptive (MIX), transfer (STD, ROB) and AutoAttack-strength attacks.

Lemma 2 (the margin lemma): for alpha in [1/2, 1], if h keeps a probability margin of at least (1 - alpha) / alpha
for its class y within radius r of x, the mixture predicts y everywhere in that ball:
``(1 - alpha)(g_y - g_i) + alpha (h_y - h_i) >= -(1 - alpha) + alpha (1 - alpha) / alpha = 0``.
"""

from .certify import (certify_mixture, gaussian_lipschitz, hoeffding_bounds, lipschitz_radius,
                      smoothed_probability_bounds, smoothing_radius)
from .classifier import SPACES, MixedClassifier
from .margins import margin_statistics, margins_and_predictions, probability_margin
from .sweep import alpha_sweep

__all__ = ["MixedClassifier", "SPACES", "alpha_sweep", "certify_mixture", "gaussian_lipschitz", "hoeffding_bounds",
           "lipschitz_radius", "margin_statistics", "margins_and_predictions", "probability_margin",
           "smoothed_probability_bounds", "smoothing_radius"]
