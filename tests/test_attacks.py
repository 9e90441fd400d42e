"""Tests of course_lib.attacks: FGSM and PGD invariants (property-based), strength, and clear errors.

Invariants checked on random tiny images and models (hypothesis):
- the result lies in the eps-ball around x (l_inf and l_2) and in [0, 1], has x's shape and dtype, and x is untouched;
- the model is attacked in eval mode and every submodule's train/eval mode is restored (also after an error);
- eps = 0 returns a copy of the input;
- on an easy linear model, untargeted attacks never lower the loss and targeted attacks never raise the target's
  loss, and a large enough targeted attack reaches the target;
- with the same random stream, more restarts are never worse than one run, example by example.
On a trained tiny CNN: PGD is at least as strong as FGSM. FGSM and PGD (no random start) agree with torchattacks.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
import torchattacks
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from course_lib.attacks import NORMS, apgd_ce, apgd_t, fgsm, pgd, project
from course_lib.attacks.base import per_example_norm, random_start
from helpers import Probe

pytestmark = pytest.mark.usefixtures("single_thread")
PROPERTY = settings(max_examples=30, deadline=None)


# ------------------------------------------------------------------------------------------ models
def probe_net(channels: int, classes: int = 3, seed: int = 0) -> nn.Sequential:
    """A tiny CNN whose output depends on the mode (batch norm, dropout), with a probe in front."""
    torch.manual_seed(seed)
    return nn.Sequential(Probe(), nn.Conv2d(channels, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Dropout(0.3), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, classes))


class Quadrants(nn.Module):
    """An easy linear model on 1 x s x s images: logit_k = scale * (mean of quadrant k), k = 0..3.

    Raising the pixels of quadrant t and lowering all others raises the logit of t and lowers every other logit,
    so such a move can only lower CE(f(x), t); the image with quadrant t white and the rest black is classified t.
    """

    def __init__(self, size: int = 4, scale: float = 10.0):
        super().__init__()
        m = size // 2
        masks = torch.zeros(4, size, size)
        masks[0, :m, :m] = masks[1, :m, m:] = masks[2, m:, :m] = masks[3, m:, m:] = 1
        self.linear = nn.Linear(size * size, 4, bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(scale * masks.flatten(1) / (m * m))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


# ------------------------------------------------------------------------------------------ strategies
@st.composite
def batches(draw, channels=st.sampled_from([1, 3]), sizes=st.sampled_from([4, 5, 8]), classes: int = 3):
    """(x, y): 1-4 images in [0, 1], including all-black, all-white and saturated images, and labels."""
    n, c, s = draw(st.integers(1, 4)), draw(channels), draw(sizes)
    kind = draw(st.sampled_from(["uniform", "binary", "zeros", "ones", "saturated"]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x = torch.rand(n, c, s, s, generator=g)
    if kind == "binary":
        x = x.round()
    elif kind == "zeros":
        x = torch.zeros_like(x)
    elif kind == "ones":
        x = torch.ones_like(x)
    elif kind == "saturated":
        u = torch.rand(x.shape, generator=g)
        x = torch.where(u < 0.3, 0.0, torch.where(u > 0.7, 1.0, x))
    return x, torch.randint(0, classes, (n,), generator=g)


EPS = st.one_of(st.sampled_from([1e-4, 8 / 255, 0.3, 1.0, 5.0]), st.floats(1e-3, 2.0))


def assert_in_ball_and_box(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> None:
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert torch.isfinite(x_adv).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    delta = x_adv - x
    if norm == "linf":
        assert delta.abs().max() <= eps + 1e-6
    else:
        assert (per_example_norm(delta).flatten() <= eps * (1 + 1e-5) + 1e-6).all()


# ------------------------------------------------------------------------------------------ invariants
@PROPERTY
@given(batch=batches(), eps=EPS, norm=st.sampled_from(NORMS), targeted=st.booleans(), seed=st.integers(0, 9))
def test_fgsm_stays_in_the_ball_and_the_box(batch, eps, norm, targeted, seed):
    x, y = batch
    before = x.clone()
    x_adv = fgsm(probe_net(x.shape[1], seed=seed), x, y, eps, norm=norm, targeted=targeted)
    assert_in_ball_and_box(x_adv, x, eps, norm)
    assert torch.equal(x, before) and not x_adv.requires_grad


@PROPERTY
@given(batch=batches(), eps=EPS, norm=st.sampled_from(NORMS), steps=st.integers(1, 4),
       restarts=st.integers(1, 2), start=st.booleans(), targeted=st.booleans(),
       alpha=st.one_of(st.none(), st.floats(1e-3, 3.0)), seed=st.integers(0, 9))
def test_pgd_stays_in_the_ball_and_the_box(batch, eps, norm, steps, restarts, start, targeted, alpha, seed):
    x, y = batch
    before = x.clone()
    x_adv = pgd(probe_net(x.shape[1], seed=seed), x, y, eps, alpha=alpha, steps=steps, norm=norm,
                random_start=start, restarts=restarts, targeted=targeted,
                generator=torch.Generator().manual_seed(seed))
    assert_in_ball_and_box(x_adv, x, eps, norm)
    assert torch.equal(x, before) and not x_adv.requires_grad


@PROPERTY
@given(batch=batches(), eps=EPS, norm=st.sampled_from(NORMS), scale=st.floats(0.0, 5.0), seed=st.integers(0, 99))
def test_project_lands_in_the_ball_and_box_and_keeps_points_already_there(batch, eps, norm, scale, seed):
    x, _ = batch
    z = x + scale * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))  # may leave [0, 1]
    p = project(z, x, eps, norm)
    assert_in_ball_and_box(p, x, eps, norm)
    torch.testing.assert_close(project(p, x, eps, norm), p, rtol=0, atol=1e-6)  # a projection is idempotent
    start = random_start(x, eps, norm, torch.Generator().manual_seed(seed))
    assert_in_ball_and_box(start, x, eps, norm)
    torch.testing.assert_close(project(start, x, eps, norm), start, rtol=0, atol=1e-6)


def test_linf_projection_is_the_clip_formula():
    x = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0]).view(1, 1, 1, 5)
    z = torch.tensor([-1.0, 0.5, 0.55, 0.6, 2.0]).view(1, 1, 1, 5)
    expected = torch.tensor([0.0, 0.3, 0.55, 0.7, 1.0]).view(1, 1, 1, 5)
    torch.testing.assert_close(project(z, x, 0.2, "linf"), expected)


def test_l2_projection_rescales_delta_onto_the_sphere():
    x = torch.full((2, 1, 2, 2), 0.5)
    z = x.clone()
    z[0, 0, 0, 0] += 0.4  # ||delta|| = 0.4 > eps = 0.2: scaled to 0.2
    z[1, 0, 0, 0] += 0.1  # inside the ball: unchanged
    p = project(z, x, 0.2, "l2")
    torch.testing.assert_close(p[0, 0, 0, 0], torch.tensor(0.7))
    torch.testing.assert_close(p[1], z[1])


@PROPERTY
@given(modes=st.lists(st.booleans(), min_size=9, max_size=9), attack=st.sampled_from(["fgsm", "pgd"]),
       norm=st.sampled_from(NORMS), batch=batches(channels=st.just(1)))
def test_attacks_run_in_eval_mode_and_restore_every_submodule(modes, attack, norm, batch):
    x, y = batch
    model = probe_net(1)
    modules = list(model.modules())
    assert len(modules) == len(modes)
    for module, mode in zip(modules, modes):
        module.training = mode
    bn = model[2]
    stats = (bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone())
    if attack == "fgsm":
        fgsm(model, x, y, 0.1, norm=norm)
    else:
        pgd(model, x, y, 0.1, steps=2, norm=norm, restarts=2)
    assert model[0].seen and not any(model[0].seen)  # every forward pass of the attack ran in eval mode
    assert [m.training for m in model.modules()] == modes
    assert all(torch.equal(a, b) for a, b in zip(stats, (bn.running_mean, bn.running_var, bn.num_batches_tracked)))
    assert all(p.grad is None for p in model.parameters())  # no stray gradients left on the weights


@pytest.mark.parametrize("attack", [fgsm, pgd])
def test_mode_is_restored_when_the_attack_fails(attack):
    model = probe_net(1).train()
    model[2].eval()
    modes = [m.training for m in model.modules()]
    x, y = torch.rand(2, 1, 4, 4), torch.tensor([0, 99])  # label 99 does not exist: cross-entropy raises
    with pytest.raises((IndexError, RuntimeError)):
        attack(model, x, y, 0.1)
    assert [m.training for m in model.modules()] == modes


def test_attacks_are_deterministic_for_a_model_with_dropout_in_train_mode():
    """Because the attack runs in eval mode, dropout cannot make two identical calls differ."""
    x, y = torch.rand(4, 1, 6, 6), torch.tensor([0, 1, 2, 0])
    model = probe_net(1).train()
    a = pgd(model, x, y, 0.2, steps=3, generator=torch.Generator().manual_seed(0))
    b = pgd(model, x, y, 0.2, steps=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert torch.equal(fgsm(model, x, y, 0.2), fgsm(model, x, y, 0.2))


@PROPERTY
@given(batch=batches(), norm=st.sampled_from(NORMS), targeted=st.booleans(), restarts=st.integers(1, 2))
def test_eps_zero_returns_a_copy_of_the_input(batch, norm, targeted, restarts):
    x, y = batch
    model = probe_net(x.shape[1])
    for x_adv in (fgsm(model, x, y, 0.0, norm=norm, targeted=targeted),
                  pgd(model, x, y, 0, norm=norm, targeted=targeted, restarts=restarts)):
        assert torch.equal(x_adv, x)
        assert x_adv.data_ptr() != x.data_ptr() and not x_adv.requires_grad


# ------------------------------------------------------------------------------------------ easy model
QUADRANT_BATCHES = batches(channels=st.just(1), sizes=st.just(4), classes=4)


def _ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="none")


@PROPERTY
@given(batch=QUADRANT_BATCHES, eps=EPS, norm=st.sampled_from(NORMS), targeted=st.booleans(),
       attack=st.sampled_from(["fgsm", "pgd"]), steps=st.integers(1, 5))
def test_on_an_easy_model_attacks_move_the_loss_the_right_way(batch, eps, norm, targeted, attack, steps):
    x, y = batch  # y is the true label, or the target when targeted
    model = Quadrants()
    if attack == "fgsm":
        x_adv = fgsm(model, x, y, eps, norm=norm, targeted=targeted)
    else:
        x_adv = pgd(model, x, y, eps, steps=steps, norm=norm, random_start=False, targeted=targeted)
    before, after = _ce(model, x, y), _ce(model, x_adv, y)
    if targeted:
        assert (after <= before + 1e-5).all()
    else:
        assert (after >= before - 1e-5).all()


@PROPERTY
@given(batch=QUADRANT_BATCHES, attack=st.sampled_from(["fgsm", "pgd_linf", "pgd_l2"]), steps=st.integers(1, 20),
       seed=st.integers(0, 99))
def test_a_large_targeted_attack_reaches_the_target_on_an_easy_model(batch, attack, steps, seed):
    x, target = batch
    model = Quadrants()
    g = torch.Generator().manual_seed(seed)
    if attack == "fgsm":
        x_adv = fgsm(model, x, target, 1.0, targeted=True)  # the l_inf ball of radius 1 contains [0, 1]^d
    elif attack == "pgd_linf":
        x_adv = pgd(model, x, target, 1.0, steps=steps, targeted=True, generator=g)
    else:  # the l_2 ball of radius sqrt(d) = 4 contains [0, 1]^16
        x_adv = pgd(model, x, target, 4.0, steps=max(steps, 10), norm="l2", targeted=True, generator=g)
    assert torch.equal(model(x_adv).argmax(1), target)


@pytest.mark.parametrize("targeted", [False, True])
def test_fgsm_takes_one_full_step_to_the_boundary(targeted):
    x, y = torch.full((3, 1, 4, 4), 0.5), torch.tensor([0, 1, 3])
    model = Quadrants()  # every pixel has a nonzero gradient
    linf = fgsm(model, x, y, 0.1, targeted=targeted)
    torch.testing.assert_close((linf - x).abs(), torch.full_like(x, 0.1))
    l2 = fgsm(model, x, y, 0.3, norm="l2", targeted=targeted)
    torch.testing.assert_close(per_example_norm(l2 - x).flatten(), torch.full((3,), 0.3))


def test_pgd_default_step_is_two_and_a_half_eps_over_steps():
    x, y = torch.rand(4, 1, 6, 6, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 0])
    model = probe_net(1)
    for norm in NORMS:
        default = pgd(model, x, y, 0.2, steps=4, norm=norm, generator=torch.Generator().manual_seed(5))
        explicit = pgd(model, x, y, 0.2, alpha=2.5 * 0.2 / 4, steps=4, norm=norm,
                       generator=torch.Generator().manual_seed(5))
        assert torch.equal(default, explicit)


# ------------------------------------------------------------------------------------------ trained model
@pytest.mark.parametrize("norm, eps", [("linf", 0.1), ("l2", 1.0)])
def test_pgd_is_at_least_as_strong_as_fgsm_on_a_trained_model(trained_tiny_model, quick_data, norm, eps):
    model = trained_tiny_model
    x, y = quick_data.x_test[:200], quick_data.y_test[:200]

    def accuracy(images):
        with torch.no_grad():
            return (model(images).argmax(1) == y).float().mean().item()

    clean = accuracy(x)
    fgsm_acc = accuracy(fgsm(model, x, y, eps, norm=norm))
    pgd_acc = accuracy(pgd(model, x, y, eps, steps=10, norm=norm, generator=torch.Generator().manual_seed(0)))
    assert clean > 0.8  # the model is trained, so the comparison means something
    assert pgd_acc <= fgsm_acc < clean


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), eps=st.floats(0.02, 0.15), norm=st.sampled_from(NORMS),
       steps=st.integers(1, 3), restarts=st.integers(2, 3), targeted=st.booleans())
def test_restarts_are_never_worse_than_one_run(trained_tiny_model, quick_data, seed, eps, norm, steps, restarts,
                                               targeted):
    model = trained_tiny_model
    x, y = quick_data.x_test[:24], quick_data.y_test[:24]
    if targeted:
        y = (y + 1) % 10
    if norm == "l2":
        eps *= 10

    def run(r):
        return pgd(model, x, y, eps, steps=steps, norm=norm, restarts=r, targeted=targeted,
                   generator=torch.Generator().manual_seed(seed))

    one, many = run(1), run(restarts)
    with torch.no_grad():
        pred_one, pred_many = model(one).argmax(1), model(many).argmax(1)
    hit_one = (pred_one == y) if targeted else (pred_one != y)
    hit_many = (pred_many == y) if targeted else (pred_many != y)
    assert not (hit_one & ~hit_many).any()  # every success of one run survives more restarts
    sign = -1 if targeted else 1
    objective_one, objective_many = sign * _ce(model, one, y), sign * _ce(model, many, y)
    neither = ~hit_one & ~hit_many
    assert (objective_many[neither] >= objective_one[neither] - 1e-4).all()


# ------------------------------------------------------------------------------------------ reference implementation
def test_fgsm_and_pgd_agree_with_torchattacks(trained_tiny_model, quick_data):
    model = copy.deepcopy(trained_tiny_model).double().eval()
    x, y = quick_data.x_test[:32].double(), quick_data.y_test[:32]
    ours = fgsm(model, x, y, 0.1)
    theirs = torchattacks.FGSM(model, eps=0.1)(x, y)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-9)
    ours = pgd(model, x, y, 0.1, alpha=0.02, steps=5, random_start=False)
    theirs = torchattacks.PGD(model, eps=0.1, alpha=0.02, steps=5, random_start=False)(x, y)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-9)
    ours = pgd(model, x, y, 1.0, alpha=0.3, steps=5, norm="l2", random_start=False)
    theirs = torchattacks.PGDL2(model, eps=1.0, alpha=0.3, steps=5, random_start=False)(x, y)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------ bad input
GOOD_X, GOOD_Y = torch.rand(2, 1, 4, 4), torch.tensor([0, 1])
BAD_INPUTS = {
    "negative eps": (dict(eps=-0.1), "eps must be"),
    "NaN eps": (dict(eps=math.nan), "eps must be"),
    "infinite eps": (dict(eps=math.inf), "eps must be"),
    "images above 1": (dict(x=GOOD_X + 1), r"must lie in \[0, 1\]"),
    "images below 0": (dict(x=GOOD_X - 1), r"must lie in \[0, 1\]"),
    "images in [0, 255]": (dict(x=GOOD_X * 255), r"must lie in \[0, 1\]"),
    "NaN images": (dict(x=GOOD_X.masked_fill(GOOD_X > 0.5, math.nan)), "NaN"),
    "integer images": (dict(x=(GOOD_X * 255).to(torch.uint8)), "floating-point", TypeError),
    "more labels than images": (dict(y=torch.tensor([0, 1, 2])), "one label per example"),
    "fewer labels than images": (dict(y=torch.tensor([0])), "one label per example"),
    "labels shaped N x 1": (dict(y=GOOD_Y.view(2, 1)), "one label per example"),
    "labels as a list": (dict(y=[0, 1]), "y must be an integer torch tensor", TypeError),
    "labels as floats": (dict(y=GOOD_Y.float()), "y must be an integer torch tensor", TypeError),
    "eps as a string": (dict(eps="0.1"), "eps must be a real number", TypeError),
    "3-d images": (dict(x=GOOD_X[:, 0], y=GOOD_Y), "N x C x H x W"),
    "5-d images": (dict(x=GOOD_X[None]), "N x C x H x W"),
    "unknown norm l1": (dict(norm="l1"), "unknown norm 'l1'"),
    "unknown norm Linf": (dict(norm="Linf"), "unknown norm 'Linf'"),
}


@pytest.mark.parametrize("attack", [fgsm, pgd])
@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_a_clear_error(attack, case):
    change, message, *error = BAD_INPUTS[case]
    args = dict(x=GOOD_X, y=GOOD_Y, eps=0.1, norm="linf") | change
    with pytest.raises(error[0] if error else ValueError, match=message):
        attack(probe_net(1), args["x"], args["y"], args["eps"], norm=args["norm"])


@pytest.mark.parametrize("kwargs, error", [(dict(steps=0), ValueError), (dict(steps=-1), ValueError),
                                           (dict(steps=2.5), TypeError), (dict(restarts=0), ValueError),
                                           (dict(restarts=-2), ValueError)])
def test_pgd_needs_positive_integer_steps_and_restarts(kwargs, error):
    with pytest.raises(error, match="(steps|restarts) must be"):
        pgd(probe_net(1), GOOD_X, GOOD_Y, 0.1, **kwargs)


@pytest.mark.parametrize("alpha", [0.0, -0.01, math.nan])
def test_pgd_needs_a_positive_step_size(alpha):
    with pytest.raises(ValueError, match="alpha must be > 0"):
        pgd(probe_net(1), GOOD_X, GOOD_Y, 0.1, alpha=alpha)


# ------------------------------------------------------------------------------------------ APGD (torchattacks)
@pytest.mark.parametrize("norm, eps", [("linf", 0.2), ("l2", 1.5)])
@pytest.mark.parametrize("attack", ["apgd_ce", "apgd_t"])
def test_apgd_stays_in_the_ball_and_leaves_the_global_generator_alone(trained_tiny_model, quick_data, attack,
                                                                    norm, eps):
    x, y = quick_data.x_test[:24], quick_data.y_test[:24]
    run = {"apgd_ce": apgd_ce, "apgd_t": apgd_t}[attack]
    torch.manual_seed(123)
    state = torch.get_rng_state()
    x_adv = run(trained_tiny_model, x, y, eps, steps=10, norm=norm)
    assert torch.equal(torch.get_rng_state(), state)  # forked: later random draws are unchanged
    assert x_adv.shape == x.shape and 0 <= x_adv.min() and x_adv.max() <= 1
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert (size <= eps * (1 + 1e-5) + 1e-6).all()
    assert torch.equal(run(trained_tiny_model, x, y, eps, steps=10, norm=norm), x_adv)  # seeded: reproducible
    assert not trained_tiny_model.training


def test_apgd_is_at_least_as_strong_as_a_short_pgd_on_a_trained_model(trained_tiny_model, quick_data):
    """100-step APGD (adaptive step) against 5-step PGD at eps 0.1: APGD may not be weaker by more than noise."""
    x, y = quick_data.x_test[:200], quick_data.y_test[:200]
    with torch.no_grad():
        hit = lambda xa: (trained_tiny_model(xa).argmax(1) == y).float().mean().item()  # noqa: E731
    ours = hit(pgd(trained_tiny_model, x, y, 0.1, steps=5))
    assert hit(apgd_ce(trained_tiny_model, x, y, 0.1, steps=100)) <= ours + 0.01
    assert hit(apgd_t(trained_tiny_model, x, y, 0.1, steps=100)) <= ours + 0.01


def test_apgd_at_eps_zero_is_a_copy_and_bad_input_is_an_error():
    x, y = torch.rand(4, 1, 5, 5, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 0, 1])
    model = nn.Sequential(nn.Flatten(), nn.Linear(x[0].numel(), 10))
    assert torch.equal(apgd_ce(model, x, y, 0.0), x)
    with pytest.raises(ValueError, match="eps"):
        apgd_ce(model, x, y, -0.1)
    with pytest.raises(ValueError, match="3 classes"):
        apgd_t(nn.Sequential(nn.Flatten(), nn.Linear(x[0].numel(), 2)), x, y % 2, 0.1)
