r"""The smoothed classifier and Cohen, Rosenfeld and Kolter's (2019) PREDICT and CERTIFY.

    g(x) = argmax_c  P_{e ~ N(0, sigma^2 I)} [ f(x + e) = c ].

``g`` cannot be evaluated exactly; :class:`Smooth` implements the paper's Monte-Carlo procedures, one method each:

- ``predict(x, n, alpha)``: the top class of ``n`` noisy samples, or :data:`ABSTAIN` if the two-sided exact
  binomial test of the top two counts cannot tell them apart at level ``alpha``. Proposition 1 of Cohen et al.:
  it returns a class other than ``g(x)`` with probability at most ``alpha``. (Testing the top two counts of the
  *same* samples that chose them is valid because the test is conditional on ``n_A + n_B``; Hung and Fithian 2019.)
- ``certify(x, n0, n, alpha)``: choose the class on ``n0`` draws, count it among ``n`` *fresh* draws, take the
  one-sided (1 - alpha) Clopper-Pearson lower bound ``p_A_lower`` and return the radius ``sigma Phi^-1(p_A_lower)``,
  abstaining if ``p_A_lower < 1/2``. Proposition 2: with probability >= 1 - alpha a returned radius is valid.

Noise is added in [0, 1] pixel space, *before* the model's own normalization layer, so radii are in pixel units.
``certify_batch`` certifies many inputs at once; their noisy copies share forward batches and the counts equal
those of certifying one input at a time with the same generator (:mod:`.sampling`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..checks import Domain, IMAGE_DOMAIN, check_count, check_tensor
from ..data import DataSplit
from ..device import model_device
from ..evaluation import register_evaluation
from ..profiles import Profile
from .sampling import is_channels_last, noise_counts
from .stats import certified_radius, check_alpha, check_sigma, lower_confidence_bound, predict_pvalue

ABSTAIN = -1
"""The label returned by :meth:`Smooth.predict` / :meth:`Smooth.certify` when they abstain."""


@dataclass(frozen=True)
class CertifyResult:
    """Output of :meth:`Smooth.certify_batch` (one entry per input; NumPy arrays).

    ``prediction`` (:data:`ABSTAIN` = -1 when abstaining), ``radius`` (0 when abstaining), ``p_a_lower``,
    ``counts0`` (selection draw, B x K), ``counts`` (estimation draw, B x K), ``n_a`` (``counts`` at the class
    chosen on ``counts0``), and the settings ``sigma, n0, n, alpha``.
    """

    prediction: np.ndarray
    radius: np.ndarray
    p_a_lower: np.ndarray
    counts0: np.ndarray
    counts: np.ndarray
    n_a: np.ndarray
    sigma: float
    n0: int
    n: int
    alpha: float

    def __len__(self) -> int:
        return len(self.prediction)

    @property
    def abstained(self) -> np.ndarray:
        return self.prediction == ABSTAIN

    def at_alpha(self, alpha: float) -> "CertifyResult":
        """What CERTIFY returns on the SAME noise draws at another confidence level ``alpha``.

        The counts do not depend on alpha; only the bound, the radius and the abstentions do. (Each alpha's
        guarantee holds on its own; choosing alpha after looking at the results voids it.)
        """
        return certificate(self.counts0, self.counts, self.sigma, self.n0, self.n, check_alpha(alpha))


def certificate(counts0: np.ndarray, counts: np.ndarray, sigma: float, n0: int, n: int,
                alpha: float) -> CertifyResult:
    """CERTIFY's decision from the two draws' counts: c_A on ``counts0``, the bound and the radius on ``counts``."""
    c_a = counts0.argmax(axis=1)  # c_A <- top index in counts0
    n_a = counts[np.arange(len(c_a)), c_a]
    p_lower = np.asarray(lower_confidence_bound(n_a, n, alpha), dtype=float).reshape(-1)
    abstain = p_lower < 0.5  # if p_A_lower < 1/2: abstain
    radius = np.where(abstain, 0.0, certified_radius(np.where(abstain, 0.5, p_lower), sigma))
    prediction = np.where(abstain, ABSTAIN, c_a).astype(np.int64)
    return CertifyResult(prediction=prediction, radius=np.asarray(radius, dtype=float).reshape(-1),
                         p_a_lower=p_lower, counts0=counts0, counts=counts, n_a=n_a, sigma=sigma,
                         n0=n0, n=n, alpha=alpha)


def predict_from_counts(counts: np.ndarray, alpha: float) -> int:
    """PREDICT's decision from one input's counts: the top class, unless the top two are not told apart."""
    order = np.argsort(-counts, kind="stable")
    c_a, c_b = int(order[0]), int(order[1])  # the top two classes
    return ABSTAIN if predict_pvalue(counts[c_a], counts[c_b]) > alpha else c_a


class Smooth:
    r"""The smoothed classifier ``g`` of a base classifier ``f`` at noise level ``sigma`` (Cohen et al. 2019).

    ``base_classifier`` maps a batch ``B x *input_shape`` to logits ``B x num_classes`` (normalization inside);
    ``sigma`` is in the units of the input (pixels in [0, 1] for images). ``domain`` is the box inputs must lie in
    (default ``(0, 1)``; ``None`` for the 2-D toy problem); ``input_shape``, if given, is the shape of ONE input and
    is checked. ``progress`` shows a tqdm bar over noise samples. The device is the model's. ``batch_size`` (noisy
    samples per forward pass, default 100) bounds memory; for the Small CNN on a 2-core CPU batches of 50-150 ran at
    about 17-19k samples/s and batches of 200 or more at about 10k; on a GPU use thousands.
    """

    ABSTAIN = ABSTAIN

    def __init__(self, base_classifier: nn.Module, num_classes: int, sigma: float, *,
                 domain: Domain = IMAGE_DOMAIN, input_shape: Sequence[int] | None = None, progress: bool = True):
        if not isinstance(base_classifier, nn.Module):
            raise TypeError(f"base_classifier must be a torch.nn.Module, got {type(base_classifier).__name__}")
        check_count(num_classes, "num_classes", minimum=2)
        if domain is not None and not (len(domain) == 2 and domain[0] < domain[1]):
            raise ValueError(f"domain must be None or (low, high) with low < high, got {domain!r}")
        self.base_classifier, self.num_classes, self.sigma = base_classifier, int(num_classes), check_sigma(sigma)
        self.domain = None if domain is None else (float(domain[0]), float(domain[1]))
        self.input_shape = None if input_shape is None else tuple(int(s) for s in input_shape)
        self.progress = progress

    @property
    def device(self) -> torch.device:
        return model_device(self.base_classifier)

    @property
    def channels_last(self) -> bool:
        return is_channels_last(self.base_classifier)

    def __repr__(self) -> str:
        return f"Smooth(sigma={self.sigma:g}, num_classes={self.num_classes}, domain={self.domain}, device={self.device})"

    # ---------------------------------------------------------------- Cohen et al.'s procedures
    def predict(self, x: torch.Tensor, n: int, alpha: float, batch_size: int = 100,
                generator: torch.Generator | None = None) -> int:
        """PREDICT one input: the top class of ``n`` noisy samples, or :data:`ABSTAIN`.

        Abstains when the two-sided exact binomial test of ``n_A ~ Bin(n_A + n_B, 1/2)`` (the top two counts) has
        p-value > alpha; returns a class other than g(x) with probability at most alpha (Proposition 1).
        """
        n, alpha = check_count(n, "n"), check_alpha(alpha)
        counts = self.sample_noise(x, n, batch_size, generator)  # counts <- SampleUnderNoise(f, x, n, sigma)
        return predict_from_counts(counts, alpha)

    def certify(self, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int = 100,
                generator: torch.Generator | None = None) -> tuple[int, float]:
        """CERTIFY one input: ``(c_A, radius)``, or ``(ABSTAIN, 0.0)``.

        ``c_A`` = top class of ``n0`` selection samples; ``n_A`` = its count among ``n`` fresh samples;
        ``p_A_lower`` = one-sided (1 - alpha) Clopper-Pearson bound; abstain if ``p_A_lower < 1/2``, else radius
        ``sigma Phi^-1(p_A_lower)``. With probability >= 1 - alpha, if it does not abstain then ``g(x + delta) =
        c_A`` for all ``||delta||_2 < radius`` (Proposition 2).
        """
        self._check_x(x, batched=False)
        result = self.certify_batch(x.unsqueeze(0), n0, n, alpha, batch_size, generator)
        return int(result.prediction[0]), float(result.radius[0])

    # ---------------------------------------------------------------- the same, for a batch of inputs
    def predict_batch(self, x: torch.Tensor, n: int, alpha: float, batch_size: int = 100,
                      generator: torch.Generator | None = None) -> np.ndarray:
        """:meth:`predict` for every input of the batch ``x``; same results as a loop with the same generator."""
        n, alpha = check_count(n, "n"), check_alpha(alpha)
        counts = self.sample_noise_batch(x, n, batch_size, generator)
        return np.array([predict_from_counts(c, alpha) for c in counts], dtype=np.int64)

    def certify_batch(self, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int = 100,
                      generator: torch.Generator | None = None) -> CertifyResult:
        """CERTIFY every input of the batch ``x`` (selection draw of ``n0``, then a fresh estimation draw of ``n``)."""
        n0, n, alpha = check_count(n0, "n0"), check_count(n, "n"), check_alpha(alpha)
        self._check_x(x, batched=True)
        counts = self._counts(x, [n0, n], batch_size, generator, "certifying")
        return certificate(counts[:, 0], counts[:, 1], self.sigma, n0, n, alpha)

    def sample_noise(self, x: torch.Tensor, num: int, batch_size: int = 100,
                     generator: torch.Generator | None = None) -> np.ndarray:
        """Class counts (length K) of ``f(x + e)`` over ``num`` draws ``e ~ N(0, sigma^2 I)``; ``x`` is ONE input."""
        self._check_x(x, batched=False)
        return self._counts(x.unsqueeze(0), [check_count(num, "num")], batch_size, generator, "sampling")[0, 0]

    def sample_noise_batch(self, x: torch.Tensor, num: int, batch_size: int = 100,
                           generator: torch.Generator | None = None) -> np.ndarray:
        """Counts ``B x K``: :meth:`sample_noise` for each input of the batch ``x`` (same random stream)."""
        self._check_x(x, batched=True)
        return self._counts(x, [check_count(num, "num")], batch_size, generator, "sampling")[:, 0]

    # ---------------------------------------------------------------- plumbing
    def _counts(self, x: torch.Tensor, nums: list[int], batch_size: int, generator: torch.Generator | None,
                desc: str) -> np.ndarray:
        return noise_counts(self.base_classifier, x, nums, self.sigma, self.num_classes, batch_size, generator,
                            self.progress, desc)

    def _check_x(self, x: torch.Tensor, batched: bool) -> None:
        check_tensor(x, "x")
        try:
            check_tensor(x, "x", self.domain)
        except ValueError as err:
            raise ValueError(f"{err}. Noise is added in pixel space; for inputs that are not images, "
                             f"pass domain=None.") from None
        if batched and (x.dim() < 2 or x.shape[0] < 1):
            raise ValueError(f"expected a batch of inputs (B x ...), got shape {tuple(x.shape)}")
        if not batched and x.dim() < 1:
            raise ValueError("expected one input (e.g. C x H x W), got a scalar")
        one = tuple(x.shape[1:]) if batched else tuple(x.shape)
        if self.input_shape is not None and one != self.input_shape:
            hint = "certify/predict for a single input" if batched else "certify_batch/predict_batch for a batch"
            raise ValueError(f"each input must have shape {self.input_shape}, got {one} (use {hint}?)")


def certify_setup(model: nn.Module, data: DataSplit, profile: Profile, sigma: float, n: int | None, n0: int | None,
                  images: int | None) -> tuple["Smooth", torch.Tensor, torch.Tensor, int, int, int]:
    """The smoothed classifier and the first ``images`` test images of a certification evaluation, with n, n0 and
    images defaulting to the profile's smoothing sizes: ``(smooth, x, y, n, n0, images)``."""
    s = profile.smoothing
    n, n0 = check_count(n if n is not None else s.n, "n"), check_count(n0 if n0 is not None else s.n0, "n0")
    images = min(check_count(images if images is not None else s.images, "images"), len(data.x_test))
    x, y = data.x_test[:images], data.y_test[:images]
    return Smooth(model, data.num_classes, sigma, input_shape=x.shape[1:]), x, y, n, n0, images


@register_evaluation("certify")
def evaluate_certify(model: nn.Module, data: DataSplit, profile: Profile, sigma: float, n: int | None = None,
                     n0: int | None = None, alpha: float = 0.001, images: int | None = None,
                     seed: int = 0) -> dict:
    """CERTIFY (:meth:`Smooth.certify_batch`) on the first ``images`` test images (default: the profile's smoothing
    sizes), noise from a CPU generator seeded with ``seed``. Records the class counts of both draws (lists), the
    labels, the settings and the seconds it took, so that a chapter reads a costly certification from the cache
    (:func:`course_lib.zoo.evaluate`) and rebuilds the :class:`CertifyResult` with :func:`certificate`."""
    smooth, x, y, n, n0, images = certify_setup(model, data, profile, sigma, n, n0, images)
    start = time.perf_counter()
    result = smooth.certify_batch(x, n0, n, alpha, generator=torch.Generator().manual_seed(seed))
    return {"sigma": sigma, "n": n, "n0": n0, "alpha": alpha, "images": images, "seed": seed,
            "seconds": time.perf_counter() - start, "labels": y.tolist(),
            "counts0": result.counts0.tolist(), "counts": result.counts.tolist()}
