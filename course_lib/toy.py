"""A 2-D toy problem for the geometry of randomized smoothing: data, a tiny MLP, decision-region grids.

- :func:`make_moons`, :func:`make_spirals`, :func:`make_blobs`: seeded 2-D data sets (NumPy only).
- :func:`train_mlp`: a tiny MLP (2 -> hidden -> hidden -> K) trained by the course's training loop, optionally on
  Gaussian-noise augmented points (the training recipe of Cohen et al. 2019, in 2-D). Its accuracy is
  ``course_lib.evaluation.accuracy(model, x, y, domain=None)``.
- :func:`grid`, :func:`base_regions`, :func:`smoothed_regions`: evaluate the base classifier ``f`` and the
  smoothed classifier ``g`` (:class:`course_lib.smoothing.Smooth`, with ``domain=None`` since the toy inputs
  are not images) on a regular grid, for pictures of decision regions and certified radii.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .checks import check_labels, check_real, check_tensor
from .device import get_device, model_device
from .models import mlp
from .smoothing import Smooth, radius_from_probabilities
from .training import gaussian_loss, standard_loss, train


# ------------------------------------------------------------------------------------------ data
def _check_n(n: int, k: int) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < k:
        raise ValueError(f"n must be an integer >= {k}, got {n!r}")


def _check_noise(noise: float) -> None:
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")


def _as_tensors(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    order = rng.permutation(len(y))
    return torch.as_tensor(x[order], dtype=torch.float32), torch.as_tensor(y[order], dtype=torch.long)


def make_moons(n: int = 400, noise: float = 0.15, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved half circles (classes 0 and 1), ``n`` points (n // 2 per class), Gaussian jitter ``noise``."""
    _check_n(n, 2)
    _check_noise(noise)
    rng = np.random.default_rng(seed)
    n0 = n // 2
    t0, t1 = np.pi * rng.random(n0), np.pi * rng.random(n - n0)
    upper = np.stack([np.cos(t0), np.sin(t0)], 1)
    lower = np.stack([1 - np.cos(t1), 0.5 - np.sin(t1)], 1)
    x = np.concatenate([upper, lower]) + noise * rng.standard_normal((n, 2))
    y = np.concatenate([np.zeros(n0, int), np.ones(n - n0, int)])
    return _as_tensors(x, y, rng)


def make_spirals(n: int = 600, classes: int = 3, noise: float = 0.1, turns: float = 1.0,
                 seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``classes`` interleaved spiral arms in the unit disc (radius 0.1 .. 1), ``n`` points in total."""
    _check_n(n, classes)
    _check_noise(noise)
    if classes < 2:
        raise ValueError(f"classes must be >= 2, got {classes}")
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    r = 0.1 + 0.9 * rng.random(n)
    angle = 2 * np.pi * (turns * r + y / classes)
    x = np.stack([r * np.cos(angle), r * np.sin(angle)], 1) + noise * rng.standard_normal((n, 2))
    return _as_tensors(x, y, rng)


def make_blobs(n: int = 300, classes: int = 3, spread: float = 0.5, radius: float = 1.5,
               seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``classes`` isotropic Gaussian blobs (std ``spread``) centred on a circle of the given radius."""
    _check_n(n, classes)
    _check_noise(spread)
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centres = radius * np.stack([np.cos(2 * np.pi * np.arange(classes) / classes),
                                 np.sin(2 * np.pi * np.arange(classes) / classes)], 1)
    x = centres[y] + spread * rng.standard_normal((n, 2))
    return _as_tensors(x, y, rng)


# ------------------------------------------------------------------------------------------ the tiny MLP
def train_mlp(x: torch.Tensor, y: torch.Tensor, hidden: int = 64, epochs: int = 300, lr: float = 1e-2,
              noise_sigma: float = 0.0, batch_size: int = 128, seed: int = 0) -> nn.Sequential:
    """A tiny MLP (2 -> hidden -> hidden -> K, :func:`course_lib.models.mlp`) trained on ``(x, y)`` by the course's
    one training loop with Adam and cross-entropy; returns the model in eval mode.

    With ``noise_sigma > 0`` every batch is replaced by ``x + N(0, noise_sigma^2 I)`` (fresh noise each step),
    the Gaussian-augmentation training of Cohen et al. (2019).
    """
    check_tensor(x, "x", dim=2)
    if x.shape[1] != 2:
        raise ValueError(f"x must be N x 2 (points in the plane), got {tuple(x.shape)}")
    check_labels(y, len(x))
    if not check_real(noise_sigma, "noise_sigma") >= 0:
        raise ValueError(f"noise_sigma must be >= 0, got {noise_sigma}")
    torch.manual_seed(seed)
    model = mlp(2, int(y.max()) + 1, hidden).to(get_device())
    loss = gaussian_loss(noise_sigma) if noise_sigma > 0 else standard_loss
    train(model, x, y, loss, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, domain=None, desc=None)
    return model


class HalfSpace(nn.Module):
    r"""The linear classifier ``f(z) = 0 if w^T z <= b else 1`` (the worst case of the smoothing proof).

    Under ``z ~ N(x, sigma^2 I)``, ``w^T z ~ N(w^T x, sigma^2 ||w||^2)``, so its class probabilities are known
    exactly: ``P(f(z) = 0) = Phi((b - w^T x) / (sigma ||w||))`` (:meth:`probability`). Works on inputs of any
    shape (flattened); handy for checking Monte-Carlo certificates against the truth.
    """

    def __init__(self, w: torch.Tensor, b: float):
        super().__init__()
        w = torch.as_tensor(w, dtype=torch.float32).flatten()
        if not torch.isfinite(w).all() or w.norm() == 0:
            raise ValueError("w must be a finite, non-zero vector")
        self.register_buffer("w", w)
        self.b = float(b)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        score = z.flatten(1) @ self.w - self.b
        return torch.stack([-score, score], dim=1)

    def probability(self, x: torch.Tensor, sigma: float) -> np.ndarray:
        """Exact ``P(f(x + e) = 0)``, ``e ~ N(0, sigma^2 I)``, for each input of the batch ``x``."""
        from scipy.stats import norm

        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        margin = (self.b - x.flatten(1).to(self.w) @ self.w) / (sigma * self.w.norm())
        return norm.cdf(margin.cpu().numpy())


# ------------------------------------------------------------------------------------------ grids
@dataclass(frozen=True)
class Grid:
    """A ``steps x steps`` grid over ``xlim x ylim``: ``points`` (steps^2 x 2, row-major over ``yy, xx``)."""

    xx: np.ndarray
    yy: np.ndarray
    points: torch.Tensor

    @property
    def shape(self) -> tuple[int, int]:
        return self.xx.shape

    def reshape(self, values) -> np.ndarray:
        """Per-point values (length steps^2) as a ``steps x steps`` image for ``contourf``/``pcolormesh``."""
        arr = np.asarray(values.cpu() if torch.is_tensor(values) else values)
        return arr.reshape(self.xx.shape)


def grid(xlim: tuple[float, float], ylim: tuple[float, float], steps: int = 100) -> Grid:
    """A regular grid of ``steps x steps`` points covering ``xlim x ylim``."""
    if steps < 2 or not (xlim[0] < xlim[1] and ylim[0] < ylim[1]):
        raise ValueError(f"need steps >= 2 and increasing limits, got {steps}, {xlim}, {ylim}")
    xx, yy = np.meshgrid(np.linspace(*xlim, steps), np.linspace(*ylim, steps))
    points = torch.as_tensor(np.stack([xx.ravel(), yy.ravel()], 1), dtype=torch.float32)
    return Grid(xx, yy, points)


def data_limits(x: torch.Tensor, margin: float = 0.5) -> tuple[tuple[float, float], tuple[float, float]]:
    """Axis limits covering the data plus a margin."""
    lo, hi = x.min(0).values.tolist(), x.max(0).values.tolist()
    return (lo[0] - margin, hi[0] + margin), (lo[1] - margin, hi[1] + margin)


@torch.no_grad()
def base_regions(model: nn.Module, g: Grid) -> np.ndarray:
    """The base classifier's label at every grid point (a ``steps x steps`` integer array)."""
    model.eval()
    return g.reshape(model(g.points.to(model_device(model))).argmax(1).cpu())


@dataclass(frozen=True)
class SmoothedRegions:
    """The smoothed classifier on a grid: Monte-Carlo class frequencies and what they imply.

    ``probs`` (steps x steps x K) estimate ``P(f(x + e) = c)``; ``label`` is their argmax (g's decision,
    no abstention); ``radius`` is the plug-in radius ``sigma/2 (Phi^-1(p_A) - Phi^-1(p_B))`` of the
    estimated top two probabilities (an estimate for pictures, NOT a certificate: use CERTIFY for that).
    """

    probs: np.ndarray
    label: np.ndarray
    radius: np.ndarray
    sigma: float
    n: int


def smoothed_regions(model: nn.Module, g: Grid, sigma: float, n: int = 200, batch_size: int = 20_000,
                     generator: torch.Generator | None = None) -> SmoothedRegions:
    """Estimate the smoothed classifier at every grid point from ``n`` noise samples per point."""
    k = int(model(g.points[:1].to(model_device(model))).shape[1])
    smooth = Smooth(model, k, sigma, domain=None, progress=False)
    counts = smooth.sample_noise_batch(g.points, n, batch_size=batch_size, generator=generator)
    probs = counts / n
    top2 = np.sort(probs, axis=1)[:, ::-1][:, :2]
    # clip the plug-in estimates away from 0 and 1 so the picture shows finite radii
    eps = 0.5 / n
    radius = radius_from_probabilities(np.clip(top2[:, 0], eps, 1 - eps), np.clip(top2[:, 1], eps, 1 - eps), sigma)
    return SmoothedRegions(probs=probs.reshape(*g.shape, k), label=g.reshape(probs.argmax(1)),
                           radius=g.reshape(radius), sigma=float(sigma), n=int(n))
