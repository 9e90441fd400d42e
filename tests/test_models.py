"""Tests of course_lib.models: every architecture builds and runs, normalization is the first layer, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_lib.models import ARCHS, ConditionedSequential, FixedLambda, Normalize, build_model, count_parameters

pytestmark = pytest.mark.usefixtures("single_thread")

SHAPES = {"mnist": (1, 28, [0.13], [0.31]), "cifar10": (3, 32, [0.49, 0.48, 0.45], [0.25, 0.24, 0.26])}


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("data", sorted(SHAPES))
def test_every_architecture_maps_images_to_logits(arch, data):
    channels, size, mean, std = SHAPES[data]
    torch.manual_seed(0)
    model = build_model(arch, channels, size, 10, mean, std).eval()
    x = torch.rand(2, channels, size, size, requires_grad=True)
    if isinstance(model, ConditionedSequential):  # lambda-conditioned: called through the adapter
        logits = FixedLambda(model, model.choices[-1])(x)
    else:
        logits = model(x)
    assert logits.shape == (2, 10) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert isinstance(model[0], Normalize)
    logits.sum().backward()  # attacks need input gradients
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("num_classes", [2, 7])
def test_number_of_classes_sets_the_output_width(num_classes):
    model = build_model("mlp", 1, 8, num_classes, [0.5], [0.2])
    assert model(torch.rand(3, 1, 8, 8)).shape == (3, num_classes)


def test_normalize_is_per_channel_standardization():
    mean, std = [0.1, 0.5, 0.9], [0.2, 0.4, 0.8]
    x = torch.rand(4, 3, 5, 5)
    out = Normalize(mean, std)(x)
    for c in range(3):
        torch.testing.assert_close(out[:, c], (x[:, c] - mean[c]) / std[c])


def test_normalization_happens_inside_the_model():
    torch.manual_seed(0)
    model = build_model("small_cnn", 1, 28, 10, [0.3], [0.25]).eval()
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(model(x), model[1]((x - 0.3) / 0.25))


def test_normalization_constants_are_saved_buffers_not_trained_parameters():
    model = build_model("tiny_cnn", 1, 28, 10, [0.3], [0.25])
    state = model.state_dict()
    assert state["0.mean"].flatten().tolist() == pytest.approx([0.3])
    assert state["0.std"].flatten().tolist() == pytest.approx([0.25])
    assert not any(name.startswith("0.") for name, _ in model.named_parameters())


def test_channels_last_gives_the_same_logits():
    torch.manual_seed(0)
    model = build_model("small_cnn", 1, 28, 10, [0.3], [0.25]).eval()
    x = torch.rand(4, 1, 28, 28)
    expected = model(x)
    model = model.to(memory_format=torch.channels_last)
    torch.testing.assert_close(model(x.to(memory_format=torch.channels_last)), expected, rtol=1e-4, atol=1e-5)


def test_parameter_counts_match_the_documentation():
    """The module docstring: small_cnn 163k parameters and cnn 422k for MNIST; tiny_cnn is low-capacity."""
    counts = {arch: count_parameters(build_model(arch, 1, 28, 10, [0.5], [0.5])) for arch in ARCHS}
    assert round(counts["small_cnn"] / 1000) == 163
    assert round(counts["cnn"] / 1000) == 422
    assert counts["tiny_cnn"] < counts["small_cnn"] < counts["cnn"]
    assert count_parameters(nn.Linear(3, 2)) == 8


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown architecture 'vgg'.*small_cnn"):
        build_model("vgg", 1, 28, 10, [0.5], [0.5])


@pytest.mark.parametrize("mean, std", [([0.5], [0.5, 0.5]), ([0.5, 0.5], [0.5]), ([], [])])
def test_mean_and_std_need_one_entry_per_channel(mean, std):
    with pytest.raises(ValueError, match="mean/std need 1 entries"):
        build_model("mlp", 1, 8, 10, mean, std)


@pytest.mark.parametrize("std", [[0.0], [-0.5]])
def test_std_must_be_positive(std):
    with pytest.raises(ValueError, match="std must be positive"):
        build_model("mlp", 1, 8, 10, [0.5], std)
