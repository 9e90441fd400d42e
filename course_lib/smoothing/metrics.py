"""Metrics of a certified classifier (Cohen et al. 2019; Zhai et al. 2020).

- (approximate) certified accuracy at radius r: the fraction of test points that CERTIFY classifies correctly
  with a radius >= r (abstentions count as wrong). "Approximate" because CERTIFY's radii hold only with
  probability >= 1 - alpha each, as Cohen et al. say;
- the curve of it over a grid of radii (non-increasing in r by construction);
- ACR, the average certified radius: the mean over ALL test points of radius * 1[correct];
- the abstention rate.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .certify import ABSTAIN


def _metric_arrays(prediction, radius, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = np.asarray(prediction.cpu() if torch.is_tensor(prediction) else prediction).reshape(-1)
    r = np.asarray(radius.cpu() if torch.is_tensor(radius) else radius, dtype=float).reshape(-1)
    y = np.asarray(labels.cpu() if torch.is_tensor(labels) else labels).reshape(-1)
    if not (len(p) == len(r) == len(y)):
        raise ValueError(f"prediction, radius and labels need the same length, got {len(p)}, {len(r)}, {len(y)}")
    if len(p) == 0:
        raise ValueError("no test points given")
    if np.any(np.isnan(r)) or np.any(r < 0):
        raise ValueError("radii must be >= 0 (abstentions have radius 0)")
    return p, r, y


def certified_accuracy(prediction, radius, labels, r: float) -> float:
    """Fraction of points with ``prediction == label`` AND ``radius >= r`` (abstentions count as wrong)."""
    if not (isinstance(r, (int, float, np.floating)) and r >= 0):
        raise ValueError(f"r must be a number >= 0, got {r!r}")
    p, rad, y = _metric_arrays(prediction, radius, labels)
    return float(np.mean((p == y) & (p != ABSTAIN) & (rad >= r)))


def certified_accuracy_curve(prediction, radius, labels, radii: Sequence[float]) -> np.ndarray:
    """Certified accuracy at each radius of the grid ``radii`` (non-increasing in r by construction)."""
    grid = np.asarray(radii, dtype=float).reshape(-1)
    if np.any(np.isnan(grid)) or np.any(grid < 0):
        raise ValueError("radii must be >= 0")
    p, rad, y = _metric_arrays(prediction, radius, labels)
    ok = (p == y) & (p != ABSTAIN)
    return np.array([np.mean(ok & (rad >= r)) for r in grid])


def average_certified_radius(prediction, radius, labels) -> float:
    """ACR (Zhai et al. 2020): mean over ALL points of ``radius * 1[prediction == label]``."""
    p, rad, y = _metric_arrays(prediction, radius, labels)
    return float(np.mean(np.where((p == y) & (p != ABSTAIN), rad, 0.0)))


def abstain_rate(prediction) -> float:
    """Fraction of points where the smoothed classifier abstained."""
    p = np.asarray(prediction.cpu() if torch.is_tensor(prediction) else prediction).reshape(-1)
    if len(p) == 0:
        raise ValueError("no predictions given")
    return float(np.mean(p == ABSTAIN))
