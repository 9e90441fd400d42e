"""Tests of course_lib.toy: seeded 2-D data, the tiny MLP trainer and the decision-region grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import norm

from course_lib import toy
from course_lib.evaluation import accuracy
from course_lib.smoothing import Smooth, radius_from_probabilities


@pytest.mark.parametrize("make,k", [(toy.make_moons, 2), (lambda **kw: toy.make_spirals(classes=3, **kw), 3),
                                    (lambda **kw: toy.make_blobs(classes=4, **kw), 4)])
def test_data_is_seeded_balanced_and_two_dimensional(make, k):
    x, y = make(seed=3)
    x2, y2 = make(seed=3)
    x3, _ = make(seed=4)
    assert x.dtype == torch.float32 and y.dtype == torch.long and x.shape == (len(y), 2)
    assert torch.equal(x, x2) and torch.equal(y, y2) and not torch.equal(x, x3)
    counts = torch.bincount(y, minlength=k)
    assert len(counts) == k and counts.max() - counts.min() <= 1


def test_moons_without_jitter_lie_on_their_half_circles():
    x, y = toy.make_moons(200, noise=0.0)
    upper, lower = x[y == 0], x[y == 1]
    assert torch.allclose(upper.norm(dim=1), torch.ones(len(upper)), atol=1e-5)
    assert torch.allclose((lower - torch.tensor([1.0, 0.5])).norm(dim=1), torch.ones(len(lower)), atol=1e-5)


def test_bad_data_arguments():
    with pytest.raises(ValueError):
        toy.make_moons(1)
    with pytest.raises(ValueError):
        toy.make_moons(100, noise=-1.0)
    with pytest.raises(ValueError):
        toy.make_spirals(100, classes=1)
    with pytest.raises(ValueError):
        toy.train_mlp(torch.zeros(10, 3), torch.zeros(10, dtype=torch.long))


def test_mlp_learns_the_moons_and_is_deterministic():
    x, y = toy.make_moons(300, noise=0.1, seed=0)
    model = toy.train_mlp(x, y, hidden=32, epochs=150, batch_size=300, seed=0)
    assert not model.training
    assert accuracy(model, x, y, domain=None) > 0.95
    again = toy.train_mlp(x, y, hidden=32, epochs=150, batch_size=300, seed=0)
    for p, q in zip(model.parameters(), again.parameters()):
        assert torch.equal(p, q)


def test_grid_and_regions():
    x, y = toy.make_blobs(150, classes=3, spread=0.3, seed=1)
    model = toy.train_mlp(x, y, hidden=16, epochs=40, seed=0)
    xlim, ylim = toy.data_limits(x)
    g = toy.grid(xlim, ylim, 30)
    assert g.points.shape == (900, 2) and g.shape == (30, 30)
    assert g.points[0].tolist() == pytest.approx([xlim[0], ylim[0]])
    base = toy.base_regions(model, g)
    assert base.shape == (30, 30) and set(np.unique(base)) <= {0, 1, 2}

    # tiny noise: the smoothed classifier agrees with the base classifier almost everywhere
    tiny = toy.smoothed_regions(model, g, sigma=1e-3, n=20, generator=torch.Generator().manual_seed(0))
    assert (tiny.label == base).mean() > 0.97
    assert tiny.probs.shape == (30, 30, 3) and np.allclose(tiny.probs.sum(-1), 1.0)
    # larger noise: fewer points are (estimated) robust to large radii, and radii scale with sigma
    big = toy.smoothed_regions(model, g, sigma=0.5, n=100, generator=torch.Generator().manual_seed(0))
    assert big.radius.max() <= radius_from_probabilities(1 - 0.5 / 100, 0.5 / 100, 0.5) + 1e-9
    assert big.radius.max() > tiny.radius.max()
    assert (big.label != base).mean() > 0  # smoothing moves the boundary somewhere


def test_toy_inputs_need_domain_none():
    x, y = toy.make_moons(100, seed=0)
    model = toy.train_mlp(x, y, hidden=8, epochs=5)
    with pytest.raises(ValueError, match="domain=None"):
        Smooth(model, 2, 0.3, progress=False).certify_batch(x[:2], 10, 50, 0.01)
    result = Smooth(model, 2, 0.3, domain=None, progress=False).certify_batch(x[:2], 10, 50, 0.01)
    assert result.counts.sum() == 100


def test_half_space_probability_is_exact():
    clf = toy.HalfSpace(torch.tensor([3.0, 4.0]), b=1.0)  # ||w|| = 5
    x = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.2, 0.1]])
    p = clf.probability(x, sigma=0.5)
    assert p[0] == pytest.approx(norm.cdf(1.0 / 2.5)) and p[1] == pytest.approx(norm.cdf(-6.0 / 2.5))
    assert p[2] == pytest.approx(0.5)  # on the boundary
    counts = Smooth(clf, 2, 0.5, domain=None, progress=False).sample_noise_batch(
        x, 20_000, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(counts[:, 0] / 20_000, p, atol=0.01)
    with pytest.raises(ValueError):
        toy.HalfSpace(torch.zeros(2), 0.0)
