r"""SmoothMix (Jeong, Park, Kim, Lee, Kim and Shin, NeurIPS 2021): confidence-calibrated smoothed classifiers.

With ``m`` noise draws ``d_j ~ N(0, sigma^2 I)`` (shared by the search and the loss of one step) the soft smoothed
classifier is ``F_hat(x) = (1/m) sum_j softmax f(x + d_j)`` (:func:`course_lib.smoothing.smoothed_softmax`).

1. **Search** (:func:`smoothmix_path`): from x, T unrestricted l_2 steps up the smoothed NLL,
   ``x <- clip_[0,1](x + a * g / ||g||_2)`` with ``g = grad_x -log F_hat_y(x)``, model in eval mode, no l_2 ball
   unless ``max_norm`` is given. It finds nearby inputs where the smoothed classifier is confidently WRONG.
2. **Mixup** (:func:`mixup_target`): ``lambda ~ U(0, 1/2)`` per sample,
   ``x_mix = (1 - lambda) x_0 + lambda x_T`` and ``y_mix = (1 - lambda) F_hat(x) + lambda (1/K) 1``: the target
   falls linearly from the clean confidence toward the uniform distribution along the path to ``x_T``.
3. **Loss** (:func:`smoothmix_loss`):
   ``mean_{i,j} CE(f(x_i + d_j), y_i) + eta * w_e * mean_{i,j} 1[argmax F_hat(x_i) = y_i] KL(y_mix_i || softmax f(x_mix_i + d_j))``
   with the warm-up ``w_e = min(1, (e + 1) / warmup_epochs)`` in epoch e. As in the reference implementation
   (jh-jeong/smoothmix, ``train.py``) the indicator multiplies the KL inside a mean over ALL samples, and the
   target is a constant (no gradient flows through ``F_hat(x)``). ``eta = 0`` is Gaussian training with m draws.

``mix_step`` picks the start point ``x_0`` of the mixup: the clean x (0, the default) or the point after that many
search steps (1: the paper's "one-step adversary").
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..attacks.base import project, steepest_step
from ..checks import check_count, check_images, check_labels, check_positive, check_real, check_tensor
from ..device import eval_mode
from ..smoothing.sampling import noise_counts
from ..smoothing.soft import noisy_logits, smoothed_softmax
from .loop import TrainLoss
from .losses import register_loss


def draw_noise(x: torch.Tensor, sigma: float, m: int) -> torch.Tensor:
    """``m`` draws of N(0, sigma^2 I) per input: ``B x m x *shape``. Draw j is ``sigma * randn_like(x)``, so m = 1
    gives exactly the noise of :func:`course_lib.training.gaussian_loss` from the same random state."""
    check_positive(sigma, "sigma")
    check_count(m, "m")
    return torch.stack([sigma * torch.randn_like(x) for _ in range(m)], dim=1)


def smoothed_nll(model: nn.Module, x: torch.Tensor, y: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``-log F_hat_y(x)`` per input (F_hat clamped at 1e-20, as in the reference): the search's objective."""
    probs = smoothed_softmax(model, x, noise)
    return -torch.log(probs.gather(1, y[:, None]).squeeze(1).clamp_min(1e-20))


def smoothmix_path(model: nn.Module, x: torch.Tensor, y: torch.Tensor, noise: torch.Tensor, step_size: float,
                   steps: int, max_norm: float | None = None) -> list[torch.Tensor]:
    r"""The unrestricted search: ``[x_0 = x, x_1, ..., x_T]``, each step along the normalized gradient of the
    smoothed NLL, ``x_{t+1} = clip_[0,1](x_t + a g_t / ||g_t||_2)``, with the same ``noise`` at every step.

    ``max_norm`` (optional) projects ``x_t - x`` onto the l_2 ball of that radius before clipping (the paper's
    ablation); by default the search is unrestricted, so ``||x_T - x||_2 <= T a``. The model runs in eval mode.
    """
    check_images(x, "x")
    check_labels(y, x.shape[0])
    check_positive(step_size, "step_size")
    check_count(steps, "steps", minimum=0)
    if max_norm is not None:
        check_positive(max_norm, "max_norm")
    path = [x.detach()]
    with eval_mode(model):
        x_t = x.detach()
        for _ in range(steps):
            x_t = x_t.clone().requires_grad_(True)
            grad, = torch.autograd.grad(smoothed_nll(model, x_t, y, noise).sum(), [x_t])
            x_t = x_t.detach() + step_size * steepest_step(grad, "l2")  # a g / ||g||_2, per input
            # the optional l_2 ball (projection and clipping as in PGD), else only the clipping to [0, 1]
            x_t = project(x_t, x, max_norm, "l2") if max_norm is not None else x_t.clamp(0.0, 1.0)
            path.append(x_t)
    return path


def mixup_target(clean_probs: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """``(1 - lambda) F_hat(x) + lambda / K``: the SmoothMix target at mixing weight lambda (one per row)."""
    check_tensor(clean_probs, "clean_probs", domain=(0.0, 1.0), dim=2)
    check_tensor(lam, "lam", domain=(0.0, 1.0), dim=1)
    if lam.shape[0] != clean_probs.shape[0]:
        raise ValueError(f"one lambda per row: {clean_probs.shape[0]} rows, got {lam.shape[0]} weights")
    k = clean_probs.shape[1]
    lam = lam.view(-1, 1)
    return (1 - lam) * clean_probs + lam / k


def mixup_inputs(x_start: torch.Tensor, x_adv: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """``(1 - lambda) x_0 + lambda x_T`` per sample."""
    lam = lam.view(-1, *([1] * (x_start.dim() - 1)))
    return (1 - lam) * x_start + lam * x_adv


def warmup(epoch: float, warmup_epochs: int) -> float:
    """``min(1, (e + 1) / warmup_epochs)`` in epoch ``e = floor(epoch)`` (1 throughout if warmup_epochs = 0)."""
    return 1.0 if warmup_epochs == 0 else min(1.0, (math.floor(epoch) + 1) / warmup_epochs)


@register_loss("smoothmix")
def smoothmix_loss(sigma: float, m: int = 2, steps: int = 4, step_size: float = 1.0, eta: float = 5.0,
                   mix_step: int = 0, max_norm: float | None = None, warmup_epochs: int = 10) -> TrainLoss:
    """The SmoothMix training loss (see the module docstring); parameters are checked before any work.

    Reference defaults (jh-jeong/smoothmix): MNIST m = 4, a = 1.0, eta in {1, 5}, T = 2-3 / 4 / 8 at
    sigma = 0.25 / 0.5 / 1.0, warm-up 10 epochs; CIFAR-10 m = 2, T = 4, eta = 5.
    """
    check_positive(sigma, "sigma")
    check_count(m, "m")
    check_count(steps, "steps", minimum=0)
    check_positive(step_size, "step_size")
    if not check_real(eta, "eta") >= 0 or math.isinf(eta):
        raise ValueError(f"eta must be finite and >= 0, got {eta}")
    check_count(mix_step, "mix_step", minimum=0)
    if mix_step > steps:
        raise ValueError(f"mix_step must be <= steps ({steps}), got {mix_step}")
    if max_norm is not None:
        check_positive(max_norm, "max_norm")
    check_count(warmup_epochs, "warmup_epochs", minimum=0)

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: float) -> torch.Tensor:
        noise = draw_noise(x, sigma, m)
        b = x.shape[0]
        logits = noisy_logits(model, x, noise)  # B*m rows, the m draws of input i together
        natural = F.cross_entropy(logits, y.repeat_interleave(m))
        if eta == 0 or steps == 0:
            return natural
        path = smoothmix_path(model, x, y, noise, step_size, steps, max_norm)
        clean_probs = F.softmax(logits, dim=1).view(b, m, -1).mean(1).detach()
        lam = 0.5 * torch.rand(b, device=x.device)
        target = mixup_target(clean_probs, lam)
        x_mix = mixup_inputs(path[mix_step], path[-1], lam)
        log_p_mix = F.log_softmax(noisy_logits(model, x_mix, noise), dim=1)
        kl = F.kl_div(log_p_mix, target.repeat_interleave(m, dim=0), reduction="none").sum(1)
        correct = (clean_probs.argmax(1) == y).float().repeat_interleave(m)
        return natural + eta * warmup(epoch, warmup_epochs) * (correct * kl).mean()

    return loss


def confidence_along_search(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sigma: float, step_size: float,
                            steps: int, m: int = 8, n: int = 100, every: int = 1, seed: int = 0) -> dict:
    r"""The observation that motivates SmoothMix: along the search, how confident is the smoothed classifier?

    Runs :func:`smoothmix_path` (``m`` draws fixed for the search, from a generator seeded with ``seed``) and, at
    every ``every``-th point ``x_t`` and at ``x_T``, estimates the smoothed classifier's vote probabilities
    ``p_c(x_t) = P(f(x_t + e) = c)`` from ``n`` fresh draws (:func:`course_lib.smoothing.noise_counts`). Returns NumPy
    arrays, one row per input: ``step`` (t), ``distance`` ``||x_t - x||_2``, ``p_true`` = ``p_y(x_t)``,
    ``p_off`` = ``max_{c != y} p_c(x_t)``, ``probs`` (B x points x K), and ``path`` (the points, a tensor).
    """
    check_count(every, "every")
    check_count(n, "n")
    generator = torch.Generator().manual_seed(seed)
    noise = sigma * torch.randn((x.shape[0], check_count(m, "m"), *x.shape[1:]), generator=generator)
    path = smoothmix_path(model, x, y, noise.to(x.device), step_size, steps)
    chosen = sorted(set(range(0, steps + 1, every)) | {steps})  # the last point is always x_T
    with eval_mode(model), torch.no_grad():
        k = model(x[:1]).shape[1]
    probs = np.stack([noise_counts(model, path[t], [n], sigma, k, generator=generator, progress=False)[:, 0] / n
                      for t in chosen], axis=1)
    labels = y.cpu().numpy()
    rows = np.arange(len(labels))
    p_true = probs[rows, :, labels]
    off = probs.copy()
    off[rows, :, labels] = -1.0
    distance = np.stack([(path[t] - x).flatten(1).norm(dim=1).detach().cpu().numpy() for t in chosen], axis=1)
    return {"step": np.array(chosen), "distance": distance, "p_true": p_true, "p_off": off.max(axis=2),
            "probs": probs, "path": torch.stack([path[t] for t in chosen], dim=1)}
