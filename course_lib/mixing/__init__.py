r"""Mixing an accurate and a robust classifier (Bai, Anderson and Sojoudi, L4DC 2024), one module per idea:

- :mod:`.classifier` -- ``h_alpha(x) = log((1 - alpha) softmax g(x) + alpha softmax h(x))`` as a model, and the
  logit-mixing variant;
- :mod:`.margins`    -- probability margins and the statistics of the paper's Table 1;
- :mod:`.certify`    -- certified radii of the mixture: Theorem 4 (Lipschitz h) and Theorem 5 (Gaussian-smoothed
  h), with Monte-Carlo (Hoeffding) bounds on the smoothed probabilities;
- :mod:`.sweep`      -- the alpha sweep under adaptive (MIX), transfer (STD, ROB) and AutoAttack-strength attacks;
- :mod:`.nuts`       -- MixedNUTS (Bai et al., TMLR 2024): the logit transform M_{s,p,c}, the classifier with g at
  zero temperature, Algorithm 1;
- :mod:`.nuts_eval`  -- Algorithm 1's calibration inputs and the honest attack on MixedNUTS (cached evaluations).

Lemma 2 (the margin lemma): for alpha in [1/2, 1], if h keeps a probability margin of at least (1 - alpha) / alpha
for its class y within radius r of x, the mixture predicts y everywhere in that ball:
``(1 - alpha)(g_y - g_i) + alpha (h_y - h_i) >= -(1 - alpha) + alpha (1 - alpha) / alpha = 0``.
"""

from .certify import (certify_mixture, gaussian_lipschitz, hoeffding_bounds, lipschitz_radius, probability_bounds,
                      smoothed_probability_bounds, smoothing_radius)
from .classifier import SPACES, MixedClassifier
from .margins import margin_statistics, margins_and_predictions, probability_margin
from .nuts import CLAMPS, MixedNUTS, algorithm1, argmax_guaranteed, layer_norm_logits, nuts_transform
from .nuts_eval import calibration_split, nuts_correct
from .sweep import alpha_sweep

__all__ = ["CLAMPS", "MixedClassifier", "MixedNUTS", "SPACES", "algorithm1", "alpha_sweep", "argmax_guaranteed",
           "calibration_split", "certify_mixture", "gaussian_lipschitz", "hoeffding_bounds",
           "layer_norm_logits", "lipschitz_radius", "margin_statistics", "margins_and_predictions", "nuts_correct",
           "nuts_transform", "probability_bounds", "probability_margin",
           "smoothed_probability_bounds", "smoothing_radius"]
