r"""The mixed classifier of Bai, Anderson and Sojoudi (2024): an accurate ``g`` and a robust ``h``, mixed in
probability space,

    h_alpha(x) = log( (1 - alpha) softmax g(x) + alpha softmax h(x) ),     alpha in [0, 1],

returned as log-probabilities, so that it is an ordinary ``model(x)``: cross-entropy, PGD and APGD apply to it
unchanged (the logarithm is the "inverse softmax": softmax of the output gives back the mixed probabilities).
It is computed stably as a logsumexp of ``log(1 - alpha) + log_softmax g`` and ``log(alpha) + log_softmax h``.
Mixing probabilities bounds g's contribution to ``1 - alpha`` whatever an attack does to g's logits; the
logit-mixing variant ``(1 - alpha) g(x) + alpha h(x)`` has no such bound (the paper's Figure 1 and Appendix A).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_choice, check_unit_interval

SPACES = ("probabilities", "logits")


class MixedClassifier(nn.Module):
    """``log((1 - alpha) softmax g(x) + alpha softmax h(x))`` (``space="probabilities"``, the paper's choice), or
    ``(1 - alpha) g(x) + alpha h(x)`` (``space="logits"``). ``alpha`` may be changed after construction (it is
    checked in [0, 1] on every assignment). Both models must return ``N x K`` outputs with the same ``K``; a
    model may return log-probabilities (e.g. :class:`course_lib.smoothing.SoftSmoothed`), since
    ``log_softmax`` leaves them unchanged."""

    def __init__(self, accurate: nn.Module, robust: nn.Module, alpha: float, space: str = "probabilities"):
        super().__init__()
        check_choice(space, SPACES, "space")
        self.accurate, self.robust, self.space = accurate, robust, space
        self.alpha = alpha

    @property
    def alpha(self) -> float:
        return self._alpha

    @alpha.setter
    def alpha(self, value: float) -> None:
        self._alpha = check_unit_interval(value, "alpha")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zg, zh = self.accurate(x), self.robust(x)
        if zg.shape != zh.shape:
            raise ValueError(f"the accurate and the robust model disagree on the output shape: "
                             f"{tuple(zg.shape)} and {tuple(zh.shape)} (different class counts?)")
        a = self._alpha
        if self.space == "logits":
            return (1 - a) * zg + a * zh
        log_weights = (math.log(1 - a) if a < 1 else -math.inf, math.log(a) if a > 0 else -math.inf)
        return torch.logsumexp(torch.stack([F.log_softmax(zg, dim=1) + log_weights[0],
                                            F.log_softmax(zh, dim=1) + log_weights[1]]), dim=0)

    def extra_repr(self) -> str:
        return f"alpha={self._alpha:g}, space={self.space!r}"
