r"""MixedNUTS (Bai, Zhou, Patel and Sojoudi, TMLR 2024, arXiv 2402.02263): mix an accurate g with a robust h
whose logits first pass through a nonlinear transform M, tuned by Algorithm 1.

The transform of h's logits z in R^K, in four steps (computed in float64: margins near 1 round to 1 in float32):

    LN:     z' = (z - mean(z)) / sqrt(var(z) + 1e-8)          (per input, over the K classes; biased variance)
    Clamp:  u  = GELU(z' + c)                                  (ReLU, ELU, softplus as options)
    Power:  v  = sign(u) |u|^p
    Scale:  M(z) = s v,                                         s > 0, p > 0.

The classifier is ``f(x) = log((1 - alpha) onehot(argmax g(x)) + alpha softmax(M(h(x))))``: g at zero
temperature (a finite temperature is an option), h sharpened by M.

Assumption 4.2 of the paper (M keeps h's predicted class) is not automatic: GELU is increasing only on
[-0.7518, inf) and tends to 0 from below as t -> -inf, so when the top normalized logit plus c is negative, a very
negative logit can overtake it. The argmax is guaranteed when ``z'_max + c >= 0``: then the top class's clamped
value is >= 0, every negative value is below it, and GELU is increasing on [0, inf). Since K numbers with mean 0
and mean square 1 have a maximum of at least 1 / sqrt(K - 1) (equality: K - 1 equal values and one at
-(K - 1) / sqrt(K - 1)), ``c >= -1 / sqrt(K - 1)`` guarantees it for every input (:func:`argmax_guaranteed`;
LN's 1e-8 shrinks z' by the factor sqrt(var / (var + 1e-8)), which matters only for nearly constant logits). For
c below that bound there are logits whose class changes (``tests/test_nuts.py`` builds one).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks.min_margin import label_margin
from ..checks import check_choice, check_unit_interval
from .classifier import MixedClassifier

LN_EPS = 1e-8
CLAMPS = {"gelu": F.gelu, "relu": F.relu, "elu": F.elu, "softplus": F.softplus}


def _check_positive(value: float, name: str) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def layer_norm_logits(logits: torch.Tensor) -> torch.Tensor:
    """Step 1: standardize each row of ``N x K`` logits to mean 0 and (biased) variance 1, in float64."""
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits must be N x K with K >= 2 classes, got shape {tuple(logits.shape)}")
    z = logits.double()
    mean, var = z.mean(dim=1, keepdim=True), z.var(dim=1, unbiased=False, keepdim=True)
    return (z - mean) / torch.sqrt(var + LN_EPS)


def nuts_transform(logits: torch.Tensor, s: float, p: float, c: float, clamp: str = "gelu") -> torch.Tensor:
    """M_{s,p,c}(logits) = s sign(u) |u|^p with u = Clamp(LN(logits) + c), float64, ``N x K``."""
    s, p = _check_positive(s, "s"), _check_positive(p, "p")
    if not math.isfinite(c):
        raise ValueError(f"c must be finite, got {c}")
    check_choice(clamp, tuple(CLAMPS), "clamp")
    u = CLAMPS[clamp](layer_norm_logits(logits) + float(c))
    return s * u.sign() * u.abs().pow(p)


def argmax_guaranteed(c: float, num_classes: int) -> bool:
    """Does ``c >= -1 / sqrt(K - 1)`` hold, so that the GELU transform keeps the argmax of *every* logit vector of
    K classes (whose variance is not down at LN's 1e-8)? For smaller c some logit vectors change class."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    return c >= -1 / math.sqrt(num_classes - 1)


class MixedNUTS(nn.Module):
    """``log((1 - alpha) q(x) + alpha softmax(M_{s,p,c}(h(x))))`` with ``q = onehot(argmax g)`` at
    ``temperature = 0`` (the paper's choice) or ``softmax(g / temperature)``. Returns log-probabilities in the
    input's dtype (computed in float64), so it is an ordinary ``model(x)`` for evaluation. Its gradient ignores g
    at zero temperature: attack it through :meth:`surrogates` (see :func:`nuts_correct`)."""

    def __init__(self, accurate: nn.Module, robust: nn.Module, alpha: float, s: float, p: float, c: float,
                 clamp: str = "gelu", temperature: float = 0.0):
        super().__init__()
        self.accurate, self.robust = accurate, robust
        self.alpha = check_unit_interval(alpha, "alpha")
        self.s, self.p, self.c = _check_positive(s, "s"), _check_positive(p, "p"), float(c)
        check_choice(clamp, tuple(CLAMPS), "clamp")
        self.clamp = clamp
        if not (math.isfinite(temperature) and temperature >= 0):
            raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
        self.temperature = float(temperature)

    def robust_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """softmax(M(h(x))) in float64."""
        return torch.softmax(nuts_transform(self.robust(x), self.s, self.p, self.c, self.clamp), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zg = self.accurate(x)
        ph = self.robust_probabilities(x)
        if zg.shape != ph.shape:
            raise ValueError(f"the accurate and the robust model disagree on the output shape: "
                             f"{tuple(zg.shape)} and {tuple(ph.shape)} (different class counts?)")
        if self.temperature == 0:
            q = F.one_hot(zg.argmax(1), zg.shape[1]).double()
        else:
            q = torch.softmax(zg.double() / self.temperature, dim=1)
        mixed = (1 - self.alpha) * q + self.alpha * ph
        return torch.log(mixed.clamp_min(1e-300)).to(x.dtype)

    def surrogates(self) -> dict[str, nn.Module]:
        """Differentiable stand-ins for attacking: ``"soft"`` replaces g's one-hot by its softmax (temperature 1)
        and keeps M(h); ``"raw"`` is the linear mixture of g's and h's raw softmax (chapter 6's classifier), whose
        gradient does not saturate where M(h) does."""
        return {"soft": MixedNUTS(self.accurate, self.robust, self.alpha, self.s, self.p, self.c, self.clamp,
                                  temperature=1.0),
                "raw": MixedClassifier(self.accurate, self.robust, self.alpha)}

    def extra_repr(self) -> str:
        return (f"alpha={self.alpha:.4f}, s={self.s:g}, p={self.p:g}, c={self.c:g}, clamp={self.clamp!r}, "
                f"temperature={self.temperature:g}")


def top2_margin(probabilities: torch.Tensor) -> torch.Tensor:
    """``p_(1) - p_(2)`` along the last dimension."""
    top2 = probabilities.topk(2, dim=-1).values
    return top2[..., 0] - top2[..., 1]


def _grid_margins(logits: torch.Tensor, s: torch.Tensor, p: torch.Tensor, c: torch.Tensor, clamp: str,
                  y: torch.Tensor | None) -> torch.Tensor:
    """Margins of softmax(M_{s,p,c}(logits)) for every grid point at once: ``S x P x C x N`` (float64).
    With labels ``y`` the signed margin of y, otherwise the top-two margin."""
    z = layer_norm_logits(logits)                                        # N x K
    u = CLAMPS[clamp](z[None] + c.view(-1, 1, 1))                         # C x N x K
    v = u.sign()[None] * u.abs()[None].pow(p.view(-1, 1, 1, 1))           # P x C x N x K
    mapped = s.view(-1, 1, 1, 1, 1) * v[None]                              # S x P x C x N x K
    if y is None:
        return top2_margin(torch.softmax(mapped, dim=-1))
    k = mapped.shape[-1]
    return label_margin(mapped.reshape(-1, k), y.repeat(mapped.numel() // (k * len(y)))).view(mapped.shape[:-1])


def algorithm1(robust_logits: torch.Tensor, robust_labels: torch.Tensor, mistake_logits: torch.Tensor,
               s_grid: Sequence[float], p_grid: Sequence[float], c_grid: Sequence[float], beta: float = 0.985,
               clamp: str = "gelu", max_cutoff: float = 1 - 1e-6, ties: str = "first") -> dict:
    r"""Algorithm 1 of MixedNUTS, vectorized over the grid.

    Inputs: h's logits on (a) minimum-margin attacked inputs h still classifies correctly (with their labels) and
    (b) clean inputs h gets wrong. For every (s, p, c): the cutoff q is the (1 - beta)-quantile of (a)'s margins
    after M (capped at ``max_cutoff`` < 1; the "lower" order statistic, so that a share of at least beta of (a)
    keeps a margin >= q, where an interpolated quantile could leave slightly less); the objective is the share
    of (b) whose top-two margin after M reaches q (those mistakes the mixture would keep, since h's vote outweighs
    g's one-hot when alpha m >= 1 - alpha, i.e. m >= (1 - alpha) / alpha). Choose the grid point of least objective
    (on ties, ``ties="first"`` takes the first in (s, p, c) order, as the reference's argmin does, and
    ``ties="smallest_alpha"`` the tied point of largest cutoff); then alpha* = 1 / (1 + q), which makes
    (1 - alpha*) / alpha* = q.
    Grid points whose cutoff is <= 0 (M misclassifies more than 1 - beta of (a)) are infeasible.
    Returns ``s, p, c, alpha, cutoff, objective`` and the ``S x P x C`` tensors ``objectives`` and ``cutoffs``.
    """
    beta = float(beta)
    if not 0 < beta < 1:
        raise ValueError(f"beta must be in (0, 1), got {beta}")
    if len(robust_logits) == 0 or len(mistake_logits) == 0:
        raise ValueError("Algorithm 1 needs attacked-correct and clean-mistake logits; got an empty set "
                         f"({len(robust_logits)} attacked-correct, {len(mistake_logits)} mistakes)")
    if len(robust_labels) != len(robust_logits):
        raise ValueError(f"{len(robust_logits)} attacked-correct logits but {len(robust_labels)} labels")
    if not 0 < max_cutoff < 1:
        raise ValueError(f"max_cutoff must be in (0, 1), got {max_cutoff}")
    check_choice(clamp, tuple(CLAMPS), "clamp")
    check_choice(ties, ("first", "smallest_alpha"), "ties")
    grids = [torch.as_tensor([float(v) for v in g], dtype=torch.float64) for g in (s_grid, p_grid, c_grid)]
    for g, name in zip(grids[:2], ("s", "p")):
        if len(g) == 0 or not (g > 0).all():
            raise ValueError(f"the {name} grid must be non-empty and > 0, got {g.tolist()}")
    if len(grids[2]) == 0 or not torch.isfinite(grids[2]).all():
        raise ValueError(f"the c grid must be non-empty and finite, got {grids[2].tolist()}")
    s, p, c = grids
    robust_m = _grid_margins(robust_logits, s, p, c, clamp, robust_labels.long())
    mistake_m = _grid_margins(mistake_logits, s, p, c, clamp, None)
    cutoffs = torch.quantile(robust_m, 1 - beta, dim=-1, interpolation="lower").clamp(max=max_cutoff)
    objectives = (mistake_m >= cutoffs[..., None]).double().mean(-1)
    objectives = torch.where(cutoffs > 0, objectives, torch.full_like(objectives, math.inf))
    best = int(torch.argmin(objectives))
    if not math.isfinite(objectives.flatten()[best]):
        raise ValueError("no grid point keeps a positive margin on a share beta of the attacked-correct inputs")
    if ties == "smallest_alpha":
        tied = objectives.flatten() == objectives.flatten()[best]
        best = int(torch.argmax(torch.where(tied, cutoffs.flatten(), torch.full_like(cutoffs.flatten(), -1.0))))
    i, j, k = (int(t) for t in torch.unravel_index(torch.tensor(best), objectives.shape))
    cutoff = float(cutoffs[i, j, k])
    return {"s": float(s[i]), "p": float(p[j]), "c": float(c[k]), "alpha": 1 / (1 + cutoff), "cutoff": cutoff,
            "objective": float(objectives[i, j, k]), "objectives": objectives, "cutoffs": cutoffs,
            "grid": {"s": s.tolist(), "p": p.tolist(), "c": c.tolist()}, "beta": beta}
