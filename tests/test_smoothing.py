"""Tests of course_lib.smoothing: the statistics, soundness, abstention, batching, input checks, metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import binom, norm
from statsmodels.stats.proportion import proportion_confint
from torch import nn

from course_lib.smoothing import (ABSTAIN, CertifyResult, Smooth, SoftSmoothed, abstain_rate, attack_smoothed,
                                  average_certified_radius, certified_accuracy, certified_accuracy_curve,
                                  certified_radius, lower_confidence_bound, max_certifiable_radius,
                                  predict_from_counts, predict_pvalue, radius_from_probabilities)


# ------------------------------------------------------------------------------------------ base classifiers
class Threshold(nn.Module):
    """f(z) = 1 if z[first coordinate] > t else 0: under N(x, sigma^2 I), P(f = 0) = Phi((t - x_0) / sigma)."""

    def __init__(self, t: float):
        super().__init__()
        self.register_buffer("t", torch.tensor(float(t)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        u = z.flatten(1)[:, 0] - self.t
        return torch.stack([-u, u], dim=1)


class Constant(nn.Module):
    """Always the same class (p_A = 1)."""

    def __init__(self, label: int, num_classes: int):
        super().__init__()
        self.label, self.num_classes = label, num_classes
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(torch.full((z.shape[0],), self.label), self.num_classes).float()


def small_cnn(seed: int = 0, channels_last: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(8 * 3 * 3, 5)).eval()
    with torch.no_grad():  # no biases: the predictions of a random network then vary under noise
        for layer in model:
            if getattr(layer, "bias", None) is not None:
                layer.bias.zero_()
    return model.to(memory_format=torch.channels_last) if channels_last else model


def images(k: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(k, 1, 12, 12, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------ statistics
@pytest.mark.parametrize("n_a,n,alpha", [(0, 10, 0.05), (1, 10, 0.05), (5, 10, 0.05), (10, 10, 0.05),
                                         (990, 1000, 0.001), (1000, 1000, 0.001), (500, 1000, 0.001),
                                         (73, 100, 0.01), (9_990, 10_000, 0.001), (3, 7, 0.3)])
def test_lower_bound_matches_statsmodels(n_a, n, alpha):
    expected = proportion_confint(n_a, n, alpha=2 * alpha, method="beta")[0]
    assert lower_confidence_bound(n_a, n, alpha) == pytest.approx(expected, abs=1e-12)


def test_lower_bound_vectorized_and_monotone():
    n_a = np.arange(0, 101)
    bounds = lower_confidence_bound(n_a, 100, 0.001)
    assert bounds.shape == (101,)
    assert bounds[0] == 0.0 and np.all(np.diff(bounds) > 0) and bounds[-1] < 1.0
    assert np.all(bounds <= n_a / 100)  # a lower bound never exceeds the point estimate


def test_radius_matches_scipy():
    p = np.array([0.5, 0.6, 0.9, 0.99, 0.999])
    for sigma in (0.12, 0.25, 1.0):
        assert np.allclose(certified_radius(p, sigma), sigma * norm.ppf(p))
        # the general pA / pB radius with pB = 1 - pA reduces to sigma * Phi^-1(pA)
        assert np.allclose(radius_from_probabilities(p, 1 - p, sigma), sigma * norm.ppf(p))
    assert radius_from_probabilities(0.6, 0.3, 0.5) == pytest.approx(0.25 * (norm.ppf(0.6) - norm.ppf(0.3)))
    assert certified_radius(0.4, 1.0) == 0.0
    # all n samples in the top class: p_lower = alpha^(1/n); about 2.46 sigma at n = 1000, alpha = 0.001
    assert max_certifiable_radius(1000, 0.001, 1.0) == pytest.approx(norm.ppf(0.001 ** (1 / 1000)))
    assert 2.4 < max_certifiable_radius(1000, 0.001, 1.0) < 2.5


def test_predict_pvalue_is_two_sided_binomial():
    assert predict_pvalue(50, 50) == pytest.approx(1.0)
    assert predict_pvalue(60, 40) == pytest.approx(2 * binom.sf(59, 100, 0.5))


# ------------------------------------------------------------------------------------------ soundness
def test_certify_soundness_simulation():
    """Known p_A: the lower bound exceeds it in at most an alpha fraction of runs (with binomial slack)."""
    sigma, alpha, n, runs = 0.5, 0.05, 100, 2000
    x0, t = 0.3, 0.6
    p_true = norm.cdf((t - x0) / sigma)  # P(f(x + e) = 0), about 0.73
    model = Threshold(t)
    smooth = Smooth(model, 2, sigma, progress=False)
    x = torch.full((runs, 1, 2, 2), x0)  # independent runs = independent copies of the same point
    result = smooth.certify_batch(x, n0=10, n=n, alpha=alpha, batch_size=4096,
                                  generator=torch.Generator().manual_seed(0))
    chose_a = result.counts0.argmax(1) == 0
    assert chose_a.mean() > 0.9
    exceed = (result.p_a_lower[chose_a] > p_true).sum()
    limit = binom.ppf(0.999, chose_a.sum(), alpha)
    assert exceed <= limit
    # the test has teeth: the naive point estimate exceeds p_A in far more than an alpha fraction of runs
    naive = result.n_a[chose_a] / n
    assert (naive > p_true).mean() > 3 * alpha
    # and the estimated frequencies match p_A
    assert result.counts[:, 0].sum() / (runs * n) == pytest.approx(p_true, abs=0.01)


class Intervals(nn.Module):
    """Class 0 if z[0] < a, 1 if a <= z[0] < b, else 2: exact class probabilities under N(x, sigma^2 I)."""

    def __init__(self, a: float, b: float):
        super().__init__()
        self.a, self.b = float(a), float(b)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        u = z.flatten(1)[:, 0]
        label = (u >= self.a).long() + (u >= self.b).long()
        return nn.functional.one_hot(label, 3).float()

    def probabilities(self, x0: float, sigma: float) -> np.ndarray:
        below_a, below_b = norm.cdf((self.a - x0) / sigma), norm.cdf((self.b - x0) / sigma)
        return np.array([below_a, below_b - below_a, 1 - below_b])


# x0 = 0.5 and sigma = 0.5: the threshold 0.5125 gives p = (0.51, 0.49); the intervals give p = (0.35, 0.33, 0.32)
@pytest.mark.parametrize("model,num_classes", [(Threshold(0.5125), 2),
                                               (Intervals(0.5 + 0.5 * norm.ppf(0.35), 0.5 + 0.5 * norm.ppf(0.68)), 3)])
def test_predict_returns_a_wrong_class_at_most_an_alpha_fraction_of_the_time(model, num_classes):
    """PREDICT's guarantee (Cohen et al., Proposition 1) where g(x) is known: p_A barely above the runner-up.

    With three classes the two tested counts are the top two of the same samples, which the binomial test of
    n_A given n_A + n_B allows (Hung and Fithian 2019)."""
    x0, sigma, alpha, n, runs = 0.5, 0.5, 0.1, 100, 2000
    if num_classes == 2:
        p0 = norm.cdf((model.t.item() - x0) / sigma)
        p = np.array([p0, 1 - p0])
    else:
        p = model.probabilities(x0, sigma)
    top = int(np.argmax(p))
    assert top == 0 and np.sort(p)[-1] - np.sort(p)[-2] < 0.03  # a close race: errors are likely
    smooth = Smooth(model, num_classes, sigma, progress=False)
    x = torch.full((runs, 1, 2, 2), x0)
    pred = smooth.predict_batch(x, n, alpha, batch_size=8192, generator=torch.Generator().manual_seed(3))
    wrong = int(np.sum((pred != ABSTAIN) & (pred != top)))
    # the 99.9% Clopper-Pearson lower bound on the wrong-answer rate must not exceed alpha
    assert lower_confidence_bound(wrong, runs, 0.001) <= alpha
    assert wrong > 0  # the race is close enough for PREDICT to err sometimes: the check is not vacuous
    # the test has teeth: the top class of the same counts, without the test, is wrong far more often
    counts = smooth.sample_noise_batch(x, n, batch_size=8192, generator=torch.Generator().manual_seed(3))
    assert np.mean(counts.argmax(1) != top) > 3 * alpha
    np.testing.assert_array_equal(pred, [predict_from_counts(c, alpha) for c in counts])


def test_certify_constant_classifier_gives_the_largest_radius():
    smooth = Smooth(Constant(3, 10), 10, 0.5, progress=False)
    label, radius = smooth.certify(images(1)[0], n0=10, n=1000, alpha=0.001)
    assert label == 3
    assert radius == pytest.approx(max_certifiable_radius(1000, 0.001, 0.5))
    assert smooth.predict(images(1)[0], n=100, alpha=0.001) == 3


# ------------------------------------------------------------------------------------------ abstention
def test_predict_abstains_on_a_fifty_fifty_classifier():
    smooth = Smooth(Threshold(0.5), 2, 0.25, progress=False)
    x = torch.full((20, 1, 2, 2), 0.5)  # exactly on the boundary: p = 1/2 for each class
    pred = smooth.predict_batch(x, n=1000, alpha=0.001, generator=torch.Generator().manual_seed(0))
    assert np.all(pred == ABSTAIN)
    far = torch.full((1, 2, 2), 0.0)  # well inside class 0
    assert smooth.predict(far, n=1000, alpha=0.001, generator=torch.Generator().manual_seed(0)) == 0


def test_certify_abstains_below_one_half():
    smooth = Smooth(Threshold(0.5), 2, 0.25, progress=False)
    x = torch.full((20, 1, 2, 2), 0.5)
    result = smooth.certify_batch(x, n0=100, n=1000, alpha=0.001, generator=torch.Generator().manual_seed(0))
    assert np.all(result.p_a_lower < 0.5)
    assert np.all(result.prediction == ABSTAIN) and np.all(result.radius == 0.0)
    assert result.abstained.all()
    # slightly inside class 0 (p_A about 0.54): still abstains at n = 100 ...
    x_near = torch.full((1, 2, 2), 0.475)
    assert Smooth(Threshold(0.5), 2, 0.25, progress=False).certify(
        x_near, 100, 100, 0.001, generator=torch.Generator().manual_seed(0)) == (ABSTAIN, 0.0)


# ------------------------------------------------------------------------------------------ batching
@pytest.mark.parametrize("channels_last", [False, True])
def test_certify_batch_equals_image_by_image(channels_last):
    model = small_cnn(0, channels_last)
    smooth = Smooth(model, 5, 0.5, progress=False, input_shape=(1, 12, 12))
    assert smooth.channels_last == channels_last
    x = images(6)
    n0, n, alpha = 40, 300, 0.01
    batched = smooth.certify_batch(x, n0, n, alpha, batch_size=128, generator=torch.Generator().manual_seed(7))
    assert isinstance(batched, CertifyResult) and len(batched) == 6
    # the counts vary across classes, some images are certified and some not: the comparison is not trivial
    assert (batched.counts > 0).sum(1).min() >= 3
    assert batched.abstained.any() and not batched.abstained.all()

    g = torch.Generator().manual_seed(7)
    counts0, counts, preds, radii = [], [], [], []
    for i in range(len(x)):  # Cohen et al.'s CERTIFY, one image at a time
        counts0.append(smooth.sample_noise(x[i], n0, batch_size=50, generator=g))
        counts.append(smooth.sample_noise(x[i], n, batch_size=50, generator=g))
    np.testing.assert_array_equal(batched.counts0, np.array(counts0))
    np.testing.assert_array_equal(batched.counts, np.array(counts))

    g = torch.Generator().manual_seed(7)
    for i in range(len(x)):
        label, radius = smooth.certify(x[i], n0, n, alpha, batch_size=1000, generator=g)
        preds.append(label)
        radii.append(radius)
    np.testing.assert_array_equal(batched.prediction, preds)
    np.testing.assert_allclose(batched.radius, radii)

    # the batch size bounds memory but does not change the random stream
    again = smooth.certify_batch(x, n0, n, alpha, batch_size=33, generator=torch.Generator().manual_seed(7))
    np.testing.assert_array_equal(again.counts, batched.counts)


def test_at_alpha_recomputes_the_certificate_from_the_same_counts():
    smooth = Smooth(small_cnn(0), 5, 0.5, progress=False)
    x = images(6)
    strict = smooth.certify_batch(x, 40, 300, 0.001, generator=torch.Generator().manual_seed(7))
    loose = smooth.certify_batch(x, 40, 300, 0.1, generator=torch.Generator().manual_seed(7))
    again = strict.at_alpha(0.1)
    np.testing.assert_array_equal(again.prediction, loose.prediction)
    np.testing.assert_allclose(again.radius, loose.radius)
    # a stricter confidence level never certifies a larger radius nor abstains less
    assert np.all(strict.radius <= loose.radius) and strict.abstained.sum() >= loose.abstained.sum()
    with pytest.raises(ValueError, match="alpha"):
        strict.at_alpha(1.0)


def test_predict_batch_equals_loop():
    smooth = Smooth(small_cnn(1), 5, 0.5, progress=False)
    x = images(4, seed=3)
    batched = smooth.predict_batch(x, 200, 0.05, batch_size=64, generator=torch.Generator().manual_seed(2))
    g = torch.Generator().manual_seed(2)
    loop = [smooth.predict(x[i], 200, 0.05, batch_size=64, generator=g) for i in range(4)]
    np.testing.assert_array_equal(batched, loop)


def test_certify_restores_training_mode():
    model = small_cnn(0).train()
    Smooth(model, 5, 0.25, progress=False).certify(images(1)[0], 5, 10, 0.1)
    assert model.training


# ------------------------------------------------------------------------------------------ bad inputs
def test_bad_constructor_arguments():
    model = small_cnn()
    for sigma in (0, -0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="sigma"):
            Smooth(model, 5, sigma)
    with pytest.raises(ValueError, match="num_classes"):
        Smooth(model, 1, 0.25)
    with pytest.raises(ValueError, match="domain"):
        Smooth(model, 5, 0.25, domain=(1.0, 0.0))
    with pytest.raises(TypeError, match="Module"):
        Smooth(lambda z: z, 5, 0.25)


def test_bad_call_arguments():
    smooth = Smooth(small_cnn(), 5, 0.25, progress=False, input_shape=(1, 12, 12))
    x = images(2)
    for alpha in (0, 1, -0.1, 1.5):
        with pytest.raises(ValueError, match="alpha"):
            smooth.certify_batch(x, 10, 100, alpha)
        with pytest.raises(ValueError, match="alpha"):
            smooth.predict(x[0], 100, alpha)
    with pytest.raises(ValueError, match="n0"):
        smooth.certify_batch(x, 0, 100, 0.01)
    with pytest.raises(ValueError, match="n "):
        smooth.certify_batch(x, 10, 0, 0.01)
    with pytest.raises(ValueError, match="batch_size"):
        smooth.certify_batch(x, 10, 10, 0.01, batch_size=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        smooth.certify_batch(x * 2 - 0.5, 10, 10, 0.01)
    with pytest.raises(ValueError, match="NaN"):
        smooth.certify_batch(x * float("nan"), 10, 10, 0.01)
    with pytest.raises(ValueError, match="shape"):
        smooth.certify(x, 10, 10, 0.01)  # a batch given to the single-image method
    with pytest.raises(ValueError, match="shape"):
        smooth.certify_batch(x[0], 10, 10, 0.01)  # a single image given to the batch method
    with pytest.raises(TypeError, match="floating"):
        smooth.certify_batch((x * 255).to(torch.uint8), 10, 10, 0.01)
    with pytest.raises(TypeError, match="n0 must be an integer"):
        smooth.certify_batch(x, 10.0, 100, 0.01)


def test_wrong_shapes_without_declared_input_shape():
    smooth = Smooth(small_cnn(), 5, 0.25, progress=False)
    with pytest.raises(ValueError, match="rejected"):
        smooth.certify_batch(torch.rand(2, 3, 12, 12), 5, 5, 0.1)  # 3 channels into a 1-channel model
    with pytest.raises(ValueError, match="logits"):
        Smooth(small_cnn(), 7, 0.25, progress=False).certify_batch(images(1), 5, 5, 0.1)  # 5 != 7 classes


def test_domain_check_can_be_disabled():
    x = torch.tensor([[-2.0, 3.5]])
    model = nn.Linear(2, 3)
    with pytest.raises(ValueError, match="domain=None"):
        Smooth(model, 3, 0.5, progress=False).certify_batch(x, 5, 20, 0.1)
    result = Smooth(model, 3, 0.5, domain=None, progress=False).certify_batch(x, 5, 20, 0.1)
    assert result.counts.sum() == 20


# ------------------------------------------------------------------------------------------ metrics
def test_metrics_on_a_hand_made_example():
    labels = np.array([0, 1, 2, 1, 0])
    prediction = np.array([0, 1, ABSTAIN, 0, 0])
    radius = np.array([0.5, 0.2, 0.0, 1.0, 0.0])
    assert certified_accuracy(prediction, radius, labels, 0.0) == pytest.approx(3 / 5)
    assert certified_accuracy(prediction, radius, labels, 0.1) == pytest.approx(2 / 5)
    assert certified_accuracy(prediction, radius, labels, 0.3) == pytest.approx(1 / 5)
    assert certified_accuracy(prediction, radius, labels, 0.6) == 0.0  # the wrong radius-1 point never counts
    assert average_certified_radius(prediction, radius, labels) == pytest.approx((0.5 + 0.2 + 0.0) / 5)
    assert abstain_rate(prediction) == pytest.approx(1 / 5)
    curve = certified_accuracy_curve(prediction, radius, labels, [0.0, 0.1, 0.3, 0.6])
    np.testing.assert_allclose(curve, [0.6, 0.4, 0.2, 0.0])


def test_an_abstention_never_counts_as_correct():
    # even if a label happens to equal the ABSTAIN code, abstaining is wrong
    assert certified_accuracy([ABSTAIN], [0.0], [ABSTAIN], 0.0) == 0.0
    assert average_certified_radius([ABSTAIN], [0.0], [ABSTAIN]) == 0.0


def test_certified_accuracy_curve_is_non_increasing_and_acr_is_its_integral():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 500)
    prediction = np.where(rng.random(500) < 0.8, labels, rng.integers(-1, 10, 500))
    radius = np.where(prediction == ABSTAIN, 0.0, rng.exponential(0.5, 500))
    grid = np.linspace(0, 4, 401)
    curve = certified_accuracy_curve(prediction, radius, labels, grid)
    assert np.all(np.diff(curve) <= 0)
    assert curve[0] == certified_accuracy(prediction, radius, labels, 0.0)
    # ACR = integral of the certified-accuracy curve over r (a left Riemann sum bounds it from above)
    step = grid[1] - grid[0]
    acr = average_certified_radius(prediction, radius, labels)
    assert curve[1:].sum() * step <= acr <= curve[:-1].sum() * step + 1e-12


def test_metric_input_checks():
    with pytest.raises(ValueError, match="same length"):
        certified_accuracy([0, 1], [0.1], [0, 1], 0.0)
    with pytest.raises(ValueError, match="r must"):
        certified_accuracy([0], [0.1], [0], -1.0)
    with pytest.raises(ValueError, match=">= 0"):
        average_certified_radius([0], [-0.1], [0])
    with pytest.raises(ValueError, match="alpha"):
        lower_confidence_bound(5, 10, 0.0)
    with pytest.raises(ValueError, match="n_a"):
        lower_confidence_bound(11, 10, 0.1)


# ------------------------------------------------------------------------------------------ attack helper
def test_soft_smoothed_outputs_log_probabilities_with_gradients():
    model = small_cnn(0)
    soft = SoftSmoothed(model, 0.25, m=8, generator=torch.Generator().manual_seed(0))
    x = images(3).requires_grad_(True)
    out = soft(x)
    assert out.shape == (3, 5)
    assert torch.allclose(out.exp().sum(1), torch.ones(3), atol=1e-5)
    out[:, 0].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_attack_smoothed_stays_in_the_ball():
    model = small_cnn(0)
    x, y = images(3), torch.tensor([0, 1, 2])
    eps = np.array([0.0, 0.3, 1.0])
    x_adv = attack_smoothed(model, 0.25, x, y, eps, m=4, steps=3, generator=torch.Generator().manual_seed(0))
    dist = (x_adv - x).flatten(1).norm(dim=1).numpy()
    assert dist[0] == 0.0 and np.all(dist <= eps + 1e-5) and dist[2] > 0
    assert x_adv.min() >= 0 and x_adv.max() <= 1
