"""Tests of once-for-all adversarial training: the conditioned model (course_lib.models.conditioned) and the loss.

- FiLM with unit scale and zero shift is the identity (and starts so); it applies (mu, beta) per channel.
- Dual batch norm routes lambda = 0 samples to bn_clean and the others to bn_adv, statistics included.
- The encoding is a set of orthonormal rows, indexed by lambda, saved in the state_dict (a reload gives the
  same outputs); the adapter at a fixed lambda gives the conditioned call's output.
- The OAT loss equals the dedicated PGD-AT loss (clean weight 1 - lambda) when every sample has the same lambda;
  lambda sampling follows the reference (a share at 0 first); a few training steps lower the loss.
- Bad input: lambda outside [0, 1] or not a choice, an empty choice list, an encoding that does not match.
"""

from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.nn.functional as F

from course_lib.attacks import pgd
from course_lib.models import (ConditionedCNN, DualBatchNorm2d, FiLM, FixedLambda, LambdaEncoding, build_model)
from course_lib.training import oat_loss, pgd_at_loss, sample_lambdas, train

pytestmark = pytest.mark.usefixtures("single_thread")

CHOICES = (0.0, 0.1, 0.2, 0.3, 0.4, 1.0)


def model(seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    if kwargs:
        from course_lib.models import ConditionedSequential, Normalize
        return ConditionedSequential(Normalize([0.5], [0.5]), ConditionedCNN(1, 8, (4, 8, 16), 3, **kwargs))
    return build_model("oat_tiny_cnn", 1, 8, 3, [0.5], [0.5])


def batch(n: int = 12, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_film_is_the_identity_at_unit_scale_and_zero_shift():
    film = FiLM(16, 4)
    h, e = torch.randn(5, 4, 3, 3), torch.randn(5, 16)
    torch.testing.assert_close(film(h, e), h)  # as initialised
    with torch.no_grad():
        film.mlp[2].bias.copy_(torch.tensor([2.0, 1, 1, 1, 0.5, 0, 0, 0]))
    out = film(h, e)
    torch.testing.assert_close(out[:, 0], 2 * h[:, 0] + 0.5)
    torch.testing.assert_close(out[:, 1:], h[:, 1:])
    with pytest.raises(ValueError, match="encoding must have shape"):
        film(h, torch.randn(5, 8))


def test_dual_batch_norm_routes_by_lambda():
    dual = DualBatchNorm2d(3)
    h = torch.randn(8, 3, 4, 4)
    clean = torch.tensor([True] * 3 + [False] * 5)
    out = dual(h, clean)
    torch.testing.assert_close(out[clean], F.batch_norm(h[clean], None, None, training=True))
    torch.testing.assert_close(out[~clean], F.batch_norm(h[~clean], None, None, training=True))
    mean_clean = h[clean].mean(dim=(0, 2, 3))
    torch.testing.assert_close(dual.bn_clean.running_mean, 0.1 * mean_clean)
    torch.testing.assert_close(dual.bn_adv.running_mean, 0.1 * h[~clean].mean(dim=(0, 2, 3)))
    before = dual.bn_clean.running_mean.clone()
    dual(h, torch.zeros(8, dtype=torch.bool))  # an all-adversarial batch leaves bn_clean alone
    assert torch.equal(dual.bn_clean.running_mean, before)
    with pytest.raises(ValueError, match="boolean mask"):
        dual(h, torch.ones(8))


def test_encoding_is_orthonormal_and_indexed_by_lambda():
    enc = LambdaEncoding(CHOICES, dim=16)
    torch.testing.assert_close(enc.matrix @ enc.matrix.T, torch.eye(6), atol=1e-5, rtol=0)
    out = enc(torch.tensor([0.3, 0.0, 0.3]))
    assert torch.equal(out[0], enc.matrix[3]) and torch.equal(out[1], enc.matrix[0]) and torch.equal(out[0], out[2])
    with pytest.raises(ValueError, match="not one of the model's choices"):
        enc(torch.tensor([0.25]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        enc(torch.tensor([1.5]))
    with pytest.raises(ValueError, match="empty"):
        LambdaEncoding(())
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        LambdaEncoding((0.0, -0.1))
    with pytest.raises(ValueError, match="dim >= 6"):
        LambdaEncoding(CHOICES, dim=4)


def test_the_encoding_and_the_weights_round_trip_through_a_state_dict():
    a, b = model(0), model(1)
    assert not torch.equal(a[1].encoding.matrix, LambdaEncoding(CHOICES, seed=5).matrix)
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    b.load_state_dict(torch.load(buffer, weights_only=True))
    x, _ = batch()
    lam = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4, 1.0] * 2)
    a.eval(), b.eval()
    assert torch.equal(a(x, lam), b(x, lam))
    assert torch.equal(b[1].encoding.matrix, a[1].encoding.matrix)
    # an encoding that does not match the model (other choices): a clear error, not a silent reload
    other = model(0, choices=(0.0, 0.5, 1.0))
    with pytest.raises(RuntimeError, match="size mismatch"):
        other.load_state_dict(a.state_dict())


def test_the_adapter_at_a_fixed_lambda_is_the_conditioned_call():
    m, (x, _) = model(), batch()
    m.eval()
    for lam in CHOICES:
        assert torch.equal(FixedLambda(m, lam)(x), m(x, torch.full((12,), lam)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        FixedLambda(m, 1.2)
    with pytest.raises(ValueError, match="not one of"):
        FixedLambda(m, 0.5)
    with pytest.raises(ValueError, match="one lambda per input"):
        m(x, torch.zeros(3))


def test_lambda_sampling_follows_the_reference():
    lam = sample_lambdas(60, CHOICES, generator=torch.Generator().manual_seed(0))
    assert torch.all(lam[:10] == 0) and torch.all(lam[10:] > 0)  # a share 1/6 at 0, first
    values = {round(v, 6) for v in lam[10:].tolist()}
    assert values <= {0.1, 0.2, 0.3, 0.4, 1.0} and len(values) > 1
    assert torch.all(sample_lambdas(7, (0.3,)) == 0.3)
    with pytest.raises(ValueError, match="empty"):
        sample_lambdas(4, [])
    with pytest.raises(ValueError, match="needs lambda = 0"):
        sample_lambdas(4, (0.3,), zero_share=0.5)


@pytest.mark.parametrize("lam", [0.1, 0.4, 1.0])
def test_oat_loss_with_one_lambda_is_the_dedicated_loss(lam):
    m, (x, y) = model(), batch()
    m.train()
    twin = copy.deepcopy(m)  # each loss updates the batch-norm statistics its attack then uses
    torch.manual_seed(3)
    ours = oat_loss(0.3, choices=(lam,), steps=2)(m, x, y, 5.0)
    torch.manual_seed(3)
    weight = round(1 - lam, 6)
    dedicated = pgd_at_loss(0.3, steps=2, clean_weight=weight)(FixedLambda(twin, lam), x, y, 5.0)
    torch.testing.assert_close(ours, dedicated)


def test_oat_loss_attacks_only_the_nonzero_lambdas_and_matches_the_formula():
    m, (x, y) = model(), batch()
    m.train()
    twin = copy.deepcopy(m)
    torch.manual_seed(4)
    ours = oat_loss(0.3, choices=CHOICES, steps=2, ramp_epochs=0)(twin, x, y, 0.0)
    torch.manual_seed(4)
    lam = sample_lambdas(12, CHOICES)
    adv = lam > 0
    x_adv = pgd(FixedLambda(m, lam[adv]), x[adv], y[adv], 0.3, alpha=0.05, steps=2)
    clean = F.cross_entropy(m(x, lam), y, reduction="none")
    robust = torch.zeros(12)
    robust[adv] = F.cross_entropy(m(x_adv, lam[adv]), y[adv], reduction="none")
    torch.testing.assert_close(ours, ((1 - lam) * clean + lam * robust).mean())


def test_training_lowers_the_oat_loss():
    m, (x, y) = model(), batch(48)
    loss = oat_loss(0.1, choices=CHOICES, steps=2, ramp_epochs=0)
    m.train()
    torch.manual_seed(0)
    before = loss(m, x, y, 1.0).item()
    train(m, x, y, loss, epochs=40, batch_size=48, lr=1e-2, desc=None)
    m.train()
    torch.manual_seed(0)
    assert loss(m, x, y, 1.0).item() < 0.8 * before


@pytest.mark.parametrize("kwargs, match", [({"eps": -0.1}, "eps"), ({"choices": ()}, "empty"),
                                           ({"choices": (0.0, 1.5)}, r"\[0, 1\]"), ({"steps": 0}, "steps"),
                                           ({"zero_share": 2.0}, "zero_share")])
def test_bad_oat_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        oat_loss(**{"eps": 0.3, **kwargs})


def test_ablations_build_and_run():
    x, _ = batch()
    lam = torch.tensor([0.0, 1.0] * 6)
    for kwargs in ({"dual_bn": False}, {"film": False}):
        out = model(**kwargs)(x, lam)
        assert out.shape == (12, 3)


def test_without_film_every_positive_lambda_is_the_same_network():
    """The chapter's ablation statement: without FiLM, lambda acts only through the choice of batch norm."""
    torch.manual_seed(0)
    model = ConditionedCNN(1, 8, (2, 2, 4), 3, choices=CHOICES, enc_dim=8, film=False).eval()
    x = torch.rand(5, 1, 8, 8)
    outputs = {lam: model(x, torch.full((5,), lam)) for lam in CHOICES}
    for lam in CHOICES[1:]:
        assert torch.equal(outputs[lam], outputs[CHOICES[1]])
    with torch.no_grad():  # lambda = 0 uses the clean batch norm: different parameters give different outputs
        model.norms[0].bn_clean.weight.mul_(2.0)
    assert not torch.allclose(model(x, torch.zeros(5)), outputs[CHOICES[1]])
