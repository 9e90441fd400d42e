"""MixedNUTS: the logit transform, the classifier, Algorithm 1 and the minimum-margin attack."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm
from torch import nn

from course_lib.attacks import label_margin, min_margin, pgd
from course_lib.evaluation import correct, robust_correct
from course_lib.mixing import (MixedClassifier, MixedNUTS, algorithm1, argmax_guaranteed, layer_norm_logits,
                               nuts_transform)


def gelu_exact(t: float) -> float:
    return t * norm.cdf(t)


def test_each_step_of_the_transform_matches_a_hand_computation():
    z = torch.tensor([[2.0, 0.0, -1.0, 3.0]])
    s, p, c = 1.7, 2.5, -0.3
    mean, var = np.mean(z.numpy()), np.var(z.numpy())  # biased variance, as layer norm
    ln = (z.numpy()[0] - mean) / math.sqrt(var + 1e-8)
    assert np.allclose(layer_norm_logits(z).numpy()[0], ln, atol=1e-12)
    u = np.array([gelu_exact(t + c) for t in ln])
    expected = s * np.sign(u) * np.abs(u) ** p
    out = nuts_transform(z, s, p, c)
    assert out.dtype == torch.float64
    assert np.allclose(out.numpy()[0], expected, atol=1e-12)
    relu = nuts_transform(z, 1.0, 1.0, c, clamp="relu").numpy()[0]
    assert np.allclose(relu, np.maximum(ln + c, 0), atol=1e-12)


def test_layer_norm_gives_mean_zero_and_unit_variance_and_ignores_shift_and_scale():
    z = torch.randn(6, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 5
    ln = layer_norm_logits(z)
    assert torch.allclose(ln.mean(1), torch.zeros(6, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(ln.var(1, unbiased=False), torch.ones(6, dtype=torch.float64), atol=1e-7)
    assert torch.allclose(layer_norm_logits(3 * z + 7), ln, atol=1e-7)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-30, 30), min_size=10, max_size=10).filter(lambda v: np.std(v) > 1e-2),
       st.floats(0.05, 5), st.floats(0.5, 4), st.integers(0, 100))
def test_the_argmax_is_kept_whenever_c_is_above_the_guarantee(logits, s, p, c_step):
    k = len(logits)
    c = -1 / math.sqrt(k - 1) + c_step / 50  # from the bound up to +2
    assert argmax_guaranteed(c + 1e-9, k)
    z = torch.tensor([logits], dtype=torch.float64)
    out = nuts_transform(z, s, p, c + 1e-9)
    top = z.argmax(1)
    assert out[0, top] == out.max()  # the top class stays on top (ties allowed only at equal logits)


def test_below_the_bound_a_constructed_logit_vector_changes_class():
    """K - 1 logits at 1/sqrt(K - 1) (one slightly higher) and one at -(K - 1)/sqrt(K - 1): with c a little below
    -1/sqrt(K - 1), the top clamped value sits in GELU's dip while the very negative one is almost 0."""
    k = 10
    a = 1 / math.sqrt(k - 1)
    z = torch.full((1, k), a, dtype=torch.float64)
    z[0, 0] = -(k - 1) * a
    z[0, 1] += 1e-4
    c = -a - 0.02
    assert not argmax_guaranteed(c, k)
    assert z.argmax(1).item() == 1
    assert nuts_transform(z, 1.0, 1.0, c).argmax(1).item() == 0
    assert nuts_transform(z, 1.0, 1.0, -a + 0.01).argmax(1).item() == 1


class Fixed(nn.Module):
    """A 'model' that returns given logits for each input index stored in the first pixel."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[(x[:, 0, 0, 0] * 100).round().long()]


def test_mixednuts_matches_its_formula_and_its_probabilities_sum_to_one():
    gen = torch.Generator().manual_seed(1)
    zg, zh = torch.randn(5, 4, generator=gen) * 3, torch.randn(5, 4, generator=gen) * 3
    x = torch.arange(5, dtype=torch.float32).view(5, 1, 1, 1).expand(5, 1, 2, 2) / 100
    model = MixedNUTS(Fixed(zg), Fixed(zh), 0.7, s=2.0, p=1.5, c=-0.2)
    q = F.one_hot(zg.argmax(1), 4).double()
    expected = 0.3 * q + 0.7 * torch.softmax(nuts_transform(zh, 2.0, 1.5, -0.2), 1)
    out = model(x)
    assert torch.allclose(out.double().exp(), expected, atol=1e-6)
    assert torch.allclose(out.double().exp().sum(1), torch.ones(5, dtype=torch.float64), atol=1e-6)
    soft = MixedNUTS(Fixed(zg), Fixed(zh), 0.7, s=2.0, p=1.5, c=-0.2, temperature=0.5)(x).double().exp()
    expected = 0.3 * torch.softmax(zg.double() / 0.5, 1) + 0.7 * torch.softmax(nuts_transform(zh, 2.0, 1.5, -0.2), 1)
    assert torch.allclose(soft, expected, atol=1e-6)
    # alpha = 1 is h under the transform; alpha = 0 is g's argmax
    assert torch.equal(MixedNUTS(Fixed(zg), Fixed(zh), 0.0, 1, 1, 0)(x).argmax(1), zg.argmax(1))
    raw = model.surrogates()["raw"]
    assert isinstance(raw, MixedClassifier) and raw.alpha == 0.7
    assert model.surrogates()["soft"].temperature == 1.0


@pytest.mark.parametrize("kwargs, message", [
    ({"s": 0.0}, "s must be"), ({"p": -1.0}, "p must be"), ({"alpha": 1.5}, "alpha"),
    ({"clamp": "tanh"}, "clamp"), ({"temperature": -1.0}, "temperature")])
def test_mixednuts_rejects_bad_parameters(kwargs, message):
    args = {"alpha": 0.6, "s": 1.0, "p": 1.0, "c": 0.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        MixedNUTS(nn.Identity(), nn.Identity(), **args)


def brute_force_algorithm1(robust_logits, labels, mistakes, s_grid, p_grid, c_grid, beta):
    """The paper's triple loop, one grid point at a time with numpy."""
    best = None
    for (i, s), (j, p), (k, c) in itertools.product(enumerate(s_grid), enumerate(p_grid), enumerate(c_grid)):
        pa = torch.softmax(nuts_transform(robust_logits, s, p, c), 1).numpy()
        ma = pa[np.arange(len(pa)), labels.numpy()] - np.where(
            np.eye(pa.shape[1])[labels.numpy()] > 0, -1, pa).max(1)
        q = min(np.quantile(ma, 1 - beta, method="lower"), 1 - 1e-6)
        pb = np.sort(torch.softmax(nuts_transform(mistakes, s, p, c), 1).numpy(), 1)
        obj = np.mean(pb[:, -1] - pb[:, -2] >= q) if q > 0 else math.inf
        if best is None or obj < best[0]:
            best = (obj, s, p, c, q)
    return best


def test_algorithm1_agrees_with_a_brute_force_loop():
    gen = torch.Generator().manual_seed(3)
    robust = torch.randn(40, 5, generator=gen, dtype=torch.float64) * 2
    labels = robust.argmax(1)
    robust[torch.arange(40), labels] += 1.0
    mistakes = torch.randn(15, 5, generator=gen, dtype=torch.float64)
    grids = ([0.1, 0.5, 2.0], [1.0, 2.0, 3.5], [-0.8, -0.3, 0.0])
    fit = algorithm1(robust, labels, mistakes, *grids, beta=0.9)
    obj, s, p, c, q = brute_force_algorithm1(robust, labels, mistakes, *grids, 0.9)
    assert (fit["s"], fit["p"], fit["c"]) == (s, p, c)
    assert fit["objective"] == pytest.approx(obj) and fit["cutoff"] == pytest.approx(q)
    assert fit["alpha"] == pytest.approx(1 / (1 + fit["cutoff"]))
    assert fit["objectives"].shape == (3, 3, 3)
    other = algorithm1(robust, labels, mistakes, *grids, beta=0.9, ties="smallest_alpha")
    tied = fit["objectives"] == fit["objective"]
    assert other["objective"] == fit["objective"]
    assert other["cutoff"] == pytest.approx(float(fit["cutoffs"][tied].max()))
    # the constraint holds on the calibration logits: a share >= beta keeps a margin >= the cutoff
    probs = torch.softmax(nuts_transform(robust, fit["s"], fit["p"], fit["c"]), 1)
    kept = (label_margin(torch.log(probs), labels) >= fit["cutoff"] - 1e-12).double().mean()
    assert kept >= 0.9


@pytest.mark.parametrize("kwargs, message", [
    ({"beta": 1.0}, "beta"), ({"beta": 0.0}, "beta"), ({"s_grid": [0.0, 1.0]}, "s grid"),
    ({"p_grid": []}, "p grid"), ({"mistakes": torch.zeros(0, 3)}, "empty"), ({"ties": "last"}, "ties"),
    ({"robust": torch.zeros(0, 3), "labels": torch.zeros(0, dtype=torch.long)}, "empty")])
def test_algorithm1_rejects_bad_inputs(kwargs, message):
    args = {"robust": torch.eye(3) * 4, "labels": torch.arange(3), "mistakes": torch.ones(2, 3) + torch.eye(3)[:2],
            "s_grid": [1.0], "p_grid": [1.0], "c_grid": [0.0], "beta": 0.9, "ties": "first", **kwargs}
    with pytest.raises(ValueError, match=message):
        algorithm1(args["robust"], args["labels"], args["mistakes"], args["s_grid"], args["p_grid"],
                   args["c_grid"], beta=args["beta"], ties=args["ties"])


@pytest.mark.parametrize("norm_, eps", [("linf", 0.1), ("l2", 1.5)])
def test_min_margin_stays_in_the_ball_and_never_beats_plain_pgd(trained_tiny_model, quick_data, norm_, eps):
    x, y = quick_data.x_test[:64], quick_data.y_test[:64]
    kwargs = dict(steps=5, restarts=2, norm=norm_)
    x_mm = min_margin(trained_tiny_model, x, y, eps, generator=torch.Generator().manual_seed(0), **kwargs)
    x_pgd = pgd(trained_tiny_model, x, y, eps, generator=torch.Generator().manual_seed(0), **kwargs)
    delta = (x_mm - x).flatten(1)
    size = delta.abs().max(1).values if norm_ == "linf" else delta.norm(dim=1)
    assert (size <= eps + 1e-5).all() and x_mm.min() >= 0 and x_mm.max() <= 1
    with torch.no_grad():
        m_mm = label_margin(trained_tiny_model(x_mm), y)
        m_pgd = label_margin(trained_tiny_model(x_pgd), y)
    assert (m_mm <= m_pgd + 1e-9).all()
    err_mm, err_pgd = (m_mm < 0).double().mean(), (m_pgd < 0).double().mean()
    assert err_mm >= err_pgd
    assert (m_mm < m_pgd - 1e-6).any()  # tracking the iterates finds smaller margins somewhere


def test_min_margin_with_autoattack_adds_apgd_candidates(trained_tiny_model, quick_data):
    x, y = quick_data.x_test[:32], quick_data.y_test[:32]
    base = min_margin(trained_tiny_model, x, y, 0.1, steps=3, generator=torch.Generator().manual_seed(0))
    more = min_margin(trained_tiny_model, x, y, 0.1, steps=3, autoattack=True, apgd_steps=10,
                      generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (label_margin(trained_tiny_model(more), y) <= label_margin(trained_tiny_model(base), y) + 1e-9).all()


def test_a_surrogate_attack_model_gives_the_gradients_and_the_model_the_verdict(trained_tiny_model, quick_data):
    """With an attack model that is the model itself, the results equal the plain evaluation; with a useless
    surrogate (constant output, zero gradient) PGD cannot move and only the clean mistakes remain."""
    x, y = quick_data.x_test[:40], quick_data.y_test[:40]
    kwargs = dict(steps=3, restarts=1)
    plain = robust_correct(trained_tiny_model, x, y, 0.1, **kwargs)
    same = robust_correct(trained_tiny_model, x, y, 0.1, attack_model=trained_tiny_model, **kwargs)
    assert all(torch.equal(plain[k], same[k]) for k in plain)

    class Constant(nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :10] * 0

    blind = robust_correct(trained_tiny_model, x, y, 0.1, attack_model=Constant(), steps=3, restarts=1)
    clean = correct(trained_tiny_model, x, y, desc=None)
    assert torch.equal(blind["fgsm"], clean)
