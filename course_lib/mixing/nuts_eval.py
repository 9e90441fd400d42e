r"""Calibrating and attacking MixedNUTS (Bai et al. 2024), as cached evaluations of the model cache.

- ``min_margin_logits`` (of the robust model h): Algorithm 1's inputs, by default from a calibration split that is
  *not* the evaluation images (the test images after the first ``attack.images``, at most 1,000): h's logits at
  its minimum-margin attacked points that it still classifies correctly, and at the clean images it gets wrong
  (``split="evaluation"`` computes the same on the evaluation images, to check the constraint out of sample).
- ``mixednuts`` (of a pair): per-example correctness of MixedNUTS on the evaluation images under every attack
  we have, and the worst case. Its one-hot g has no gradient, so the adaptive attacks (FGSM, PGD with restarts,
  APGD-CE, APGD-T) take their gradients from the ``soft`` surrogate (g's softmax in place of its one-hot) and are
  judged on MixedNUTS itself; PGD through the ``raw`` surrogate (chapter 6's linear mixture at the same alpha)
  and transfers from g alone (STD), h alone (ROB) and h's minimum-margin points (MM) complete the worst case.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from ..attacks import pgd, transfer
from ..attacks.min_margin import min_margin
from ..checks import check_choice
from ..data import DataSplit
from ..device import eval_mode, model_device
from ..evaluation import correct, register_evaluation, robust_correct
from ..profiles import Profile
from .nuts import MixedNUTS

CALIBRATION_IMAGES = 1000


def calibration_split(data: DataSplit, profile: Profile) -> tuple[torch.Tensor, torch.Tensor]:
    """The test images no evaluation attacks: ``x_test[n : n + 1000]`` with n = ``profile.attack.images``."""
    n = min(profile.attack.images, len(data.x_test))
    x, y = data.x_test[n:n + CALIBRATION_IMAGES], data.y_test[n:n + CALIBRATION_IMAGES]
    if len(x) == 0:
        raise ValueError(f"no calibration images: the test split has {len(data.x_test)} images, all evaluated")
    return x, y


@torch.no_grad()
def _logits(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    device = model_device(model)
    with eval_mode(model):
        return torch.cat([model(x[i:i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])


@register_evaluation("min_margin_logits")
def evaluate_min_margin_logits(model: nn.Module, data: DataSplit, profile: Profile, split: str = "calibration",
                               batch_size: int = 250) -> dict:
    """Algorithm 1's inputs for the robust model: logits of minimum-margin points (PGD iterates of every restart,
    APGD-CE and APGD-T) that stay correct, with labels, and logits of clean mistakes; lists of lists."""
    check_choice(split, ("calibration", "evaluation"), "split")
    if split == "calibration":
        x, y = calibration_split(data, profile)
    else:
        n = min(profile.attack.images, len(data.x_test))
        x, y = data.x_test[:n], data.y_test[:n]
    a = profile.attack
    x_mm = []
    for i in range(0, len(x), batch_size):
        gen = torch.Generator(device=model_device(model)).manual_seed(0)
        xb, yb = x[i:i + batch_size].to(model_device(model)), y[i:i + batch_size].to(model_device(model))
        x_mm.append(min_margin(model, xb, yb, a.eps_linf, steps=a.steps, restarts=a.restarts, autoattack=True,
                               apgd_steps=a.apgd_steps, generator=gen).cpu())
    adv, clean = _logits(model, torch.cat(x_mm)), _logits(model, x)
    ok, wrong = adv.argmax(1) == y, clean.argmax(1) != y
    return {"images": len(x), "robust_logits": adv[ok].tolist(), "robust_labels": y[ok].tolist(),
            "mistake_logits": clean[wrong].tolist(), "robust_accuracy": ok.float().mean().item(),
            "clean_accuracy": 1 - wrong.float().mean().item()}


def _seeded(attack, source: nn.Module, seed: int):
    """``attack`` run on ``source`` with a generator seeded afresh for every batch (reproducible transfers)."""
    return transfer(source, lambda m, x, y: attack(m, x, y, generator=torch.Generator(device=x.device).manual_seed(seed)))


def nuts_correct(nuts: MixedNUTS, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 20, restarts: int = 2,
                 apgd_steps: int = 100, seed: int = 0, batch_size: int = 250) -> dict[str, torch.Tensor]:
    """Per-example correctness of ``nuts`` under the attacks of this module's docstring, and ``worst``."""
    surrogates = nuts.surrogates()
    strong = partial(pgd, eps=eps, steps=steps, restarts=restarts)
    sources = {"std": (strong, nuts.accurate), "rob": (strong, nuts.robust),
               "mm": (partial(min_margin, eps=eps, steps=steps, restarts=restarts), nuts.robust)}
    known = {name: correct(nuts, x, y, _seeded(attack, source, seed), batch_size, desc=None)
             for name, (attack, source) in sources.items()}
    return robust_correct(nuts, x, y, eps, steps=steps, restarts=restarts, autoattack=True, apgd_steps=apgd_steps,
                          seed=seed, batch_size=batch_size, known=known, attack_model=surrogates["soft"],
                          extra_attacks={"raw": _seeded(strong, surrogates["raw"], seed)})


@register_evaluation("mixednuts")
def evaluate_mixednuts(pair: tuple[nn.Module, nn.Module], data: DataSplit, profile: Profile, alpha: float,
                       s: float, p: float, c: float, clamp: str = "gelu") -> dict:
    """:func:`nuts_correct` of MixedNUTS(g, h, alpha, s, p, c) on the profile's evaluation images."""
    n = min(profile.attack.images, len(data.x_test))
    a = profile.attack
    nuts = MixedNUTS(*pair, alpha, s, p, c, clamp)
    hits = nuts_correct(nuts, data.x_test[:n], data.y_test[:n], a.eps_linf, a.steps, a.restarts, a.apgd_steps)
    return {"eval_images": n, "eps": a.eps_linf, "robust": {k: h.float().mean().item() for k, h in hits.items()},
            "correct": {k: h.tolist() for k, h in hits.items()}}
