"""Transfer attacks: craft the adversarial example on a *source* model, evaluate it on another.

``transfer(source, attack)`` turns any attack ``attack(model, x, y) -> x_adv`` into one that ignores the model it
is given and attacks ``source`` instead. Bai et al. (2024) call the transfer attacks on a mixture's accurate and
robust parts STD and ROB. A transfer attack is a check, not an evaluation on its own: it can only be weaker than
an attack through the evaluated model's own gradient, unless that gradient is masked -- which is why an honest
report takes the worst case over transfer and adaptive attacks together.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

Attack = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def transfer(source: nn.Module, attack: Attack) -> Attack:
    """An attack that runs ``attack`` on ``source`` whatever model it is called with."""
    if not isinstance(source, nn.Module):
        raise TypeError(f"source must be a torch module, got {type(source).__name__}")

    def transferred(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return attack(source, x, y)

    return transferred
