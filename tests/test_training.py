"""Tests of course_lib.training (losses and the loop), the chapter 2 recipes and the robust evaluation helper.

- The TRADES KL term equals a direct computation of (1/B) sum_i KL(p_i || q_i); the TRADES loss is CE + beta * KL
  at the point its own inner maximization returns, and beta = 0 is plain cross-entropy.
- The PGD-AT (FGSM-AT) loss is the cross-entropy at the PGD (FGSM) point, and its parameter gradient is the gradient
  of that cross-entropy with the attack point held fixed (Danskin: no gradient flows through the attack).
- The eps ramp starts at the clean loss and reaches the full radius after ``ramp_epochs``.
- Training with every loss lowers that loss on a tiny batch; the loop is reproducible for a fixed seed.
- Attacks inside a loss see the model in eval mode; afterwards every submodule is back in train mode, and batch
  norm statistics move only on the training forward passes.
- Our PGD and torchattacks' PGD (same eps, step, steps, random start) give the same accuracy within one point.
- ``robust_evaluation``: the worst case is at most every single attack, eps = 0 gives the clean accuracy, the report
  is reproducible, and bad arguments are clear errors.
"""

from __future__ import annotations

import copy
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from course_lib import recipes, training, zoo
from course_lib.attacks import fgsm, pgd
from course_lib.evaluation import accuracy, robust_accuracy, robust_evaluation
from course_lib.models import build_model
from course_lib.profiles import PROFILES, resolve_sizes
from course_lib.training import (LOSSES, SCHEDULES, fgsm_at_loss, gaussian_loss, pgd_at_loss, ramp, standard_loss, trades_attack,
                                 trades_kl, trades_loss, train)
from helpers import Probe

pytestmark = pytest.mark.usefixtures("single_thread")


# ------------------------------------------------------------------------------------------ helpers
def probe_net(seed: int = 0) -> nn.Sequential:
    """A small CNN on 1 x 8 x 8 images with batch norm (its statistics count the train-mode forward passes)."""
    torch.manual_seed(seed)
    return nn.Sequential(Probe(), nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3))


def random_net(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))


def batch(n: int = 6, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


def param_grads(model: nn.Module, loss: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, list(model.parameters())))


ADVERSARIAL_LOSSES = {
    "fgsm_at": lambda: fgsm_at_loss(0.1, ramp_epochs=0),
    "fgsm_rs_at": lambda: fgsm_at_loss(0.1, ramp_epochs=0, random_start=True),
    "pgd_at": lambda: pgd_at_loss(0.1, steps=3, ramp_epochs=0),
    "pgd_at_l2": lambda: pgd_at_loss(0.5, steps=3, norm="l2", ramp_epochs=0),
    "trades": lambda: trades_loss(0.1, beta=2.0, steps=3, ramp_epochs=0),
}
ALL_LOSSES = {"standard": lambda: standard_loss, "gaussian": lambda: gaussian_loss(0.25), **ADVERSARIAL_LOSSES}
TRAIN_FORWARDS = {"standard": 1, "gaussian": 1, "fgsm_at": 1, "fgsm_rs_at": 1, "pgd_at": 1, "pgd_at_l2": 1,
                  "trades": 2}


# ------------------------------------------------------------------------------------------ TRADES
@settings(max_examples=40, deadline=None)
@given(b=st.integers(1, 9), k=st.integers(2, 12), scale=st.floats(0.1, 20.0), seed=st.integers(0, 2**31 - 1))
def test_trades_kl_matches_a_direct_computation(b, k, scale, seed):
    g = torch.Generator().manual_seed(seed)
    logits_clean = scale * torch.randn(b, k, generator=g, dtype=torch.float64)
    logits_adv = scale * torch.randn(b, k, generator=g, dtype=torch.float64)
    p, q = logits_clean.softmax(1), logits_adv.softmax(1)
    direct = (p * (p.log() - q.log())).sum(1).mean()
    torch.testing.assert_close(trades_kl(logits_clean, logits_adv), direct, rtol=1e-9, atol=1e-12)
    assert trades_kl(logits_clean, logits_adv) >= 0
    # KL is invariant to adding a constant to each row of logits, and zero between identical distributions
    shifted = logits_adv + torch.randn(b, 1, generator=g, dtype=torch.float64)
    torch.testing.assert_close(trades_kl(logits_clean, shifted), direct, rtol=1e-9, atol=1e-12)
    assert trades_kl(logits_clean, logits_clean + 3.0).abs() < 1e-12


def test_trades_kl_is_not_symmetric():
    """KL(p || q) with p the clean distribution: swapping the arguments changes the value."""
    a, b = torch.tensor([[4.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 0.0]])
    assert not torch.isclose(trades_kl(a, b), trades_kl(b, a))


def test_trades_attack_stays_in_the_ball_raises_the_kl_and_restores_train_mode():
    model, (x, _) = random_net(), batch(16)
    model.train()
    torch.manual_seed(0)
    x_adv = trades_attack(model, x, eps=0.2, steps=5, step_ratio=0.25)
    assert model.training and all(m.training for m in model.modules())
    assert (x_adv - x).abs().max() <= 0.2 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert not x_adv.requires_grad
    torch.manual_seed(0)
    x_start = trades_attack(model, x, eps=0.2, steps=1, step_ratio=1e-9)  # ~ the random start
    with torch.no_grad():
        logits = model(x)
        assert trades_kl(logits, model(x_adv)) > trades_kl(logits, model(x_start))


@pytest.mark.parametrize("beta", [0.5, 6.0])
def test_trades_loss_is_cross_entropy_plus_beta_kl_at_its_attack_point(beta):
    model, (x, y) = random_net(), batch()
    model.train()
    loss = trades_loss(0.1, beta=beta, steps=3, step_ratio=0.25, ramp_epochs=0)
    torch.manual_seed(7)
    value = loss(model, x, y, 5.0)
    torch.manual_seed(7)
    x_adv = trades_attack(model, x, 0.1, 3, 0.25)
    logits = model(x)
    expected = F.cross_entropy(logits, y) + beta * trades_kl(logits, model(x_adv))
    torch.testing.assert_close(value, expected)
    assert value > F.cross_entropy(logits, y)  # the KL term is positive at the attack point


def test_trades_with_beta_zero_is_standard_training():
    model, (x, y) = random_net(), batch()
    torch.testing.assert_close(trades_loss(0.3, beta=0.0)(model, x, y, 10.0), F.cross_entropy(model(x), y))


# ------------------------------------------------------------------------------------------ PGD-AT and FGSM-AT
@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 0.8)])
def test_pgd_at_loss_is_cross_entropy_at_the_attack_point_with_the_danskin_gradient(norm, eps):
    model, (x, y) = random_net(), batch()
    model.train()
    loss = pgd_at_loss(eps, steps=4, step_ratio=0.3, norm=norm, ramp_epochs=0)
    torch.manual_seed(3)
    value = loss(model, x, y, 4.0)
    torch.manual_seed(3)
    x_adv = pgd(model, x, y, eps, alpha=0.3 * eps, steps=4, norm=norm)
    expected = F.cross_entropy(model(x_adv), y)
    torch.testing.assert_close(value, expected)
    # gradient w.r.t. the weights = gradient of CE at the fixed maximizer (nothing flows through the attack)
    for got, want in zip(param_grads(model, value), param_grads(model, expected)):
        torch.testing.assert_close(got, want)
    assert value > F.cross_entropy(model(x), y)  # the attack found a worse point than x


def test_fgsm_at_loss_is_cross_entropy_at_the_fgsm_point():
    model, (x, y) = random_net(), batch()
    model.train()
    value = fgsm_at_loss(0.1, ramp_epochs=0)(model, x, y, 3.0)
    torch.testing.assert_close(value, F.cross_entropy(model(fgsm(model, x, y, 0.1)), y))


def test_fgsm_rs_is_one_step_pgd_from_a_random_start():
    model, (x, y) = random_net(), batch()
    torch.manual_seed(4)
    value = fgsm_at_loss(0.1, ramp_epochs=0, random_start=True, step_ratio=1.25)(model, x, y, 3.0)
    torch.manual_seed(4)
    x_adv = pgd(model, x, y, 0.1, alpha=0.125, steps=1)
    torch.testing.assert_close(value, F.cross_entropy(model(x_adv), y))


def test_clean_weight_mixes_clean_and_adversarial_cross_entropy():
    model, (x, y) = random_net(), batch()
    mixed = fgsm_at_loss(0.1, ramp_epochs=0, clean_weight=0.25)(model, x, y, 3.0)
    adv = F.cross_entropy(model(fgsm(model, x, y, 0.1)), y)
    torch.testing.assert_close(mixed, 0.75 * adv + 0.25 * F.cross_entropy(model(x), y))


def test_the_eps_ramp_starts_clean_and_reaches_the_full_radius():
    assert ramp(0.3, 0.0, 3.0) == pytest.approx(0.0, abs=1e-9)
    assert ramp(0.3, 1.5, 3.0) == pytest.approx(0.15)
    assert ramp(0.3, 3.0, 3.0) == pytest.approx(0.3) and ramp(0.3, 7.0, 3.0) == pytest.approx(0.3)
    assert ramp(0.3, 0.0, 0.0) == 0.3
    model, (x, y) = random_net(), batch()
    clean = F.cross_entropy(model(x), y)
    for make in (lambda: pgd_at_loss(0.3), lambda: fgsm_at_loss(0.3)):
        torch.testing.assert_close(make()(model, x, y, 0.0), clean, atol=1e-6, rtol=0)  # eps ~ 0 at the start


# ------------------------------------------------------------------------------------------ modes
@pytest.mark.parametrize("name", sorted(ALL_LOSSES))
def test_attacks_inside_a_loss_see_eval_mode_and_leave_the_model_in_train_mode(name):
    model, (x, y) = probe_net(), batch(8)
    model.train()
    probe, bn = model[0], model[2]
    before = bn.num_batches_tracked.item()
    ALL_LOSSES[name]()(model, x, y, 5.0)
    assert all(m.training for m in model.modules()), "the loss must hand the model back in train mode"
    train_forwards = sum(probe.seen)
    assert train_forwards == TRAIN_FORWARDS[name]
    assert bn.num_batches_tracked.item() - before == train_forwards  # attacks did not touch the BN statistics
    if name in ADVERSARIAL_LOSSES:
        assert not all(probe.seen), "the attack should have run in eval mode"
        assert probe.seen[-1], "the last forward pass (the training one) runs in train mode"


def test_train_runs_every_batch_in_train_mode_and_returns_an_eval_model(quick_data):
    model = probe_net()
    model[1] = nn.Conv2d(1, 4, 3, padding=1)
    x = F.interpolate(quick_data.x_train[:64], size=8, mode="area").clamp(0, 1)
    y = quick_data.y_train[:64] % 3
    history = train(model, x, y, pgd_at_loss(0.1, steps=2, ramp_epochs=0), epochs=2, batch_size=32, desc=None)
    assert len(history.loss) == 2 and all(h > 0 for h in history.loss) and history.monitor == []
    seen = model[0].seen
    assert sum(seen) == 4 and len(seen) == 4 * (1 + 2 + 1)  # per batch: 2 attack steps + 1 selection, 1 training
    assert not model.training


# ------------------------------------------------------------------------------------------ the loop
@pytest.mark.parametrize("name", sorted(ALL_LOSSES))
def test_training_lowers_the_loss_on_a_tiny_batch(name, quick_data):
    x, y = quick_data.x_train[:64], quick_data.y_train[:64]
    torch.manual_seed(0)
    model = build_model("tiny_cnn", 1, 28, 10, quick_data.mean, quick_data.std)
    loss = ALL_LOSSES[name]()

    def measure() -> float:
        model.train()
        torch.manual_seed(123)  # the same random starts / noise before and after training
        with torch.enable_grad():
            return loss(model, x, y, 10.0).item()

    before = measure()
    history = train(model, x, y, loss, epochs=25, lr=3e-3, batch_size=32, desc=None)
    after = measure()
    assert after < 0.7 * before, f"{name}: loss {before:.3f} -> {after:.3f}"
    assert history.loss[-1] < history.loss[0]


def test_training_is_reproducible_for_a_seed(quick_data):
    x, y = quick_data.x_train[:64], quick_data.y_train[:64]

    def run(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)  # same initial weights
        model = build_model("tiny_cnn", 1, 28, 10, quick_data.mean, quick_data.std)
        train(model, x, y, pgd_at_loss(0.2, steps=2, ramp_epochs=1), epochs=2, batch_size=32, seed=seed, desc=None)
        return model.state_dict()

    first, again, other = run(0), run(0), run(1)
    for key in first:
        torch.testing.assert_close(first[key], again[key], rtol=0, atol=0)
    assert any(not torch.equal(first[key], other[key]) for key in first if key.endswith("weight"))


BAD_ARGUMENTS = {
    "negative eps (pgd)": lambda: pgd_at_loss(-0.1),
    "infinite eps (pgd)": lambda: pgd_at_loss(float("inf")),
    "zero steps (pgd)": lambda: pgd_at_loss(0.3, steps=0),
    "zero step ratio (pgd)": lambda: pgd_at_loss(0.3, step_ratio=0.0),
    "clean weight 1 (pgd)": lambda: pgd_at_loss(0.3, clean_weight=1.0),
    "negative clean weight (fgsm)": lambda: fgsm_at_loss(0.3, clean_weight=-0.1),
    "negative eps (fgsm)": lambda: fgsm_at_loss(-1.0),
    "negative eps (trades)": lambda: trades_loss(-0.3, 1.0),
    "negative beta": lambda: trades_loss(0.3, -1.0),
    "NaN beta": lambda: trades_loss(0.3, float("nan")),
    "zero sigma": lambda: gaussian_loss(0.0),
    "zero epochs": lambda: train(random_net(), *batch(), standard_loss, epochs=0),
    "images outside [0, 1]": lambda: train(random_net(), batch()[0] * 255, batch()[1], standard_loss, epochs=1),
    "unknown optimizer": lambda: train(random_net(), *batch(), standard_loss, optimizer="adagrad"),
    "unknown schedule": lambda: train(random_net(), *batch(), standard_loss, schedule="warmup"),
    "zero learning rate": lambda: train(random_net(), *batch(), standard_loss, lr=0.0),
}
WRONG_TYPES = {
    "fractional steps (trades)": lambda: trades_loss(0.3, 1.0, steps=2.5),
    "eps as a string": lambda: pgd_at_loss("0.3"),
    "epochs as a float": lambda: train(random_net(), *batch(), standard_loss, epochs=2.0),
    "images as a list": lambda: train(random_net(), batch()[0].tolist(), batch()[1], standard_loss),
}


@pytest.mark.parametrize("case", sorted(BAD_ARGUMENTS))
def test_bad_arguments_are_clear_errors(case):
    with pytest.raises(ValueError):
        BAD_ARGUMENTS[case]()


@pytest.mark.parametrize("case", sorted(WRONG_TYPES))
def test_wrong_types_are_type_errors(case):
    with pytest.raises(TypeError):
        WRONG_TYPES[case]()


def test_the_loop_trains_any_input_shape_with_sgd_and_a_schedule_and_monitors_without_changing_the_model():
    torch.manual_seed(0)
    x = torch.randn(256, 2)
    y = (x[:, 0] > 0).long()

    def run(monitor):
        torch.manual_seed(1)
        model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
        history = train(model, x, y, standard_loss, epochs=8, batch_size=64, optimizer="sgd", lr=0.1,
                        schedule="cosine", monitor=monitor, domain=None, desc=None)
        return model, history

    generator = torch.Generator().manual_seed(5)

    def monitor(model):  # draws from its own generator, so the training stream is untouched
        probe = torch.randn(64, 2, generator=generator)
        assert not model.training
        return {"accuracy": (model(probe).argmax(1) == (probe[:, 0] > 0)).float().mean().item()}

    plain, plain_history = run(None)
    watched, history = run(monitor)
    assert [r["epoch"] for r in history.monitor] == list(range(1, 9)) and history.monitor[-1]["accuracy"] > 0.9
    assert history.loss == plain_history.loss and history.loss[-1] < history.loss[0]
    for p, q in zip(plain.parameters(), watched.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("name, progress, factor", [("constant", 0.7, 1.0), ("cosine", 0.0, 1.0),
                                                    ("cosine", 0.5, 0.5), ("multistep", 0.6, 0.1),
                                                    ("multistep", 0.8, 0.01), ("thirds", 0.3, 1.0),
                                                    ("thirds", 0.5, 0.1), ("thirds", 0.9, 0.01)])
def test_learning_rate_schedules(name, progress, factor):
    assert SCHEDULES[name](progress) == pytest.approx(factor)


def test_the_thirds_schedule_steps_at_epochs_50_and_100_of_150():
    """Jeong et al. (2021): the rate divided by 10 every 50 of 150 epochs; the loop's progress is step / steps."""
    steps_per_epoch = 196  # 50,000 CIFAR-10 images in batches of 256
    total = 150 * steps_per_epoch
    factors = [SCHEDULES["thirds"](step / total) for step in range(total)]
    first_drop = next(i for i, f in enumerate(factors) if f < 1) // steps_per_epoch
    second_drop = next(i for i, f in enumerate(factors) if f < 0.1) // steps_per_epoch
    assert (first_drop, second_drop) == (50, 100)


# ------------------------------------------------------------------------------------------ reference implementation
@pytest.mark.parametrize("eps", [0.05, 0.1])
def test_our_pgd_agrees_with_torchattacks_within_one_point(trained_tiny_model, quick_data, eps):
    """Same threat model and schedule: l_inf eps, step eps / 4, 10 steps, uniform random start, images in [0, 1]
    (torchattacks expects [0, 1] inputs; our models normalize inside, so no normalization is set on the attack)."""
    torchattacks = pytest.importorskip("torchattacks")
    model = copy.deepcopy(trained_tiny_model).eval()
    x, y = quick_data.x_test, quick_data.y_test
    torch.manual_seed(0)
    ours = robust_accuracy(model, x, y, partial(pgd, eps=eps, alpha=eps / 4, steps=10), desc=None)
    theirs = robust_accuracy(model, x, y, lambda m, xb, yb: torchattacks.PGD(m, eps=eps, alpha=eps / 4, steps=10,
                                                                             random_start=True)(xb, yb), desc=None)
    clean = accuracy(model, x, y)
    assert 0.05 < ours < clean - 0.1, "pick eps so that the attack matters but does not win everywhere"
    assert abs(ours - theirs) <= 0.01, f"ours {ours:.3f} vs torchattacks {theirs:.3f}"


# ------------------------------------------------------------------------------------------ robust evaluation
def test_robust_evaluation_reports_every_attack_and_an_honest_worst_case(trained_tiny_model, quick_data):
    model = trained_tiny_model
    x, y = quick_data.x_test[:200], quick_data.y_test[:200]
    weak = {"noise": lambda m, xb, yb: (xb + 0.1 * torch.randn_like(xb)).clamp(0, 1)}
    torch.manual_seed(0)
    report = robust_evaluation(model, x, y, 0.1, steps=5, restarts=2, extra_attacks=weak)
    assert list(report) == ["clean", "fgsm", "pgd", "noise", "worst"]
    assert report["clean"] == pytest.approx(accuracy(model, x, y))
    assert report["worst"] <= min(v for k, v in report.items() if k != "worst") + 1e-9
    assert report["pgd"] <= report["fgsm"] < report["clean"]  # PGD is the stronger attack on this model
    torch.manual_seed(1)  # PGD's random starts come from its own seeded generator, not the global one
    again = robust_evaluation(model, x, y, 0.1, steps=5, restarts=2, extra_attacks=weak)
    assert {k: again[k] for k in ("clean", "fgsm", "pgd")} == {k: report[k] for k in ("clean", "fgsm", "pgd")}
    one = robust_evaluation(model, x, y, 0.1, steps=5, restarts=1)
    assert report["pgd"] <= one["pgd"]  # restarts are nested: more of them can only find more adversarial examples
    zero = robust_evaluation(model, x, y, 0.0, steps=5, restarts=1)
    assert set(zero.values()) == {report["clean"]}


@pytest.mark.parametrize("kwargs", [dict(eps=-0.1), dict(eps=float("nan")), dict(steps=0), dict(restarts=0),
                                    dict(extra_attacks={"pgd": lambda m, x, y: x})])
def test_robust_evaluation_rejects_bad_arguments(kwargs):
    model, (x, y) = random_net(), batch()
    args = dict(eps=0.1) | kwargs
    with pytest.raises(ValueError):
        robust_evaluation(model, x, y, **args)


# ------------------------------------------------------------------------------------------ recipes
@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_recipe_builds_its_loss_in_every_profile(profile):
    for recipe in recipes.RECIPES.values():
        kwargs = resolve_sizes(recipe.loss_kwargs, PROFILES[profile])
        assert callable(LOSSES[recipe.loss](**kwargs))
        assert int(resolve_sizes(recipe.epochs, PROFILES[profile])) >= 1


def test_the_trades_sweep_and_the_named_pairs_are_registered():
    betas = recipes.TRADES_BETAS
    assert len(betas) >= 3 and list(betas) == sorted(set(betas))
    for beta in betas:
        assert recipes.RECIPES[f"tiny_trades_{beta:g}"].loss_kwargs["beta"] == beta
    for name, (accurate, robust) in zoo.PAIRS.items():
        assert accurate in recipes.RECIPES and robust in recipes.RECIPES and accurate != robust, name
    with pytest.raises(ValueError, match="unknown pair"):
        zoo.load_pair("no such pair")
