r"""Randomized smoothing (Cohen, Rosenfeld, Kolter 2019): a classifier with a certified l_2 radius.

Given a base classifier ``f`` and a noise level ``sigma``, the *smoothed classifier* is

    g(x) = argmax_c  P_{e ~ N(0, sigma^2 I)} [ f(x + e) = c ].

If the top class has probability at least ``p_A`` under noise and every other class at most ``p_B``, then
``g(x + delta) = g(x)`` for every ``||delta||_2 < sigma/2 (Phi^-1(p_A) - Phi^-1(p_B))`` (Theorem 1 of
Cohen et al.); with ``p_B = 1 - p_A`` the radius is ``sigma Phi^-1(p_A)``. ``g`` cannot be evaluated exactly;
:class:`Smooth` implements the paper's Monte-Carlo procedures:

- ``sample_noise(x, num)``: class counts of ``f(x + e)`` over ``num`` noise draws;
- ``predict(x, n, alpha)``: the top class, or :data:`ABSTAIN` if a two-sided exact binomial test cannot tell
  the top two classes apart at level ``alpha`` (Cohen et al., Theorem 2: wrong with probability <= alpha);
- ``certify(x, n0, n, alpha)``: choose the class on ``n0`` draws, estimate its probability on ``n`` *fresh*
  draws, take the one-sided (1 - alpha) Clopper-Pearson lower bound ``p_A_lower`` (Clopper and Pearson 1934)
  and return the radius ``sigma Phi^-1(p_A_lower)``, abstaining if ``p_A_lower < 1/2`` (Proposition 2: with
  probability >= 1 - alpha the returned radius is valid).

Noise is added in [0, 1] pixel space, *before* the model's own normalization layer, so radii are in pixel
units. Many images are certified together by :meth:`Smooth.certify_batch`: their noisy copies share forward
batches (memory bounded by ``batch_size``) under ``torch.inference_mode``.

Reproducibility. Noise is drawn image after image (for each image its ``n0`` selection draw, then its ``n``
estimation draw), each draw in chunks of :attr:`Smooth.noise_chunk` samples, whatever ``batch_size`` is and
however many images are certified together; the forward batches are then packed from that stream. Hence
``certify_batch`` on a stack of images gives exactly the counts of certifying them one by one with the same
``torch.Generator`` (and the same counts for any ``batch_size``), up to floating-point ties in the model's
logits, which a different batch composition could in principle break differently.

Metrics (Cohen et al. 2019; Zhai et al. 2020): certified accuracy at radius r = fraction of test points
that are correct AND certified with radius >= r (abstentions count as wrong); the average certified radius
ACR = mean over ALL test points of radius * 1[correct].
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import beta as beta_dist
from scipy.stats import binomtest, norm
from torch import nn
from tqdm.auto import tqdm

from .device import model_device

ABSTAIN = -1
"""The label returned by :meth:`Smooth.predict` / :meth:`Smooth.certify` when they abstain."""

Domain = tuple[float, float] | None


# --------------------------------------------------------------------------------------------------------
# Statistics: the bound, the radius, the largest radius a sample size can certify
# --------------------------------------------------------------------------------------------------------
def _check_alpha(alpha: float) -> None:
    if not (isinstance(alpha, (int, float)) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha must lie in the open interval (0, 1), got {alpha!r}")


def _check_sigma(sigma: float) -> None:
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive finite number, got {sigma!r}")


def _check_count(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def lower_confidence_bound(n_a: int | np.ndarray, n: int | np.ndarray, alpha: float) -> np.ndarray | float:
    r"""One-sided (1 - alpha) Clopper-Pearson lower bound on a binomial proportion.

    ``p_lower = Beta^-1(alpha; n_a, n - n_a + 1)`` (the alpha-quantile of a Beta distribution), and 0 when
    ``n_a = 0``. With probability >= 1 - alpha over ``n_a ~ Binomial(n, p)``, ``p_lower <= p``
    (Clopper and Pearson 1934). Equals statsmodels' ``proportion_confint(n_a, n, alpha=2*alpha,
    method="beta")[0]`` (the lower end of the two-sided 1 - 2 alpha interval).
    """
    _check_alpha(alpha)
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
    _check_sigma(sigma)
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
    _check_sigma(sigma)
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
    _check_count(n, "n")
    return float(certified_radius(lower_confidence_bound(n, n, alpha), sigma))


def predict_pvalue(count1: int, count2: int) -> float:
    """Two-sided exact binomial test of ``count1 ~ Binomial(count1 + count2, 1/2)`` (PREDICT's abstention test)."""
    if count1 + count2 == 0:
        return 1.0
    return float(binomtest(int(count1), int(count1 + count2), 0.5, alternative="two-sided").pvalue)


# --------------------------------------------------------------------------------------------------------
# The smoothed classifier
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CertifyResult:
    """Output of :meth:`Smooth.certify_batch` (one entry per image; NumPy arrays).

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
        _check_alpha(alpha)
        return _certificate(self.counts0, self.counts, self.sigma, self.n0, self.n, float(alpha))


def _is_channels_last(model: nn.Module) -> bool:
    """True if some 4-D parameter is stored channels_last (and not also plain contiguous)."""
    for p in model.parameters():
        if p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous():
            return True
    return False


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    modes = [m.training for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, mode in zip(model.modules(), modes):
            module.training = mode


class Smooth:
    r"""The smoothed classifier ``g`` of a base classifier ``f`` at noise level ``sigma`` (Cohen et al. 2019).

    Parameters
    ----------
    base_classifier:
        Maps a batch ``B x *input_shape`` to logits ``B x num_classes`` (normalization inside).
    num_classes:
        Number of classes K.
    sigma:
        Noise standard deviation, in the units of the input (pixel units in [0, 1] for images).
    domain:
        ``(low, high)``: inputs must lie in this box (default ``(0, 1)``, images); ``None`` disables the
        check (e.g. the 2-D toy problem of :mod:`course_lib.toy`).
    input_shape:
        The shape of ONE input (e.g. ``(1, 28, 28)``); if given, shapes are checked against it.
    progress:
        Show a tqdm progress bar over noise samples.

    The device is the model's; a ``torch.Generator`` passed to a method should live on that device (a CPU
    generator with a GPU model also works: noise is then drawn on the CPU and copied, which is slower).
    If the model is stored channels_last (measured as the cheapest CPU speed-up), the noisy batches are too.
    ``batch_size`` (noisy samples per forward pass, default 100) bounds memory; for the Small CNN on a 2-core CPU
    batches of 50-150 ran at about 17-19k samples/s and batches of 200 or more at about 10k (their activations
    fall out of cache); on a GPU use thousands.
    """

    ABSTAIN = ABSTAIN
    noise_chunk: int = 50  # samples per noise draw: fixes the random stream whatever batch_size is

    def __init__(self, base_classifier: nn.Module, num_classes: int, sigma: float, *,
                 domain: Domain = (0.0, 1.0), input_shape: Sequence[int] | None = None,
                 progress: bool = True):
        if not isinstance(base_classifier, nn.Module):
            raise ValueError(f"base_classifier must be a torch.nn.Module, got {type(base_classifier).__name__}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        _check_sigma(sigma)
        if domain is not None and not (len(domain) == 2 and domain[0] < domain[1]):
            raise ValueError(f"domain must be None or (low, high) with low < high, got {domain!r}")
        self.base_classifier = base_classifier
        self.num_classes = num_classes
        self.sigma = float(sigma)
        self.domain = None if domain is None else (float(domain[0]), float(domain[1]))
        self.input_shape = None if input_shape is None else tuple(int(s) for s in input_shape)
        self.progress = progress

    # ---------------------------------------------------------------- properties and checks
    @property
    def device(self) -> torch.device:
        return model_device(self.base_classifier)

    @property
    def channels_last(self) -> bool:
        return _is_channels_last(self.base_classifier)

    def __repr__(self) -> str:
        return (f"Smooth(sigma={self.sigma:g}, num_classes={self.num_classes}, domain={self.domain}, "
                f"device={self.device})")

    def _check_x(self, x: torch.Tensor, batched: bool) -> None:
        if not torch.is_tensor(x) or not x.is_floating_point():
            raise ValueError(f"x must be a floating-point tensor, got {type(x).__name__} {getattr(x, 'dtype', '')}")
        if batched:
            if x.dim() < 2 or x.shape[0] < 1:
                raise ValueError(f"expected a batch of inputs (B x ...), got shape {tuple(x.shape)}")
            one = tuple(x.shape[1:])
        else:
            one = tuple(x.shape)
            if x.dim() < 1:
                raise ValueError("expected one input (e.g. C x H x W), got a scalar")
        if self.input_shape is not None and one != self.input_shape:
            what = "each input of the batch" if batched else "the input"
            raise ValueError(f"{what} must have shape {self.input_shape}, got {one} "
                             f"(use {'certify_batch/predict_batch' if not batched else 'certify/predict'} "
                             f"for {'a batch' if not batched else 'a single input'}?)")
        if not torch.isfinite(x).all():
            raise ValueError("x contains NaN or infinite values")
        if self.domain is not None and x.numel():
            low, high = self.domain
            if x.min() < low or x.max() > high:
                raise ValueError(f"x must lie in [{low:g}, {high:g}] (noise is added in pixel space, "
                                 f"normalization happens inside the model); got range "
                                 f"[{x.min().item():.3g}, {x.max().item():.3g}]. For inputs that are not "
                                 f"images, pass domain=None.")

    @staticmethod
    def _check_batch_size(batch_size: int) -> None:
        _check_count(batch_size, "batch_size")

    # ---------------------------------------------------------------- the sampling engine
    def _counts(self, x: torch.Tensor, nums: Sequence[int], batch_size: int,
                generator: torch.Generator | None, desc: str) -> np.ndarray:
        """Counts ``B x len(nums) x K`` of ``f(x_b + e)`` over ``nums[p]`` draws per image b and phase p.

        Noise stream: for b in images, for p in phases, draws of ``min(noise_chunk, remaining)`` samples.
        Forward batches hold up to ``batch_size`` samples, possibly of several images and phases.
        """
        self._check_batch_size(batch_size)
        model, device = self.base_classifier, self.device
        n_images, n_phases, k = x.shape[0], len(nums), self.num_classes
        shape = tuple(x.shape[1:])
        channels_last = self.channels_last and len(shape) == 3
        noise_device = generator.device if generator is not None else device
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
        x = x.to(device=device, dtype=dtype)
        batch_size = min(batch_size, n_images * sum(nums))
        # The buffer is plain contiguous, so that noise drawn straight into a slice of it equals noise drawn into a
        # fresh tensor of the same shape (the random stream does not depend on where a chunk lands).
        buf = torch.empty((batch_size, *shape), device=device, dtype=dtype)
        seg = torch.empty(batch_size, dtype=torch.long, device=device)
        counts = torch.zeros(n_images * n_phases * k, dtype=torch.long, device=device)
        chunk = self.noise_chunk
        fill = 0
        bar = tqdm(total=n_images * sum(nums), desc=desc, unit="samples", leave=False,
                   disable=not self.progress, mininterval=0.5)

        def flush(m: int) -> None:
            inputs = buf[:m].contiguous(memory_format=torch.channels_last) if channels_last else buf[:m]
            try:
                logits = model(inputs)
            except RuntimeError as err:
                raise ValueError(f"the base classifier rejected inputs of shape {tuple(buf[:m].shape)}: "
                                 f"{err}") from err
            if logits.dim() != 2 or logits.shape != (m, k):
                raise ValueError(f"the base classifier must return logits of shape (batch, {k}), "
                                 f"got {tuple(logits.shape)}")
            keys = seg[:m] * k + logits.argmax(1)
            counts.index_add_(0, keys, torch.ones_like(keys))
            bar.update(m)

        with _eval_mode(model), torch.inference_mode(), bar:
            for b in range(n_images):
                xb = x[b]
                for p, num in enumerate(nums):
                    remaining = int(num)
                    while remaining > 0:
                        size = min(chunk, remaining)
                        remaining -= size
                        if fill + size <= batch_size and noise_device == device:  # the chunk fits: draw in place
                            buf[fill:fill + size].normal_(0.0, self.sigma, generator=generator).add_(xb)
                            seg[fill:fill + size] = b * n_phases + p
                            fill += size
                            if fill == batch_size:
                                flush(fill)
                                fill = 0
                            continue
                        noise = torch.empty((size, *shape), device=noise_device, dtype=dtype).normal_(
                            0.0, self.sigma, generator=generator)
                        if noise_device != device:
                            noise = noise.to(device)
                        off = 0
                        while off < size:
                            take = min(size - off, batch_size - fill)
                            torch.add(noise[off:off + take], xb, out=buf[fill:fill + take])
                            seg[fill:fill + take] = b * n_phases + p
                            fill += take
                            off += take
                            if fill == batch_size:
                                flush(fill)
                                fill = 0
            if fill:
                flush(fill)
        return counts.view(n_images, n_phases, k).cpu().numpy()

    # ---------------------------------------------------------------- Cohen et al.'s procedures
    def sample_noise(self, x: torch.Tensor, num: int, batch_size: int = 100,
                     generator: torch.Generator | None = None) -> np.ndarray:
        """Class counts (length K) of ``f(x + e)`` over ``num`` draws ``e ~ N(0, sigma^2 I)``; ``x`` is ONE input."""
        _check_count(num, "num")
        self._check_x(x, batched=False)
        return self._counts(x.unsqueeze(0), [num], batch_size, generator, "sampling")[0, 0]

    def sample_noise_batch(self, x: torch.Tensor, num: int, batch_size: int = 100,
                           generator: torch.Generator | None = None) -> np.ndarray:
        """Counts ``B x K``: :meth:`sample_noise` for each input of the batch ``x`` (same random stream)."""
        _check_count(num, "num")
        self._check_x(x, batched=True)
        return self._counts(x, [num], batch_size, generator, "sampling")[:, 0]

    @staticmethod
    def _predict_from_counts(counts: np.ndarray, alpha: float) -> int:
        order = np.argsort(-counts, kind="stable")
        c1, c2 = int(order[0]), int(order[1])
        if predict_pvalue(counts[c1], counts[c2]) > alpha:
            return ABSTAIN
        return c1

    def predict(self, x: torch.Tensor, n: int, alpha: float, batch_size: int = 100,
                generator: torch.Generator | None = None) -> int:
        r"""PREDICT: the top class of ``n`` noisy samples, or :data:`ABSTAIN`.

        Abstains when the two-sided exact binomial test of ``n_1 ~ Bin(n_1 + n_2, 1/2)`` (top two counts) has
        p-value > alpha. Returns a class other than g(x) with probability at most alpha (Cohen et al. Thm 2).
        """
        _check_alpha(alpha)
        _check_count(n, "n")
        return self._predict_from_counts(self.sample_noise(x, n, batch_size, generator), alpha)

    def predict_batch(self, x: torch.Tensor, n: int, alpha: float, batch_size: int = 100,
                      generator: torch.Generator | None = None) -> np.ndarray:
        """:meth:`predict` for every input of the batch ``x``; same results as a loop with the same generator."""
        _check_alpha(alpha)
        _check_count(n, "n")
        counts = self.sample_noise_batch(x, n, batch_size, generator)
        return np.array([self._predict_from_counts(c, alpha) for c in counts], dtype=np.int64)

    def certify(self, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int = 100,
                generator: torch.Generator | None = None) -> tuple[int, float]:
        r"""CERTIFY one input: ``(class, radius)``, or ``(ABSTAIN, 0.0)``.

        ``c_A`` = top class of ``n0`` selection samples; ``n_A`` = its count among ``n`` fresh samples;
        ``p_A_lower`` = one-sided (1 - alpha) Clopper-Pearson bound; abstain if ``p_A_lower < 1/2``, else
        radius ``sigma Phi^-1(p_A_lower)``. With probability >= 1 - alpha, if it does not abstain then
        ``g(x + delta) = c_A`` for all ``||delta||_2 < radius`` (Cohen et al., Proposition 2).
        """
        _check_count(n0, "n0")
        _check_count(n, "n")
        _check_alpha(alpha)
        self._check_x(x, batched=False)
        result = self.certify_batch(x.unsqueeze(0), n0, n, alpha, batch_size, generator)
        return int(result.prediction[0]), float(result.radius[0])

    def certify_batch(self, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int = 100,
                      generator: torch.Generator | None = None) -> CertifyResult:
        """CERTIFY every input of the batch ``x`` at once (their noisy samples share forward batches).

        Gives exactly the counts of certifying the inputs one at a time with the same generator.
        """
        _check_count(n0, "n0")
        _check_count(n, "n")
        _check_alpha(alpha)
        self._check_x(x, batched=True)
        counts = self._counts(x, [n0, n], batch_size, generator, "certifying")
        return _certificate(counts[:, 0], counts[:, 1], self.sigma, int(n0), int(n), float(alpha))


def _certificate(counts0: np.ndarray, counts: np.ndarray, sigma: float, n0: int, n: int,
                 alpha: float) -> CertifyResult:
    """CERTIFY's decision from the two draws' counts: c_A on ``counts0``, the bound and radius on ``counts``."""
    c_a = counts0.argmax(axis=1)
    n_a = counts[np.arange(len(c_a)), c_a]
    p_lower = np.asarray(lower_confidence_bound(n_a, n, alpha), dtype=float).reshape(-1)
    abstain = p_lower < 0.5
    radius = np.where(abstain, 0.0, certified_radius(np.where(abstain, 0.5, p_lower), sigma))
    prediction = np.where(abstain, ABSTAIN, c_a).astype(np.int64)
    return CertifyResult(prediction=prediction, radius=np.asarray(radius, dtype=float).reshape(-1),
                         p_a_lower=p_lower, counts0=counts0, counts=counts, n_a=n_a, sigma=sigma,
                         n0=n0, n=n, alpha=alpha)


# --------------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------------------
# Attacking the smoothed classifier (Salman et al. 2019)
# --------------------------------------------------------------------------------------------------------
class SoftSmoothed(nn.Module):
    r"""``log G(x)`` with ``G(x) = (1/m) sum_j softmax(f(x + e_j))``, ``e_j ~ N(0, sigma^2 I)`` fresh per call.

    The expected softmax under noise is the differentiable surrogate of the smoothed classifier that
    Salman et al. (2019) attack (SmoothAdv). The output is a log-probability vector, so the usual
    cross-entropy attack on this module maximizes ``-log G_y(x)``: any attack of :mod:`course_lib.attacks`
    applies to it unchanged.
    """

    def __init__(self, base_classifier: nn.Module, sigma: float, m: int = 32,
                 generator: torch.Generator | None = None):
        super().__init__()
        _check_sigma(sigma)
        _check_count(m, "m")
        self.base_classifier = base_classifier
        self.sigma, self.m, self.generator = float(sigma), int(m), generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        noise = torch.randn((self.m * b, *x.shape[1:]), generator=self.generator,
                            device=self.generator.device if self.generator is not None else x.device)
        noisy = x.repeat_interleave(self.m, dim=0) + self.sigma * noise.to(x.device)
        if _is_channels_last(self.base_classifier) and noisy.dim() == 4:
            noisy = noisy.contiguous(memory_format=torch.channels_last)
        probs = F.softmax(self.base_classifier(noisy), dim=1).view(b, self.m, -1).mean(dim=1)
        return torch.log(probs.clamp_min(1e-20))


def attack_smoothed(base_classifier: nn.Module, sigma: float, x: torch.Tensor, y: torch.Tensor,
                    eps: float | Sequence[float] | np.ndarray, m: int = 32, steps: int = 20,
                    step_size: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""l_2 PGD on the smoothed soft classifier (Salman et al. 2019): maximize ``-log G_y(x')``.

    ``||x' - x||_2 <= eps`` (a number, or one radius per image, e.g. each image's certified radius), and
    ``x'`` in [0, 1]. ``m`` noise draws per step (fresh each step). Uses :func:`course_lib.attacks.pgd`.
    """
    from .attacks import pgd

    _check_sigma(sigma)
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
