"""Tests of SmoothMix (course_lib.training.smoothmix) against direct computations.

- F_hat with given noise is the mean of the softmaxes of the noisy copies (and the loss and the search share it).
- The search raises the smoothed NLL, stays in [0, 1], takes steps of length a before clipping, respects max_norm,
  returns x itself after 0 steps, and runs the model in eval mode (then restores train mode).
- The mixup target is F_hat(x) at lambda = 0, halfway to uniform at lambda = 1/2, and a probability vector.
- eta = 0 with one draw is Gaussian training exactly (same loss value, same trained weights); the full loss equals
  a direct transcription of the formula; a few training steps lower the loss on a tiny batch.
- Bad input is a clear error before any work.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.smoothing import smoothed_softmax
from course_lib.training import (LOSSES, draw_noise, gaussian_loss, mixup_inputs, mixup_target, smoothed_nll,
                                 smoothmix_loss, smoothmix_path, train, warmup)
from helpers import Probe

pytestmark = pytest.mark.usefixtures("single_thread")


def net(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(Probe(), nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))


def batch(n: int = 6, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_registered():
    assert LOSSES["smoothmix"] is smoothmix_loss


def test_smoothed_softmax_is_the_mean_of_the_softmaxes():
    model, (x, _) = net(), batch()
    noise = draw_noise(x, 0.5, 3)
    assert noise.shape == (6, 3, 1, 8, 8)
    direct = torch.stack([F.softmax(model(x + noise[:, j]), 1) for j in range(3)]).mean(0)
    torch.testing.assert_close(smoothed_softmax(model, x, noise), direct)
    nll = -torch.log(direct.gather(1, batch()[1][:, None]).squeeze(1))
    torch.testing.assert_close(smoothed_nll(model, x, batch()[1], noise), nll)


def test_noise_of_one_draw_is_gaussian_trainings():
    x, _ = batch()
    torch.manual_seed(3)
    ours = draw_noise(x, 0.25, 1)[:, 0]
    torch.manual_seed(3)
    assert torch.equal(ours, 0.25 * torch.randn_like(x))


def test_search_raises_the_smoothed_nll_and_stays_in_the_box():
    model, (x, y) = net(), batch(20)
    noise = draw_noise(x, 0.25, 4)
    path = smoothmix_path(model, x, y, noise, step_size=0.5, steps=5)
    assert len(path) == 6 and torch.equal(path[0], x)
    assert model[0].seen and not any(model[0].seen)  # eval mode throughout the search
    assert model.training  # and back in train mode afterwards
    losses = [smoothed_nll(model, p, y, noise).mean().item() for p in path]
    assert losses[-1] > losses[0] + 0.05
    for previous, point in zip(path, path[1:]):
        assert point.min() >= 0 and point.max() <= 1
        step = (point - previous).flatten(1).norm(dim=1)
        assert torch.all(step <= 0.5 + 1e-5)  # a step of a, shortened only by the clipping


def test_search_length_without_clipping_and_with_max_norm():
    model = net()
    x = torch.full((4, 1, 8, 8), 0.5)  # far from the box's faces: 3 steps of 0.1 are never clipped
    y = torch.tensor([0, 1, 2, 0])
    noise = draw_noise(x, 0.1, 2)
    path = smoothmix_path(model, x, y, noise, step_size=0.1, steps=3)
    for previous, point in zip(path, path[1:]):
        torch.testing.assert_close((point - previous).flatten(1).norm(dim=1), torch.full((4,), 0.1))
    assert torch.all((path[-1] - x).flatten(1).norm(dim=1) <= 0.3 + 1e-5)
    capped = smoothmix_path(model, x, y, noise, step_size=0.1, steps=3, max_norm=0.15)[-1]
    torch.testing.assert_close((capped - x).flatten(1).norm(dim=1), torch.full((4,), 0.15))
    assert torch.equal(smoothmix_path(model, x, y, noise, 0.1, 0)[-1], x)


def test_mixup_target_and_inputs():
    probs = F.softmax(torch.randn(5, 4), 1)
    torch.testing.assert_close(mixup_target(probs, torch.zeros(5)), probs)
    half = mixup_target(probs, torch.full((5,), 0.5))
    torch.testing.assert_close(half, (probs + 0.25) / 2)
    torch.testing.assert_close(mixup_target(probs, torch.rand(5) / 2).sum(1), torch.ones(5))
    a, b = torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)
    mixed = mixup_inputs(a, b, torch.tensor([0.0, 0.25]))
    assert torch.equal(mixed[0], a[0]) and torch.allclose(mixed[1], torch.full((1, 2, 2), 0.25))
    with pytest.raises(ValueError, match="lam"):
        mixup_target(probs, torch.full((5,), 1.5))
    with pytest.raises(ValueError, match="one lambda per row"):
        mixup_target(probs, torch.zeros(4))


def test_warmup():
    assert [warmup(e, 4) for e in (0.0, 0.99, 1.0, 3.5, 10.0)] == [0.25, 0.25, 0.5, 1.0, 1.0]
    assert warmup(0.0, 0) == 1.0


def test_eta_zero_is_gaussian_training_exactly():
    (x, y) = batch(16)
    for seed in (0, 1):
        torch.manual_seed(seed)
        ours = smoothmix_loss(0.5, m=1, eta=0.0)(net(), x, y, 0.0)
        torch.manual_seed(seed)
        theirs = gaussian_loss(0.5)(net(), x, y, 0.0)
        assert torch.equal(ours, theirs)
    xs, ys = batch(64, seed=2)
    a, b = net(), net()
    train(a, xs, ys, smoothmix_loss(0.5, m=1, eta=0.0), epochs=2, batch_size=16, desc=None)
    train(b, xs, ys, gaussian_loss(0.5), epochs=2, batch_size=16, desc=None)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_loss_matches_the_formula():
    model, (x, y) = net(), batch(8)
    sigma, m, steps, a, eta = 0.3, 3, 2, 0.4, 2.0
    torch.manual_seed(5)
    ours = smoothmix_loss(sigma, m=m, steps=steps, step_size=a, eta=eta, warmup_epochs=4)(model, x, y, 1.2)
    torch.manual_seed(5)
    noise = torch.stack([sigma * torch.randn_like(x) for _ in range(m)], dim=1)
    x_adv = x.clone()
    for _ in range(steps):  # the search, written out
        x_adv.requires_grad_(True)
        probs = torch.stack([F.softmax(model(x_adv + noise[:, j]), 1) for j in range(m)]).mean(0)
        g, = torch.autograd.grad(-torch.log(probs[torch.arange(8), y]).sum(), [x_adv])
        x_adv = (x_adv.detach() + a * g / (g.flatten(1).norm(dim=1).view(-1, 1, 1, 1) + 1e-8)).clamp(0, 1)
    lam = 0.5 * torch.rand(8)
    natural = sum(F.cross_entropy(model(x + noise[:, j]), y) for j in range(m)) / m
    clean = torch.stack([F.softmax(model(x + noise[:, j]), 1) for j in range(m)]).mean(0).detach()
    target = (1 - lam[:, None]) * clean + lam[:, None] / 3
    x_mix = (1 - lam.view(-1, 1, 1, 1)) * x + lam.view(-1, 1, 1, 1) * x_adv
    right = (clean.argmax(1) == y).float()
    kl = 0.0
    for j in range(m):
        log_q = F.log_softmax(model(x_mix + noise[:, j]), 1)
        kl = kl + (right * (target * (target.log() - log_q)).sum(1)).mean() / m
    torch.testing.assert_close(ours, natural + eta * 0.5 * kl)  # warm-up in epoch 1 of 4: 2/4


def test_training_lowers_the_loss():
    model, (x, y) = net(), batch(32)
    loss = smoothmix_loss(0.25, m=2, steps=2, step_size=0.5, eta=1.0, warmup_epochs=0)
    torch.manual_seed(0)
    before = loss(model, x, y, 5.0).item()
    train(model, x, y, loss, epochs=30, batch_size=32, lr=1e-2, desc=None)
    model.train()
    torch.manual_seed(0)
    assert loss(model, x, y, 5.0).item() < 0.8 * before


@pytest.mark.parametrize("kwargs, error, match", [
    ({"sigma": 0.0}, ValueError, "sigma"), ({"sigma": -1.0}, ValueError, "sigma"),
    ({"m": 0}, ValueError, "m must be"), ({"m": 1.5}, TypeError, "m must be"),
    ({"steps": -1}, ValueError, "steps"), ({"eta": -0.1}, ValueError, "eta"),
    ({"eta": float("inf")}, ValueError, "eta"), ({"step_size": 0.0}, ValueError, "step_size"),
    ({"mix_step": 5, "steps": 4}, ValueError, "mix_step"), ({"max_norm": 0.0}, ValueError, "max_norm"),
    ({"warmup_epochs": -1}, ValueError, "warmup_epochs"),
])
def test_bad_parameters(kwargs, error, match):
    params = {"sigma": 0.5, **kwargs}
    with pytest.raises(error, match=match):
        smoothmix_loss(**params)


def test_bad_search_inputs():
    model, (x, y) = net(), batch()
    noise = draw_noise(x, 0.5, 2)
    with pytest.raises(ValueError, match="step_size"):
        smoothmix_path(model, x, y, noise, 0.0, 3)
    with pytest.raises(ValueError, match="steps"):
        smoothmix_path(model, x, y, noise, 1.0, -1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        smoothmix_path(model, x + 2, y, noise, 1.0, 1)
    with pytest.raises(ValueError, match="noise must have shape"):
        smoothmix_path(model, x, y, noise[:, :, :, :4], 1.0, 1)
    with pytest.raises(ValueError, match="one label per example"):
        smoothmix_path(model, x, y[:3], noise, 1.0, 1)
    with pytest.raises(ValueError, match="sigma"):
        draw_noise(x, 0.0, 2)
    with pytest.raises(ValueError, match="m must be"):
        draw_noise(x, 0.5, 0)
