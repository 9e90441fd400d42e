"""course_lib.checks: one helper per kind of input; TypeError for a wrong type, ValueError for a wrong value."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib.checks import (check_choice, check_count, check_eps, check_images, check_labels, check_positive,
                               check_real, check_tensor, check_unit_interval)


def test_check_images_accepts_valid_images():
    check_images(torch.rand(2, 3, 4, 4))
    check_images(torch.zeros(1, 1, 2, 2, dtype=torch.float64))
    check_images(torch.ones(1, 1, 2, 2, dtype=torch.float16))
    check_images(torch.zeros(0, 1, 2, 2))


@pytest.mark.parametrize("bad, error, message", [
    (torch.full((1, 1, 2, 2), 1.01), ValueError, r"must lie in \[0, 1\]"),
    (torch.full((1, 1, 2, 2), -0.01), ValueError, r"must lie in \[0, 1\]"),
    (torch.full((1, 1, 2, 2), 255.0), ValueError, r"must lie in \[0, 1\]"),
    (torch.full((1, 1, 2, 2), float("nan")), ValueError, "NaN"),
    (torch.tensor([[[[0.5, float("nan")]]]]), ValueError, "NaN"),
    (torch.zeros(1, 1, 2, 2, dtype=torch.uint8), TypeError, "floating-point"),
    (torch.zeros(1, 1, 2, 2, dtype=torch.int64), TypeError, "floating-point"),
    (np.zeros((1, 1, 2, 2), dtype=np.float32), TypeError, "floating-point torch tensor"),
    (torch.zeros(1, 2, 2), ValueError, "N x C x H x W"),
    (torch.zeros(2, 2), ValueError, "N x C x H x W"),
    (torch.zeros(1, 1, 1, 2, 2), ValueError, "N x C x H x W"),
])
def test_check_images_rejects_bad_images(bad, error, message):
    with pytest.raises(error, match=message):
        check_images(bad, "images")


def test_check_tensor_domain_and_dims():
    check_tensor(torch.tensor([[-5.0, 3.0]]))  # no domain: any finite values
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        check_tensor(torch.tensor([[-5.0, 3.0]]), domain=(0.0, 1.0))
    with pytest.raises(ValueError, match="2 dimensions"):
        check_tensor(torch.zeros(3), dim=2)
    with pytest.raises(ValueError, match="infinite"):
        check_tensor(torch.tensor([math.inf]))


def test_check_labels():
    check_labels(torch.tensor([1, 2, 3]), 3)
    with pytest.raises(ValueError, match="one label per example"):
        check_labels(torch.tensor([[1], [2], [3]]), 3)  # N x 1 would broadcast into an N x N table
    with pytest.raises(TypeError, match="integer torch tensor"):
        check_labels(torch.tensor([1.0, 2.0]), 2)
    with pytest.raises(TypeError, match="integer torch tensor"):
        check_labels([1, 2], 2)


@pytest.mark.parametrize("value, error", [(0, ValueError), (-3, ValueError), (2.0, TypeError), (True, TypeError),
                                          ("5", TypeError)])
def test_check_count_rejects(value, error):
    with pytest.raises(error):
        check_count(value, "steps")


def test_check_count_accepts_numpy_integers_and_returns_an_int():
    assert check_count(np.int64(5), "n") == 5 and isinstance(check_count(np.int64(5), "n"), int)
    assert check_count(0, "n", minimum=0) == 0


@pytest.mark.parametrize("value, error", [(-0.1, ValueError), (math.inf, ValueError), (math.nan, ValueError),
                                          ("0.3", TypeError), (None, TypeError)])
def test_check_eps_rejects(value, error):
    with pytest.raises(error):
        check_eps(value)


def test_check_positive_and_real():
    assert check_positive(np.float32(0.5), "sigma") == 0.5
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="sigma must be a positive"):
            check_positive(bad, "sigma")
    with pytest.raises(TypeError):
        check_real(True, "beta")


@pytest.mark.parametrize("value, kwargs, ok", [
    (0.0, {}, True), (1.0, {}, True), (0.5, {}, True), (-0.01, {}, False), (1.01, {}, False),
    (0.0, {"open_low": True}, False), (1.0, {"open_high": True}, False), (math.nan, {}, False),
])
def test_check_unit_interval(value, kwargs, ok):
    if ok:
        assert check_unit_interval(value, "alpha", **kwargs) == value
    else:
        with pytest.raises(ValueError, match="alpha must lie in"):
            check_unit_interval(value, "alpha", **kwargs)


def test_check_choice():
    check_choice("linf", ("linf", "l2"), "norm")
    with pytest.raises(ValueError, match="unknown norm 'l1'"):
        check_choice("l1", ("linf", "l2"), "norm")
    with pytest.raises(TypeError):
        check_choice(2, ("linf", "l2"), "norm")
