"""One training loop for every model kind: images or 2-D points, any loss, optimizer and schedule by name.

A *training loss* is a callable ``loss(model, x, y, epoch) -> scalar`` called with the model in train mode;
``epoch`` is fractional (2.5 = halfway through the third epoch) so that a loss can ramp its radius up
(:mod:`course_lib.training.losses`). The loop draws seeded batches (:func:`course_lib.data.make_loader`), applies
an optional augmentation, steps the optimizer and the learning-rate schedule, shows a progress bar, and after
each epoch can call a *monitor* (e.g. robust accuracy on held-out images, to watch catastrophic overfitting).

Data parallelism. Under a process group of W > 1 processes (``torchrun``, :mod:`course_lib.distributed`) the same
call trains with DistributedDataParallel: every rank draws the single-process batches (the same seeded loader and
augmentation stream) and keeps its contiguous 1/W share of each (per-rank batch = ``batch_size / W``), so the W
ranks together take exactly the single-process steps, up to the order of float additions. See :class:`_DataParallel`.
"""

from __future__ import annotations

import gc
import inspect
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .. import distributed
from ..checks import IMAGE_DOMAIN, Domain, check_choice, check_count, check_inputs, check_positive
from ..data import make_loader
from ..device import autocast, eval_mode, grad_scaler, model_device

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
    "thirds": lambda progress: 0.1 ** ((3 * progress >= 1) + (3 * progress >= 2)),  # Jeong et al.: /10 every 50 of 150
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

    Under a process group of two or more processes every rank calls ``train`` with the same arguments and takes its
    share of each batch (:class:`_DataParallel`); ``batch_size`` stays the global batch and must be divisible by
    the number of processes. The returned history (all-reduced losses, monitor records) and the trained model are
    the same on every rank.
    """
    check_inputs(x, domain)
    epochs = check_count(epochs, "epochs")
    check_positive(lr, "lr")
    check_choice(optimizer, OPTIMIZERS, "optimizer")
    check_choice(schedule, SCHEDULES, "schedule")
    device = model_device(model)
    parallel = _DataParallel.start(model, len(x), batch_size)  # None in a single process: the loop as it always was
    torch.manual_seed(seed if parallel is None else parallel.seed(seed))
    opt = OPTIMIZERS[optimizer](model.parameters(), lr, weight_decay)
    scaler = grad_scaler(device)  # float16 on CUDA only; None (plain backward) elsewhere
    factor = SCHEDULES[schedule]
    history = TrainHistory()
    start = time.perf_counter()
    bar = tqdm(range(epochs), desc=desc, leave=False, disable=desc is None or not distributed.is_main())
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
            if parallel is not None:  # this rank's share of the global batch, augmented as one process would
                xb, yb = parallel.share(xb, yb)
            with autocast(device):  # mixed precision on CUDA; a no-op on the CPU
                batch_loss = loss(model if parallel is None else parallel.model, xb, yb, progress)
            opt.zero_grad(set_to_none=True)
            scaled = batch_loss if parallel is None else parallel.for_backward(batch_loss)
            if scaler is None:
                scaled.backward()
                opt.step()
            else:
                scaler.scale(scaled).backward()
                scaler.step(opt)
                scaler.update()
            total, count = total + batch_loss.item() * len(xb), count + len(xb)
        history.loss.append(total / count if parallel is None else parallel.mean(total, count))
        if parallel is not None:
            parallel.sync_buffers()  # rank 0's batch-norm statistics everywhere: the monitor sees one model
        if monitor is not None:
            with eval_mode(model):
                history.monitor.append({"epoch": epoch + 1, **monitor(model)})
        bar.set_postfix(loss=f"{history.loss[-1]:.3f}")
    history.seconds = time.perf_counter() - start
    if parallel is not None:
        parallel.close()
    model.eval()
    return history


class _TrainForward(nn.Module):
    """What a loss receives as ``model`` under data parallelism: one module, two routes.

    A loss runs the model twice over: the *training* forward, whose backward must all-reduce the gradients, and the
    attacks' forwards, which take gradients with respect to the INPUT only. The route follows the model's mode:
    in train mode a call goes through DistributedDataParallel (which prepares the gradient all-reduce); in eval
    mode, where every attack of the library runs (``eval_mode``, see :mod:`course_lib.attacks.base`), it goes
    straight to the unwrapped module, so adversarial examples are made on each rank from the module itself, and
    DDP's reducer never sees a forward without a matching backward. Losses need no change: they call ``model(x)``
    (or ``model(x, lam)``) as in a single process. Indexing (``model[1]``) reaches the module.
    """

    def __init__(self, ddp: DistributedDataParallel):
        super().__init__()
        self.ddp = ddp

    def forward(self, *args, **kwargs):
        module = self.ddp.module
        return self.ddp(*args, **kwargs) if module.training else module(*args, **kwargs)

    def __getitem__(self, index):
        return self.ddp.module[index]


_NO_FORWARD_SYNC = ("forward_sync_buffers" if "forward_sync_buffers" in
                    inspect.signature(DistributedDataParallel.__init__).parameters else "broadcast_buffers")


class _DataParallel:
    r"""The data-parallel side of :func:`train` under a process group of W > 1 processes.

    - Batches. Every rank draws the single-process global batches (the same ``make_loader`` seeded with
      ``seed * 1000 + epoch``, the same augmentation stream) and keeps the contiguous slice
      :func:`course_lib.distributed.shard` gives it: like DistributedSampler's shares of one seeded permutation,
      the W slices of a step partition the global batch, so the ranks together see exactly the single-process
      data. Per-rank batch ``b = B / W`` (an error if W does not divide B).
    - Gradients. DDP averages the ranks' gradients, ``(1/W) sum_r grad L_r``. For equal slices that is the
      global batch's gradient; for the last, shorter batch of ``m`` examples cut into slices of ``m_r`` examples
      each rank's mean loss is weighted by ``W m_r / m`` before the backward, so that again
      ``(1/W) sum_r (W m_r / m) grad L_r = (1/m) sum_i grad l_i``.
    - Every parameter takes part in every backward: ``0 * p[0, ...]`` of each is added to the loss (the loss and
      the gradients are unchanged, bit for bit). DDP waits for a gradient of every parameter on every rank; a
      parameter some rank did not use in a step (OAT's clean batch norm on a slice without a lambda = 0 example)
      would otherwise stall the all-reduce, and ``find_unused_parameters`` cannot be used, because losses run
      several training forwards per step (PGD-AT's clean term, TRADES, OAT, SmoothMix). An unused parameter thus
      gets a zero gradient where one process would leave it None (only the optimizer's momentum can tell).
    - Randomness. Rank 0 seeds the global stream with ``seed`` (as one process does); rank r > 0 with
      :func:`course_lib.distributed.derived_seed` ``(seed, r)``, so that the ranks' random starts, noise and
      dropout masks are independent draws rather than copies of one another.
    - Batch norm. Statistics are per rank (SyncBatchNorm is not used) and running statistics evolve on each rank
      within an epoch (``forward_sync_buffers=False``: no collective in a forward, whose number may differ between
      ranks); rank 0's are copied to every rank at the end of each epoch, so the monitor, the evaluation and the
      returned model are the same on every rank.
    - The epoch loss is the all-reduced sum of losses over the all-reduced number of examples.
    """

    def __init__(self, model: nn.Module):
        device = model_device(model)
        self.rank, self.world = distributed.rank(), distributed.world_size()
        # DDP's constructor broadcasts rank 0's parameters (and, with forward_sync_buffers, its buffers): the ranks
        # start from the same weights. No buffer collective in a forward (older torch: broadcast_buffers=False).
        no_forward_sync = {_NO_FORWARD_SYNC: False}
        self.ddp = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None,
                                           **no_forward_sync)
        self.sync_buffers()  # rank 0's buffers everywhere from the start, whatever the torch version
        self.model = _TrainForward(self.ddp)
        self.params = [p for p in model.parameters() if p.requires_grad and p.numel()]
        self.weight = 1.0

    @classmethod
    def start(cls, model: nn.Module, n: int, batch_size: int) -> "_DataParallel | None":
        """None without a process group of two or more processes; else checks the batch size and wraps the model."""
        if distributed.world_size() < 2:
            return None
        distributed.local_batch_size(check_count(batch_size, "batch_size"), n, distributed.world_size())
        return cls(model)

    def seed(self, seed: int) -> int:
        return seed if self.rank == 0 else distributed.derived_seed(seed, self.rank)

    def share(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        part = distributed.shard(len(xb), self.rank, self.world)
        self.weight = len(part) * self.world / len(xb)
        return xb[part.start:part.stop], yb[part.start:part.stop]

    def for_backward(self, batch_loss: torch.Tensor) -> torch.Tensor:
        """The rank's loss weighted for DDP's average, with every parameter in its graph (class docstring)."""
        weighted = batch_loss if self.weight == 1 else batch_loss * self.weight
        return weighted + 0.0 * torch.stack([p[(0,) * p.dim()].float() for p in self.params]).sum()

    def mean(self, total: float, count: int) -> float:
        total, count = distributed.all_reduce_sum(torch.tensor([total, count], dtype=torch.float64)).tolist()
        return total / count

    def sync_buffers(self) -> None:
        distributed.broadcast_module(self.ddp.module, buffers_only=True)

    def close(self) -> None:
        """Drop the DDP wrapper (its gradient hooks go with it): the module trains alone again afterwards."""
        self.model = self.ddp = None
        gc.collect()
