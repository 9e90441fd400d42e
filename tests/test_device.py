"""Tests of course_lib.device: the COURSE_DEVICE override, the automatic choice, seeding, a model's device."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from course_lib.device import DEVICE_ENV, get_device, model_device, seed_everything


@pytest.fixture
def no_accelerators(monkeypatch):
    """Pretend this machine has neither CUDA nor MPS (true here; forced so the tests hold on any machine)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.mark.parametrize("value", ["cpu", " cpu ", "cpu\n"])
def test_course_device_cpu_is_honoured(monkeypatch, value):
    monkeypatch.setenv(DEVICE_ENV, value)
    assert get_device() == torch.device("cpu")


def test_course_device_cpu_wins_over_an_available_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert get_device() == torch.device("cpu")


@pytest.mark.parametrize("value", ["banana", "gpu", "cuda:x", "cpu cpu"])
def test_invalid_device_name_is_a_clear_error(monkeypatch, value):
    monkeypatch.setenv(DEVICE_ENV, value)
    with pytest.raises(ValueError, match=r"COURSE_DEVICE=.*not a torch device name"):
        get_device()


@pytest.mark.parametrize("value", ["cuda", "cuda:0", "cuda:1"])
def test_cuda_requested_without_cuda_is_a_clear_error(monkeypatch, no_accelerators, value):
    monkeypatch.setenv(DEVICE_ENV, value)
    with pytest.raises(ValueError, match="CUDA is not available"):
        get_device()


def test_mps_requested_without_mps_is_a_clear_error(monkeypatch, no_accelerators):
    monkeypatch.setenv(DEVICE_ENV, "mps")
    with pytest.raises(ValueError, match="MPS is not available"):
        get_device()


@pytest.mark.parametrize("value", [None, "", "   "])
def test_default_is_cpu_without_accelerators(monkeypatch, no_accelerators, value):
    if value is None:
        monkeypatch.delenv(DEVICE_ENV, raising=False)
    else:
        monkeypatch.setenv(DEVICE_ENV, value)
    assert get_device() == torch.device("cpu")


@pytest.mark.parametrize("cuda, mps, expected", [(True, True, "cuda"), (True, False, "cuda"),
                                                 (False, True, "mps"), (False, False, "cpu")])
def test_default_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert get_device().type == expected


def test_the_default_device_is_usable_on_this_machine(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    device = get_device()
    t = torch.ones(3, device=device)
    assert t.device.type == device.type and t.sum().item() == 3


def _draws(generator: torch.Generator) -> tuple:
    return (random.random(), float(np.random.rand()), torch.rand(3).tolist(),
            torch.rand(3, generator=generator).tolist())


def test_seed_everything_makes_python_numpy_and_torch_reproducible():
    first = _draws(seed_everything(123))
    second = _draws(seed_everything(123))
    other = _draws(seed_everything(124))
    assert first == second
    assert all(a != b for a, b in zip(first, other))


def test_seed_everything_accepts_seeds_beyond_numpy_range():
    big = 2**40 + 7  # NumPy needs a seed below 2**32; the helper reduces it
    assert _draws(seed_everything(big)) == _draws(seed_everything(big))


def test_model_device_reads_the_first_parameter():
    assert model_device(nn.Linear(2, 2)) == torch.device("cpu")
    assert model_device(nn.Linear(2, 2, device="meta")) == torch.device("meta")  # not hard-coded to the CPU


def test_model_device_falls_back_to_buffers_then_cpu():
    holder = nn.Module()
    holder.register_buffer("b", torch.zeros(1, device="meta"))
    assert model_device(holder) == torch.device("meta")
    assert model_device(nn.ReLU()) == torch.device("cpu")
