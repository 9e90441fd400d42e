"""Tests of course_lib.mixing: the mixed classifier, margins, the certified radii of Theorems 4 and 5 (against
hand-computed cases and SciPy), the Hoeffding bounds' coverage in simulation, the alpha sweep and transfer attacks."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import norm
from torch import nn

from course_lib.attacks import pgd, transfer
from course_lib.mixing import (MixedClassifier, alpha_sweep, certify_mixture, gaussian_lipschitz, hoeffding_bounds,
                               lipschitz_radius, margin_statistics, probability_bounds, probability_margin,
                               smoothed_probability_bounds, smoothing_radius)
from course_lib.smoothing import radius_from_probabilities


class Fixed(nn.Module):
    """A 'model' that returns given logits for the first rows of its input batch (size-checked)."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[: x.shape[0]]


def linear_model(seed: int, k: int = 4, d: int = 6, scale: float = 3.0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(d, k))
    with torch.no_grad():
        model[1].weight.mul_(scale)
    return model.eval()


# ---------------------------------------------------------------------------------------- the mixed classifier
def test_the_mixture_at_alpha_0_and_1_is_g_and_h_and_its_probabilities_sum_to_one():
    g, h = linear_model(0), linear_model(1)
    x = torch.rand(8, 1, 1, 6)
    assert torch.allclose(MixedClassifier(g, h, 0.0)(x), F.log_softmax(g(x), 1), atol=1e-6)
    assert torch.allclose(MixedClassifier(g, h, 1.0)(x), F.log_softmax(h(x), 1), atol=1e-6)
    for alpha in (0.0, 0.3, 0.5, 0.77, 1.0):
        out = MixedClassifier(g, h, alpha)(x)
        assert torch.allclose(out.exp().sum(1), torch.ones(8), atol=1e-6)
        expected = (1 - alpha) * F.softmax(g(x), 1) + alpha * F.softmax(h(x), 1)
        assert torch.allclose(out.exp(), expected, atol=1e-6)
    logit_mix = MixedClassifier(g, h, 0.25, space="logits")
    assert torch.allclose(logit_mix(x), 0.75 * g(x) + 0.25 * h(x), atol=1e-6)


def test_the_mixture_is_stable_for_huge_logits_and_differentiable_at_the_ends():
    zg = torch.tensor([[1e4, -1e4, 0.0]])
    zh = torch.tensor([[-3e4, 3e4, 0.0]])
    out = MixedClassifier(Fixed(zg), Fixed(zh), 0.6)(torch.zeros(1, 3))
    assert torch.isfinite(out).all()
    assert torch.allclose(out.exp(), torch.tensor([[0.4, 0.6, 0.0]]), atol=1e-6)
    g, h = linear_model(0), linear_model(1)
    for alpha in (0.0, 1.0):
        x = torch.rand(4, 1, 1, 6, requires_grad=True)
        F.cross_entropy(MixedClassifier(g, h, alpha)(x), torch.arange(4)).backward()
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_mixture_bad_inputs_are_clear_errors():
    g, h = linear_model(0, k=4), linear_model(1, k=5)
    for alpha in (-0.1, 1.01, float("nan")):
        with pytest.raises(ValueError, match="alpha"):
            MixedClassifier(g, g, alpha)
    mix = MixedClassifier(g, g, 0.5)
    with pytest.raises(ValueError, match="alpha"):
        mix.alpha = 2.0
    with pytest.raises(TypeError, match="alpha"):
        MixedClassifier(g, g, "0.5")
    with pytest.raises(ValueError, match="space"):
        MixedClassifier(g, g, 0.5, space="logit")
    with pytest.raises(ValueError, match="class counts"):
        MixedClassifier(g, h, 0.5)(torch.rand(2, 1, 1, 6))


# ---------------------------------------------------------------------------------------- the margin lemma
def test_lemma_2_holds_in_simulation_and_is_tight():
    """If h keeps margin (1 - alpha) / alpha, no g can change the mixture's class; with a smaller margin some g does."""
    gen = torch.Generator().manual_seed(0)
    k = 5
    for alpha in (0.5, 0.6, 0.75, 0.9, 1.0):
        mu = (1 - alpha) / alpha
        h = torch.rand(2000, k, generator=gen)
        h[:, 0] = h[:, 1:].max(1).values  # class 0 ties the runner-up ...
        h = h / h.sum(1, keepdim=True) * (1 - mu)
        h[:, 0] += mu  # ... then gets exactly the margin mu; rows still sum to one
        # the worst g puts all its mass on h's runner-up
        worst_g = F.one_hot(h[:, 1:].argmax(1) + 1, k).float()
        mixed = (1 - alpha) * worst_g + alpha * h
        top, runner = mixed[:, 0], mixed.scatter(1, torch.zeros(2000, 1, dtype=torch.long), -1.0).max(1).values
        assert (top >= runner - 1e-6).all()  # the lemma: class 0 is still (weakly) on top
        if alpha < 1:  # tightness: a margin slightly below mu loses against that g
            h_less = h.clone()
            h_less[:, 0] -= 1e-3
            h_less[torch.arange(2000), h[:, 1:].argmax(1) + 1] += 1e-3
            mixed = (1 - alpha) * worst_g + alpha * h_less
            assert (mixed.argmax(1) != 0).all()


def test_probability_margin_against_hand_computed_cases():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2], [1.0, 0.0, 0.0]])
    assert torch.allclose(probability_margin(probs.clamp_min(1e-30).log()), torch.tensor([0.5, 0.0, 1.0]),
                          atol=1e-6)
    assert torch.allclose(probability_margin(torch.tensor([[2.0, 0.0]])),
                          torch.tensor([math.tanh(1.0)]), atol=1e-6)  # sigmoid(2) - sigmoid(-2) = tanh(1)
    with pytest.raises(ValueError, match="two classes"):
        probability_margin(torch.zeros(3, 1))


def test_margin_statistics_split_inputs_by_correctness():
    logits = torch.tensor([[3.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.5, 0.0]])
    model = Fixed(logits)
    y = torch.tensor([0, 0, 0, 1])
    stats = margin_statistics(model, torch.zeros(4, 2), y, torch.zeros(4, 2))
    m = probability_margin(logits)
    assert stats["robust_count"] == 2 and stats["mistakes_count"] == 2 and stats["clean_correct_count"] == 2
    assert stats["mistakes_mean"] == pytest.approx((m[1] + m[3]).item() / 2, abs=1e-6)
    assert stats["robust_median"] == pytest.approx((m[0] + m[2]).item() / 2, abs=1e-6)  # median of two values
    with pytest.raises(ValueError, match="shape"):
        margin_statistics(model, torch.zeros(4, 2), y, torch.zeros(3, 2))


# ---------------------------------------------------------------------------------------- certified radii
def test_theorem_4_radius_against_hand_computed_cases():
    assert lipschitz_radius(1.0, 0.0, 1.0, 1.0) == pytest.approx(0.5)  # (h_y - h_y') / (2 L)
    assert lipschitz_radius(1.0, 0.0, 0.75, 2.0) == pytest.approx((0.75 + 0.75 - 1) / (2 * 0.75 * 2.0))
    assert lipschitz_radius(1.0, 0.0, 0.5, 1.0) == 0.0  # alpha = 1/2: nothing, even at full confidence
    mu = 0.1 / 0.9  # margin 0.2 > mu: a positive radius (0.2 - mu) / (2 L)
    assert lipschitz_radius(0.6, 0.4, 0.9, 1.0) == pytest.approx((0.2 - mu) / 2, abs=1e-12)
    assert lipschitz_radius(0.6, 0.5, 0.9, 1.0) == 0.0  # margin 0.1 < mu: nothing
    assert lipschitz_radius(0.3, 0.7, 1.0, 1.0) == 0.0  # runner-up above the top: no radius
    assert lipschitz_radius(0.9, 0.1, 0.0, 1.0) == 0.0
    r = lipschitz_radius(np.array([0.9, 0.5]), np.array([0.1, 0.5]), 1.0, 4.0)
    assert np.allclose(r, [0.1, 0.0])


def test_theorem_5_radius_against_scipy_and_cohen_at_alpha_1():
    p, q, sigma = 0.9, 0.1, 0.5
    for alpha in (0.6, 0.8, 0.95):
        mu = (1 - alpha) / alpha
        expected = sigma / 2 * (norm.ppf(p / (1 + mu)) - norm.ppf((q + mu) / (1 + mu)))
        assert smoothing_radius(p, q, alpha, sigma) == pytest.approx(max(expected, 0.0), rel=1e-12)
    grid = np.linspace(0.0, 1.0, 21)
    pt, pr = np.meshgrid(grid, grid)
    assert np.allclose(smoothing_radius(pt, pr, 1.0, sigma), radius_from_probabilities(pt, pr, sigma))
    assert np.all(smoothing_radius(pt, pr, 0.5, sigma) == 0)  # alpha = 1/2 certifies nothing
    assert np.all(smoothing_radius(pt, pr, 0.3, sigma) == 0)


def test_theorem_5_is_never_smaller_than_theorem_4_for_a_smoothed_h():
    sigma = 0.25
    grid = np.linspace(0.0, 1.0, 101)
    pt, pr = np.meshgrid(grid, grid)
    keep = pt + pr <= 1  # probabilities of two classes
    for alpha in (0.5, 0.51, 0.6, 0.75, 0.9, 0.99, 1.0):
        t4 = lipschitz_radius(pt[keep], pr[keep], alpha, gaussian_lipschitz(sigma))
        t5 = smoothing_radius(pt[keep], pr[keep], alpha, sigma)
        assert np.all(t5 >= t4 - 1e-12), alpha
        if alpha > 0.5:  # strictly larger wherever Theorem 4 certifies: by a factor >= 2 / (1 + mu) = 2 alpha
            positive = t4 > 0
            assert positive.any() and np.all(t5[positive] >= t4[positive] * 2 * alpha - 1e-12)
            assert np.all(t5[positive] > t4[positive])


def test_radius_bad_inputs():
    with pytest.raises(ValueError, match="alpha"):
        lipschitz_radius(0.9, 0.1, 1.5, 1.0)
    with pytest.raises(ValueError, match="lipschitz"):
        lipschitz_radius(0.9, 0.1, 0.8, 0.0)
    with pytest.raises(ValueError, match="sigma"):
        smoothing_radius(0.9, 0.1, 0.8, -1.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        smoothing_radius(1.2, 0.1, 0.8, 1.0)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_lipschitz(0.0)


def test_certify_mixture_gives_zero_radius_where_h_is_wrong():
    bounds = {"prediction": np.array([0, 1, 2]), "p_top": np.array([0.95, 0.95, 0.95]),
              "p_runner": np.array([0.03, 0.03, 0.03])}
    out = certify_mixture(bounds, torch.tensor([0, 2, 2]), alpha=0.8, sigma=0.5)
    assert list(out["correct"]) == [True, False, True]
    for kind in ("lipschitz", "smoothing"):
        assert out[kind][1] == 0 and out[kind][0] > 0 and out[kind][0] == out[kind][2]
    assert out["smoothing"][0] > out["lipschitz"][0]
    with pytest.raises(ValueError, match="one label per example"):
        certify_mixture(bounds, torch.tensor([0, 1]), alpha=0.8, sigma=0.5)


# ---------------------------------------------------------------------------------------- confidence bounds
def test_hoeffding_bounds_cover_the_mean_of_bounded_draws():
    """Coverage in a seeded simulation: Beta(2, 5) draws (mean 2/7), n = 30, 4000 repetitions; each one-sided
    bound may fail in at most alpha_conf of them (plus 3 binomial standard errors)."""
    rng = np.random.default_rng(0)
    alpha_conf, reps, n = 0.1, 4000, 30
    means = rng.beta(2, 5, size=(reps, n)).mean(1)
    lower, upper = hoeffding_bounds(means, n, alpha_conf)
    slack = 3 * math.sqrt(alpha_conf * (1 - alpha_conf) / reps)
    assert np.mean(lower > 2 / 7) <= alpha_conf + slack
    assert np.mean(upper < 2 / 7) <= alpha_conf + slack
    assert np.all(lower <= means) and np.all(upper >= means)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        hoeffding_bounds(1.5, 10, 0.1)
    with pytest.raises(ValueError, match="alpha"):
        hoeffding_bounds(0.5, 10, 1.0)


def test_smoothed_probability_bounds_hold_jointly_with_the_stated_probability():
    """A linear 4-class model on 6-D inputs: the soft smoothed probabilities from 400,000 draws serve as the truth;
    over 300 seeded certifications with n = 100 at alpha_conf = 0.2, the joint bound (top class from below, every
    other class from above) fails in at most 20% of them (plus 3 standard errors)."""
    model = linear_model(3)
    x = torch.rand(1, 1, 1, 6, generator=torch.Generator().manual_seed(1))
    sigma, alpha_conf, reps = 0.5, 0.2, 300
    truth = smoothed_probability_bounds(model, x, sigma, 10, 400_000, 0.01, 4, batch_size=20_000,
                                        generator=torch.Generator().manual_seed(99), progress=False)["mean"][0]
    failures = 0
    gen = torch.Generator().manual_seed(5)
    for _ in range(reps):
        b = smoothed_probability_bounds(model, x, sigma, 20, 100, alpha_conf, 4, generator=gen, progress=False)
        c = b["prediction"][0]
        others = np.delete(truth, c)
        failures += bool(b["p_top"][0] > truth[c] or b["p_runner"][0] < others.max())
    assert failures / reps <= alpha_conf + 3 * math.sqrt(alpha_conf * (1 - alpha_conf) / reps)
    assert abs(truth.sum() - 1) < 1e-9


def test_the_cached_soft_smoothing_sums_rebuild_the_same_bounds(trained_tiny_model, quick_data):
    """zoo.evaluate(name, "soft_smoothing", ...) stores the softmax sums; probability_bounds on them gives exactly
    what smoothed_probability_bounds computes live with the same seed (chapter 6 reads the cached form)."""
    from course_lib.evaluation import EVALUATIONS
    from course_lib.profiles import get_profile
    record = EVALUATIONS["soft_smoothing"](trained_tiny_model, quick_data, get_profile("quick"), sigma=0.5, n0=8,
                                           n=40, images=6, seed=3)
    cached = probability_bounds(np.array(record["sums"]), record["n"], 0.01)
    live = smoothed_probability_bounds(trained_tiny_model, quick_data.x_test[:6], 0.5, 8, 40, 0.01, 10,
                                       generator=torch.Generator().manual_seed(3), progress=False)
    assert record["images"] == 6 and set(cached) == set(live)
    for key in live:
        assert np.array_equal(cached[key], live[key]), key
    with pytest.raises(ValueError, match="shape"):
        probability_bounds(np.zeros((6, 3, 10)), 40, 0.01)
    with pytest.raises(ValueError, match="alpha"):
        probability_bounds(np.array(record["sums"]), 40, 1.5)


# ---------------------------------------------------------------------------------------- attacks and the sweep
def test_a_transfer_attack_attacks_the_source_whatever_model_it_is_given():
    g, h = linear_model(0), linear_model(1)
    x, y = torch.rand(6, 1, 1, 6), torch.arange(6) % 4
    attack = partial(pgd, eps=0.1, steps=3, random_start=False)
    assert torch.equal(transfer(g, attack)(h, x, y), attack(g, x, y))
    with pytest.raises(TypeError, match="torch module"):
        transfer(lambda z: z, attack)


def test_the_alpha_sweep_reports_every_attack_and_its_worst_case():
    g, h = linear_model(0), linear_model(1)
    x = torch.rand(12, 1, 1, 6, generator=torch.Generator().manual_seed(0))
    y = h(x).argmax(1)
    sweep = alpha_sweep(g, h, x, y, [0.0, 0.5, 1.0], eps=0.05, steps=3, restarts=1, autoattack=False)
    assert sorted(sweep) == [0.0, 0.5, 1.0]
    for hits in sweep.values():
        assert {"clean", "fgsm", "pgd", "std", "rob", "worst"} <= set(hits)
        others = torch.stack([v for k, v in hits.items() if k != "worst"])
        assert torch.equal(hits["worst"], others.all(0))
    assert sweep[1.0]["clean"].all()  # at alpha = 1 the mixture is h, which defines the labels here
    with pytest.raises(ValueError, match="alpha"):
        alpha_sweep(g, h, x, y, [1.5], eps=0.05)


def test_certified_radii_shrink_as_alpha_falls_towards_one_half():
    grid = np.linspace(0.0, 1.0, 41)
    pt, pr = np.meshgrid(grid, grid)
    keep = pt + pr <= 1
    alphas = np.linspace(0.5, 1.0, 26)
    for radius in (lambda a: lipschitz_radius(pt[keep], pr[keep], a, 2.0),
                   lambda a: smoothing_radius(pt[keep], pr[keep], a, 0.5)):
        values = np.stack([radius(a) for a in alphas])
        assert np.all(np.diff(values, axis=0) >= -1e-12)  # non-decreasing in alpha, pointwise
        assert np.all(values[0] == 0) and values[-1].max() > 0
