r"""Probability margins: how confident a model is, at clean and at attacked inputs.

The margin of a model at x is the gap between its top two probabilities, ``p_(1)(x) - p_(2)(x)`` in [0, 1].
Lemma 2 of Bai, Anderson and Sojoudi (2024) needs the robust model to keep a margin of at least
``(1 - alpha) / alpha`` under attack; Table 1 of the paper measures it: a good mixing partner is *confident when
it is right under attack* (large margins of correct attacked inputs) and *unconfident when it is wrong on clean
inputs* (small margins of clean mistakes), so that the accurate model can overrule it there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_labels, check_tensor
from ..device import eval_mode, model_device


def probability_margin(outputs: torch.Tensor) -> torch.Tensor:
    """``p_(1) - p_(2)`` of ``softmax(outputs)`` per row (logits or log-probabilities), ``N x K -> N``."""
    check_tensor(outputs, "outputs", dim=2)
    if outputs.shape[1] < 2:
        raise ValueError(f"a margin needs at least two classes, got {outputs.shape[1]}")
    top2 = F.softmax(outputs.double(), dim=1).topk(2, dim=1).values
    return (top2[:, 0] - top2[:, 1]).float()


@torch.no_grad()
def margins_and_predictions(model: nn.Module, x: torch.Tensor,
                            batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's probability margin and predicted class at each input (eval mode, on the CPU)."""
    device = model_device(model)
    margins, preds = [], []
    with eval_mode(model):
        for i in range(0, len(x), batch_size):
            out = model(x[i:i + batch_size].to(device)).cpu()
            margins.append(probability_margin(out))
            preds.append(out.argmax(1))
    return torch.cat(margins), torch.cat(preds)


def margin_statistics(model: nn.Module, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor) -> dict:
    """Table 1 of Bai et al. (2024) for one model: mean and median margin of the attacked inputs ``x_adv`` it
    still classifies correctly (its *robust margin*), of the clean inputs it gets wrong, and of the clean inputs it
    gets right; with the counts and the per-input margins (``robust``, ``mistakes``, ``clean_correct``)."""
    check_labels(y, x.shape[0])
    if x_adv.shape != x.shape:
        raise ValueError(f"x_adv must have the shape of x, {tuple(x.shape)}, got {tuple(x_adv.shape)}")
    m_clean, p_clean = margins_and_predictions(model, x)
    m_adv, p_adv = margins_and_predictions(model, x_adv)
    groups = {"robust": m_adv[p_adv == y], "mistakes": m_clean[p_clean != y], "clean_correct": m_clean[p_clean == y]}
    stats: dict = {}
    for name, values in groups.items():
        stats[name] = values
        stats[f"{name}_count"] = len(values)
        stats[f"{name}_mean"] = values.mean().item() if len(values) else float("nan")
        stats[f"{name}_median"] = values.quantile(0.5).item() if len(values) else float("nan")
    return stats
