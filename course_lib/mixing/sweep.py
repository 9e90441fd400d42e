r"""The alpha sweep of a mixed classifier (Bai, Anderson and Sojoudi 2024, Figure 2), evaluated honestly.

At each alpha the mixture ``h_alpha`` faces
- ``mix``: the adaptive attack, PGD through the mixture's own gradient (with random restarts);
- ``std`` and ``rob``: transfer attacks, PGD on the accurate model g alone and on the robust model h alone (the
  adversarial images do not depend on alpha, so they are made once);
- FGSM and, with ``autoattack``, APGD-CE and APGD-T on the mixture (:func:`course_lib.evaluation.robust_correct`),
  because a mixture is where gradient masking hides (a saturated softmax of g, alpha near 1);
and ``worst`` is correct under every one of them, per example. The transfer results enter the worst case before
the APGD cascade, so APGD attacks only the examples every cheaper attack left correct.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from ..attacks import pgd
from ..checks import check_unit_interval
from ..data import DataSplit
from ..device import model_device
from ..evaluation import correct, register_evaluation, robust_correct
from ..profiles import Profile
from .classifier import MixedClassifier


def _pgd_images(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, restarts: int,
                seed: int, batch_size: int) -> torch.Tensor:
    """PGD on ``model`` alone (the transfer attacks' source), batched, seeded afresh per batch; on the CPU."""
    device, out = model_device(model), []
    for i in range(0, len(x), batch_size):
        generator = torch.Generator(device=device).manual_seed(seed)
        out.append(pgd(model, x[i:i + batch_size].to(device), y[i:i + batch_size].to(device), eps, steps=steps,
                       restarts=restarts, generator=generator).cpu())
    return torch.cat(out)


def alpha_sweep(accurate: nn.Module, robust: nn.Module, x: torch.Tensor, y: torch.Tensor, alphas: Sequence[float],
                eps: float, space: str = "probabilities", steps: int = 20, restarts: int = 2,
                autoattack: bool = True, apgd_steps: int = 100, seed: int = 0,
                batch_size: int = 500) -> dict[float, dict[str, torch.Tensor]]:
    """Per-example correctness of the mixture at each alpha: ``clean``, ``fgsm``, ``pgd`` (the MIX attack),
    ``std``, ``rob``, [``apgd-ce``, ``apgd-t``,] and ``worst`` (boolean tensors over the images; the APGD entries
    are cumulative, as in :func:`course_lib.evaluation.robust_correct`)."""
    alphas = [check_unit_interval(a, "alpha") for a in alphas]
    x_std = _pgd_images(accurate, x, y, eps, steps, restarts, seed, batch_size)
    x_rob = _pgd_images(robust, x, y, eps, steps, restarts, seed, batch_size)
    results = {}
    for alpha in tqdm(alphas, desc=f"alpha sweep ({space})", leave=False):
        mix = MixedClassifier(accurate, robust, alpha, space)
        transfer = {"std": correct(mix, x_std, y, desc=None, batch_size=batch_size),
                    "rob": correct(mix, x_rob, y, desc=None, batch_size=batch_size)}
        results[alpha] = robust_correct(mix, x, y, eps, steps=steps, restarts=restarts, autoattack=autoattack,
                                        apgd_steps=apgd_steps, seed=seed, batch_size=batch_size, known=transfer)
    return results


@register_evaluation("mixing_sweep")
def evaluate_mixing_sweep(pair: tuple[nn.Module, nn.Module], data: DataSplit, profile: Profile,
                          alphas: Sequence[float], space: str = "probabilities", autoattack: bool = True) -> dict:
    """:func:`alpha_sweep` of a model pair (accurate, robust) on the profile's evaluation images, at its l_inf eps
    with its PGD steps, restarts and APGD steps. Returns ``{"alphas": [...], "eval_images": n,
    "robust": {"0.5": {attack: accuracy}}, "correct": {"0.5": {attack: [bool, ...]}}}`` (keys ``f"{alpha:g}"``)."""
    n = min(profile.attack.images, len(data.x_test))
    x, y = data.x_test[:n], data.y_test[:n]
    a = profile.attack
    sweep = alpha_sweep(*pair, x, y, alphas, a.eps_linf, space, a.steps, a.restarts, autoattack, a.apgd_steps)
    return {"alphas": [float(al) for al in alphas], "eval_images": n, "eps": a.eps_linf,
            "robust": {f"{al:g}": {k: h.float().mean().item() for k, h in hits.items()} for al, hits in sweep.items()},
            "correct": {f"{al:g}": {k: h.tolist() for k, h in hits.items()} for al, hits in sweep.items()}}
