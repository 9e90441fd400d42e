"""AutoAttack-strength attacks (Croce and Hein 2020), from the torchattacks library rather than written here.

- APGD-CE: projected gradient ascent on the cross-entropy with an adaptive step size (halved when progress
  stalls) and momentum, 100 iterations by default; no step size to tune, which is what makes it a reliable
  evaluation where a hand-tuned PGD may not converge.
- APGD-T: the same on the targeted DLR loss ``-(z_y - z_t) / (z_pi1 - z_pi3)``, run once per target class t
  (all K - 1 of them by default); the DLR loss is invariant to shifts and scalings of the logits, so it is not
  fooled by the logit scaling that saturates the cross-entropy.

AutoAttack (``torchattacks.AutoAttack``) also runs FAB-T and Square, a black-box attack that needs no gradient;
its 'standard' version uses torchattacks' default of 10 APGD iterations. The course runs the two APGD attacks
with 100 iterations, as Croce and Hein do. torchattacks' APGD draws its random start after seeding the *global*
random generator; these wrappers fork the generator state, so calling them does not change any later random draw.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import NORMS, check_attack_inputs, check_steps, eval_mode, project

try:  # installed with --no-deps (see requirements-attacks.txt): its requests pin clashes with Sphinx
    import torchattacks
except ImportError:  # pragma: no cover - the message says what to install
    torchattacks = None

TORCHATTACKS_NORM = {"linf": "Linf", "l2": "L2"}


def _run(attack_name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str,
         seed: int, **kwargs) -> torch.Tensor:
    check_attack_inputs(x, y, eps, norm)
    if torchattacks is None:
        raise ImportError("AutoAttack-strength evaluation needs torchattacks: pip install --no-deps 'torchattacks>=3.5,<4'")
    if eps == 0 or len(x) == 0:
        return x.detach().clone()
    devices = [x.device] if x.device.type == "cuda" else []
    with eval_mode(model), torch.random.fork_rng(devices=devices):
        attack = getattr(torchattacks, attack_name)(model, norm=TORCHATTACKS_NORM[norm], eps=eps, seed=seed, **kwargs)
        x_adv = attack(x.detach(), y)
    return project(x_adv.detach(), x.detach(), eps, norm)  # a no-op up to rounding: the result stays in the ball


def apgd_ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 100, norm: str = "linf",
            restarts: int = 1, seed: int = 0) -> torch.Tensor:
    """APGD on the cross-entropy (Croce and Hein 2020), ``steps`` iterations, via ``torchattacks.APGD``."""
    check_steps(steps, restarts)
    return _run("APGD", model, x, y, eps, norm, seed, steps=steps,
                n_restarts=restarts, loss="ce")


def apgd_t(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 100, norm: str = "linf",
           num_classes: int | None = None, seed: int = 0) -> torch.Tensor:
    """Targeted APGD on the DLR loss against every other class in turn (``num_classes - 1`` targets, default all),
    ``steps`` iterations each, via ``torchattacks.APGDT``; keeps the first target that succeeds."""
    check_steps(steps)
    if num_classes is None:
        with torch.no_grad(), eval_mode(model):
            num_classes = model(x[:1]).shape[1]
    if num_classes < 3:
        raise ValueError(f"the DLR loss needs at least 3 classes, got {num_classes}")
    return _run("APGDT", model, x, y, eps, norm, seed, steps=steps,
                n_classes=int(num_classes))


__all__ = ["NORMS", "apgd_ce", "apgd_t"]
