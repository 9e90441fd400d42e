"""One training loop for every model kind: images or 2-D points, any loss, optimizer and schedule by name.

A *training loss* is a callable ``loss(model, x, y, epoch) -> scalar`` called with the model in train mode;
``epoch`` is fractional (2.5 = halfway through the third epoch) so that a loss can ramp its radius up
(:mod:`course_lib.training.losses`). The loop draws seeded batches (:func:`course_lib.data.make_loader`), applies
an optional augmentation, steps the optimizer and the learning-rate schedule, shows a progress bar, and after
each epoch can call a *monitor* (e.g. robust accuracy on held-out images, to watch catastrophic overfitting).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from ..checks import IMAGE_DOMAIN, Domain, check_choice, check_count, check_inputs, check_positive
from ..data import make_loader
from ..device import eval_mode, model_device

TrainLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor, float], torch.Tensor]
Augment = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Monitor = Callable[[nn.Module], dict[str, float]]

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": lambda params, lr, weight_decay: torch.optim.Adam(params, lr=lr, weight_decay=weight_decay),
    "sgd": lambda params, lr, weight_decay: torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay),
}
"""Optimizers by name: Adam (Kingma and Ba 2015) and SGD with momentum 0.9 (the CIFAR-10 recipes)."""

SCHEDULES: dict[str, Callable[[float], float]] = {
    "constant": lambda progress: 1.0,
    "cosine": lambda progress: 0.5 * (1 + math.cos(math.pi * progress)),  # Loshchilov and Hutter 2017
    "multistep": lambda progress: 0.1 ** ((progress >= 0.5) + (progress >= 0.75)),  # Madry et al.'s CIFAR steps
}
"""Learning-rate factors as a function of training progress in [0, 1), applied at every step."""


@dataclass
class TrainHistory:
    """What :func:`train` returns: the mean training loss of each epoch, the monitor's records, wall-clock time."""

    loss: list[float] = field(default_factory=list)
    monitor: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: TrainLoss, *, epochs: int = 10,
          batch_size: int = 128, optimizer: str = "adam", lr: float = 1e-3, weight_decay: float = 0.0,
          schedule: str = "constant", augment: Augment | None = None, monitor: Monitor | None = None,
          seed: int = 0, domain: Domain = IMAGE_DOMAIN, desc: str | None = "training") -> TrainHistory:
    """Train ``model`` in place on (x, y) and return its :class:`TrainHistory`; the model ends in eval mode.

    ``x`` is any batch of inputs (images in ``domain``, by default [0, 1]; ``domain=None`` for inputs that are not
    images). Image batches go to the model's device in channels_last memory format (the cheapest CPU speed-up
    measured here). ``augment(xb, yb)`` transforms each batch before the loss; ``monitor(model)`` runs after each
    epoch in eval mode and must not touch the global random stream (give it its own generator), so that asking
    for a curve does not change the trained model.
    """
    check_inputs(x, domain)
    epochs = check_count(epochs, "epochs")
    check_positive(lr, "lr")
    check_choice(optimizer, OPTIMIZERS, "optimizer")
    check_choice(schedule, SCHEDULES, "schedule")
    device = model_device(model)
    torch.manual_seed(seed)
    opt = OPTIMIZERS[optimizer](model.parameters(), lr, weight_decay)
    factor = SCHEDULES[schedule]
    history = TrainHistory()
    start = time.perf_counter()
    bar = tqdm(range(epochs), desc=desc, leave=False, disable=desc is None)
    for epoch in bar:
        loader = make_loader(x, y, batch_size, shuffle=True, seed=seed * 1000 + epoch)
        model.train()
        total, count = 0.0, 0
        for i, (xb, yb) in enumerate(loader):
            progress = epoch + i / len(loader)
            if schedule != "constant":
                for group in opt.param_groups:
                    group["lr"] = lr * factor(progress / epochs)
            xb, yb = xb.to(device), yb.to(device)
            if xb.dim() == 4:
                xb = xb.contiguous(memory_format=torch.channels_last)
            if augment is not None:
                xb, yb = augment(xb, yb)
            batch_loss = loss(model, xb, yb, progress)
            opt.zero_grad(set_to_none=True)
            batch_loss.backward()
            opt.step()
            total, count = total + batch_loss.item() * len(xb), count + len(xb)
        history.loss.append(total / count)
        if monitor is not None:
            with eval_mode(model):
                history.monitor.append({"epoch": epoch + 1, **monitor(model)})
        bar.set_postfix(loss=f"{history.loss[-1]:.3f}")
    history.seconds = time.perf_counter() - start
    model.eval()
    return history
