"""Tests of course_lib.evaluation on hand-built models and attacks, where every number has a direct computation."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from torch import nn

from course_lib.profiles import get_profile, with_sizes

from course_lib.attacks import apgd_ce, fgsm, pgd
from course_lib.evaluation import (accuracy, accuracy_vs_eps, correct, predict, robust_accuracy, robust_correct,
                                   robust_evaluation, standard_error, worst_case_correct, EVALUATIONS, MONITORS,
                                   paired_standard_error)

pytestmark = pytest.mark.usefixtures("single_thread")


class MeanThreshold(nn.Module):
    """Class 1 if the mean pixel exceeds 0.5, else class 0: logits (0.5 - m, m - 0.5) with m the mean pixel."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(1, 2)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[-1.0], [1.0]]))
            self.head.bias.copy_(torch.tensor([0.5, -0.5]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.flatten(1).mean(1, keepdim=True))


def hand_model() -> nn.Sequential:
    """MeanThreshold behind a dropout layer: in train mode its predictions would be random."""
    return nn.Sequential(nn.Dropout(0.5), MeanThreshold())


def direct_prediction(x: torch.Tensor) -> torch.Tensor:
    return (x.flatten(1).mean(1) > 0.5).long()


def flip(model, x, y):
    """An 'attack' that inverts the image: the mean m becomes 1 - m, so every prediction flips."""
    return 1 - x


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(23, 1, 4, 4, generator=g) * 0.8 + torch.rand(23, 1, 1, 1, generator=g) * 0.2  # means vary
    y = torch.randint(0, 2, (23,), generator=g)
    assert 0 < (direct_prediction(x) == y).float().mean() < 1  # a mix of right and wrong
    return x, y


@pytest.mark.parametrize("batch_size", [1, 5, 23, 500])
def test_predict_and_accuracy_equal_a_direct_computation(batch, batch_size):
    x, y = batch
    model = hand_model().train()  # evaluation must switch dropout off
    assert torch.equal(predict(model, x, batch_size), direct_prediction(x))
    expected = (direct_prediction(x) == y).float().mean().item()
    assert accuracy(model, x, y, batch_size) == pytest.approx(expected)
    per_example = correct(model, x, y, batch_size=batch_size, desc=None)
    assert per_example.shape == (23,) and per_example.dtype == torch.bool
    assert torch.equal(per_example, direct_prediction(x) == y)


def test_evaluation_restores_the_model_mode(batch):
    x, y = batch
    model = hand_model().train()
    model[1].eval()
    modes = [m.training for m in model.modules()]
    accuracy(model, x, y)
    robust_accuracy(model, x, y, flip, batch_size=7, desc=None)
    assert [m.training for m in model.modules()] == modes


@pytest.mark.parametrize("batch_size", [4, 250])
def test_robust_accuracy_applies_the_attack_batch_by_batch(batch, batch_size):
    x, y = batch
    calls = []

    def recording_flip(model, xb, yb):
        calls.append((xb.clone(), yb.clone()))
        return flip(model, xb, yb)

    result = robust_accuracy(hand_model(), x, y, recording_flip, batch_size=batch_size, desc=None)
    assert result == pytest.approx((direct_prediction(1 - x) == y).float().mean().item())
    assert all(len(xb) <= batch_size for xb, _ in calls)
    assert torch.equal(torch.cat([xb for xb, _ in calls]), x)  # each image attacked once, with its own label
    assert torch.equal(torch.cat([yb for _, yb in calls]), y)


def test_worst_case_correct_is_the_and_of_its_parts(batch):
    x, y = batch
    model = hand_model()

    def darken_half(model, xb, yb):
        out = xb.clone()
        out[::2] = 0  # every other image becomes black: predicted 0
        return out

    attacks = {"flip": flip, "darken": darken_half}
    results = worst_case_correct(model, x, y, attacks, batch_size=6)
    assert set(results) == {"clean", "flip", "darken", "worst"}
    assert torch.equal(results["clean"], direct_prediction(x) == y)
    assert torch.equal(results["flip"], direct_prediction(1 - x) == y)
    assert torch.equal(results["darken"], correct(model, x, y, darken_half, desc=None))
    assert torch.equal(results["worst"], results["clean"] & results["flip"] & results["darken"])
    assert results["worst"].float().mean() <= min(r.float().mean() for r in results.values())


def test_worst_case_with_no_attacks_is_clean_accuracy(batch):
    x, y = batch
    results = worst_case_correct(hand_model(), x, y, {})
    assert torch.equal(results["worst"], results["clean"])


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_accuracy_vs_eps_starts_at_clean_accuracy(trained_tiny_model, quick_data, attack, norm):
    model = trained_tiny_model
    x, y = quick_data.x_test[:100], quick_data.y_test[:100]
    eps_values = [0.0, 0.2] if norm == "linf" else [0.0, 2.0]
    curve = accuracy_vs_eps(model, x, y, eps_values, attack=attack, norm=norm, batch_size=50, **(
        {"steps": 3} if attack == "pgd" else {}))
    assert len(curve) == 2 and all(0 <= a <= 1 for a in curve)
    assert curve[0] == accuracy(model, x, y)
    assert curve[1] < curve[0]  # the attack works on a standard model


def test_accuracy_vs_eps_passes_attack_arguments(trained_tiny_model, quick_data):
    model = trained_tiny_model
    x, y = quick_data.x_test[:60], quick_data.y_test[:60]
    curve = accuracy_vs_eps(model, x, y, [0.1], attack="pgd", steps=2, restarts=1,
                            generator=torch.Generator().manual_seed(3))
    direct = robust_accuracy(model, x, y, partial(pgd, eps=0.1, steps=2, generator=torch.Generator().manual_seed(3)))
    assert curve == [direct]


def test_fgsm_of_radius_one_fools_the_threshold_model_everywhere(batch):
    """With eps = 1 (l_inf) FGSM turns every image all-black or all-white against its label."""
    x, y = batch
    assert accuracy_vs_eps(hand_model(), x, y, [1.0], attack="fgsm") == [0.0]
    assert robust_accuracy(hand_model(), x, y, partial(fgsm, eps=1.0)) == 0.0


# ------------------------------------------------------------------------------------------ robust_evaluation
def test_robust_evaluation_reports_each_attack_and_the_worst_case(batch):
    x, y = batch
    model = hand_model()
    report = robust_evaluation(model, x, y, eps=0.05, steps=3, restarts=2, extra_attacks={"flip": flip}, seed=4)
    assert list(report) == ["clean", "fgsm", "pgd", "flip", "worst"]
    assert report["clean"] == pytest.approx(accuracy(model, x, y))
    assert report["fgsm"] == pytest.approx(robust_accuracy(model, x, y, partial(fgsm, eps=0.05), desc=None))
    assert report["flip"] == pytest.approx((direct_prediction(1 - x) == y).float().mean().item())
    pgd_attack = partial(pgd, eps=0.05, steps=3, restarts=2, generator=torch.Generator().manual_seed(4))
    parts = worst_case_correct(model, x, y, {"fgsm": partial(fgsm, eps=0.05), "pgd": pgd_attack, "flip": flip})
    assert report["pgd"] == pytest.approx(parts["pgd"].float().mean().item())
    assert report["worst"] == pytest.approx(parts["worst"].float().mean().item())
    assert report["worst"] <= min(v for k, v in report.items() if k != "worst")


def test_robust_evaluation_is_reproducible_and_strong_on_a_trained_model(trained_tiny_model, quick_data):
    x, y = quick_data.x_test[:80], quick_data.y_test[:80]
    first = robust_evaluation(trained_tiny_model, x, y, eps=0.1, steps=5, restarts=1, seed=1)
    assert robust_evaluation(trained_tiny_model, x, y, eps=0.1, steps=5, restarts=1, seed=1) == first
    assert first["worst"] <= first["pgd"] <= first["fgsm"] < first["clean"]


def test_robust_evaluation_at_eps_zero_is_clean_accuracy(batch):
    x, y = batch
    report = robust_evaluation(hand_model(), x, y, eps=0.0)
    assert report["fgsm"] == report["pgd"] == report["worst"] == report["clean"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(eps=-0.1), "eps must be"), (dict(eps=float("nan")), "eps must be"), (dict(eps=float("inf")), "eps must be"),
    (dict(eps=0.1, steps=0), "steps must be >= 1"),
    (dict(eps=0.1, restarts=0), "restarts must be >= 1"),
    (dict(eps=0.1, norm="l1"), "unknown norm"),
    (dict(eps=0.1, extra_attacks={"pgd": flip}), "clash with the built-in ones"),
])
def test_robust_evaluation_rejects_bad_arguments(batch, kwargs, message):
    x, y = batch
    with pytest.raises(ValueError, match=message):
        robust_evaluation(hand_model(), x, y, **kwargs)


# ------------------------------------------------------------------------------------------ bad input
def test_bad_inputs_are_clear_errors(batch):
    x, y = batch
    model = hand_model()
    with pytest.raises(ValueError, match=r"one label per example: 23 examples, got shape \(22,\)"):
        accuracy(model, x, y[:-1])
    with pytest.raises(ValueError, match="one label per example"):
        robust_accuracy(model, x[:5], y, flip)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        accuracy(model, x * 255, y)
    with pytest.raises(TypeError, match="floating-point"):
        predict(model, (x * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="N x C x H x W"):
        accuracy(model, x[:, 0], y)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        accuracy(model, x, y, batch_size=0)
    with pytest.raises(ValueError, match="unknown attack 'cw'"):
        accuracy_vs_eps(model, x, y, [0.1], attack="cw")
    with pytest.raises(ValueError, match="eps must be"):
        accuracy_vs_eps(model, x, y, [-0.1])


def test_labels_with_an_extra_dimension_are_rejected(batch):
    """y of shape N x 1 must not broadcast against the N predictions into an N x N table."""
    x, y = batch
    with pytest.raises(ValueError, match=r"one label per example: 23 examples, got shape \(23, 1\)"):
        correct(hand_model(), x, y.view(-1, 1), desc=None)
    with pytest.raises(ValueError, match="one label per example"):
        accuracy(hand_model(), x, y.view(-1, 1))


def test_the_autoattack_cascade_attacks_only_survivors_and_is_cumulative(trained_tiny_model, quick_data):
    """APGD-CE runs on the examples FGSM and PGD left correct, APGD-T on those APGD-CE left correct; each entry is
    'correct under everything so far', and an example counted correct is correct when attacked directly."""
    x, y = quick_data.x_test[:60], quick_data.y_test[:60]
    hits = robust_correct(trained_tiny_model, x, y, 0.1, steps=5, restarts=1, autoattack=True, apgd_steps=20)
    assert list(hits) == ["clean", "fgsm", "pgd", "apgd-ce", "apgd-t", "worst"]
    before = hits["clean"] & hits["fgsm"] & hits["pgd"]
    assert not (hits["apgd-ce"] & ~before).any() and not (hits["apgd-t"] & ~hits["apgd-ce"]).any()
    assert torch.equal(hits["worst"], hits["apgd-t"])
    idx = torch.nonzero(before).flatten()
    direct = correct(trained_tiny_model, x[idx], y[idx], partial(apgd_ce, eps=0.1, steps=20, seed=0))
    assert torch.equal(hits["apgd-ce"][idx], direct)
    report = robust_evaluation(trained_tiny_model, x, y, 0.1, steps=5, restarts=1, autoattack=True, apgd_steps=20)
    assert report == {k: v.float().mean().item() for k, v in hits.items()}


def test_the_pgd_monitor_uses_held_out_images_and_leaves_the_random_stream_alone(trained_tiny_model, quick_data):
    profile = with_sizes(get_profile("quick"), attack={"images": 500, "monitor_images": 40, "steps": 3})
    monitor = MONITORS["pgd"](quick_data, profile)
    torch.manual_seed(5)
    state = torch.get_rng_state()
    first = monitor(trained_tiny_model)
    assert torch.equal(torch.get_rng_state(), state) and monitor(trained_tiny_model) == first
    x, y = quick_data.x_test[-40:], quick_data.y_test[-40:]
    assert first["clean"] == accuracy(trained_tiny_model, x, y) and first["pgd"] <= first["clean"]
    assert first["fgsm"] == robust_accuracy(trained_tiny_model, x, y, partial(fgsm, eps=profile.attack.eps_linf))
    with pytest.raises(ValueError, match="overlap"):
        MONITORS["pgd"](quick_data, with_sizes(profile, attack={"monitor_images": 501}))


def test_standard_error_matches_the_binomial_distribution():
    from scipy.stats import binom
    for p, n in [(0.5, 100), (0.632, 500), (0.0, 200), (0.97, 1000)]:
        assert standard_error(p, n) == pytest.approx(binom.std(n, p) / n)
    assert standard_error([0.1, 0.9], 100) == pytest.approx([0.03, 0.03])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        standard_error(1.2, 10)
    with pytest.raises(ValueError):
        standard_error(0.5, 0)
    with pytest.raises(TypeError):
        standard_error(0.5, 10.0)


def test_paired_standard_error_matches_scipy_and_beats_unpaired():
    from scipy.stats import sem
    rng = np.random.default_rng(0)
    ability = rng.normal(size=200)  # shared between the two models: pairing cancels it
    a, b = ability + 0.1 * rng.normal(size=200), ability + 0.1 * rng.normal(size=200) + 0.05
    assert paired_standard_error(b - a) == pytest.approx(sem(b - a))
    assert paired_standard_error(b - a) < 0.2 * np.hypot(sem(a), sem(b))
    with pytest.raises(ValueError, match="at least two"):
        paired_standard_error([1.0])
    with pytest.raises(ValueError, match="finite"):
        paired_standard_error([1.0, float("nan")])


def test_known_results_enter_the_worst_case_before_the_cascade(trained_tiny_model, quick_data):
    """Examples another attack already broke are never attacked by APGD: with ``known`` all False nothing survives,
    and with a half-False ``known`` APGD's survivors are a subset of the known survivors."""
    x, y = quick_data.x_test[:40], quick_data.y_test[:40]
    kwargs = dict(steps=5, restarts=1, autoattack=True, apgd_steps=10)
    none = robust_correct(trained_tiny_model, x, y, 0.1, known={"other": torch.zeros(40, dtype=torch.bool)}, **kwargs)
    assert list(none) == ["clean", "fgsm", "pgd", "other", "apgd-ce", "apgd-t", "worst"]
    assert not none["worst"].any() and not none["apgd-ce"].any()
    half = torch.arange(40) % 2 == 0
    hits = robust_correct(trained_tiny_model, x, y, 0.1, known={"other": half}, **kwargs)
    assert not (hits["apgd-ce"] & ~half).any()
    assert torch.equal(hits["worst"], hits["apgd-t"])
    with pytest.raises(ValueError, match="boolean tensor of shape"):
        robust_correct(trained_tiny_model, x, y, 0.1, known={"other": half[:10]}, **kwargs)
    with pytest.raises(ValueError, match="clash"):
        robust_correct(trained_tiny_model, x, y, 0.1, known={"pgd": half}, **kwargs)


def test_the_pgd_curve_evaluation_is_robust_evaluations_pgd_at_each_radius(trained_tiny_model, quick_data):
    """The cached kind chapter 2 reads (zoo.evaluate(name, "pgd_curve", ...)) recomputes exactly the live number."""
    profile = with_sizes(get_profile("quick"), attack={"images": 120})
    x, y = quick_data.x_test[:120], quick_data.y_test[:120]
    curve = EVALUATIONS["pgd_curve"](trained_tiny_model, quick_data, profile, eps=[0.0, 0.05, 0.1], steps=4,
                                     restarts=2)
    assert curve["eps"] == [0.0, 0.05, 0.1] and curve["eval_images"] == 120
    assert curve["accuracy"][0] == accuracy(trained_tiny_model, x, y)
    for eps, acc in zip(curve["eps"][1:], curve["accuracy"][1:]):
        assert acc == robust_evaluation(trained_tiny_model, x, y, eps, steps=4, restarts=2)["pgd"]
    assert curve["accuracy"][2] < curve["accuracy"][0]  # the attack does something on this model
    with pytest.raises(ValueError, match="eps"):
        EVALUATIONS["pgd_curve"](trained_tiny_model, quick_data, profile, eps=[-0.1], steps=4)
    with pytest.raises(ValueError):
        EVALUATIONS["pgd_curve"](trained_tiny_model, quick_data, profile, eps=[0.1], steps=0)
