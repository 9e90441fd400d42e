"""Tests of course_lib.data: the quick split, the torchvision path (offline, on tiny hand-written files), checks.

The torchvision tests write tiny data sets in torchvision's own on-disk formats under a temporary root and call
``course_lib.data.load_dataset(name, root=..., download=...)`` with every network connection blocked:

- MNIST / Fashion-MNIST: the four raw idx-ubyte files under ``root/<ClassName>/raw`` (torchvision reads the raw
  files directly and only checks that they exist, so ``download=True`` must find them and download nothing).
- CIFAR-10: the pickled batches under ``root/cifar-10-batches-py``. torchvision verifies each file against the
  md5 digest of the real CIFAR-10 files, which a tiny hand-written file cannot match; instead of disabling the
  check we point torchvision's file list at the digests of the files this test wrote (``monkeypatch`` on the
  ``CIFAR10`` class attributes), so its own integrity check still runs, byte for byte, on our files.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import write_cifar10_files

from course_lib import data
from course_lib.data import (CIFAR10_CLASSES, DATA_ENV, FASHION_CLASSES, MNIST_CLASSES, data_dir,
                             load_data, load_dataset, make_loader, stratified_split)
from course_lib.profiles import PROFILE_ENV, get_profile

pytestmark = pytest.mark.usefixtures("single_thread")


# ------------------------------------------------------------------------------------------ the quick split
def test_quick_split_shapes_types_and_range(quick_data):
    assert quick_data.name == "mnist_subset"
    assert quick_data.x_train.shape == (4000, 1, 28, 28) and quick_data.x_test.shape == (1000, 1, 28, 28)
    assert quick_data.y_train.shape == (4000,) and quick_data.y_test.shape == (1000,)
    for x in (quick_data.x_train, quick_data.x_test):
        assert x.dtype == torch.float32
        assert x.min() >= 0 and x.max() <= 1
        assert x.min() == 0 and x.max() == 1  # pixel scale is [0, 1], not [0, 255] or a fraction of it
    for y in (quick_data.y_train, quick_data.y_test):
        assert y.dtype == torch.int64 and set(y.tolist()) == set(range(10))
    assert quick_data.classes == MNIST_CLASSES and quick_data.num_classes == 10


def test_quick_split_is_stratified(quick_data, mnist_raw):
    counts = np.bincount(mnist_raw[1].astype(int), minlength=10)
    test_counts = np.bincount(quick_data.y_test.numpy(), minlength=10)
    assert np.all(np.abs(test_counts - counts * 1000 / len(mnist_raw[1])) <= 1)
    assert np.array_equal(test_counts + np.bincount(quick_data.y_train.numpy(), minlength=10), counts)


def _rows(x: torch.Tensor) -> list[bytes]:
    return [row.tobytes() for row in np.rint(x.flatten(1).numpy() * 255).astype(np.uint8)]


def test_quick_split_is_a_partition_of_the_5000_digits_with_their_labels(quick_data, mnist_raw):
    raw_x, raw_y = mnist_raw
    label_of = {row.tobytes(): int(label) for row, label in zip(raw_x.astype(np.uint8), raw_y)}
    assert len(label_of) == 5000  # the 5,000 digits are distinct, so images identify examples
    train, test = _rows(quick_data.x_train), _rows(quick_data.x_test)
    assert set(train).isdisjoint(test)
    assert set(train) | set(test) == set(label_of)
    assert [label_of[r] for r in train] == quick_data.y_train.tolist()  # each image keeps its own label
    assert [label_of[r] for r in test] == quick_data.y_test.tolist()


def test_quick_split_is_deterministic_across_calls(quick_data, fresh_quick_split):
    first = fresh_quick_split()
    second = fresh_quick_split()
    assert first is not second  # really recomputed, not the cached object
    for split in (first, second):
        for field in ("x_train", "y_train", "x_test", "y_test"):
            assert torch.equal(getattr(split, field), getattr(quick_data, field))


def test_load_data_follows_the_profile(monkeypatch, quick_data):
    monkeypatch.setenv(PROFILE_ENV, "quick")
    assert load_data().name == "mnist_subset"
    assert load_data("quick").name == "mnist_subset"
    assert load_data(get_profile("quick")).name == "mnist_subset"
    monkeypatch.setenv(PROFILE_ENV, "nope")
    with pytest.raises(ValueError, match="unknown profile 'nope'"):
        load_data()


def test_mean_and_std_are_per_channel_training_statistics(quick_data):
    assert quick_data.mean == pytest.approx([quick_data.x_train.mean().item()], rel=1e-5)
    assert quick_data.std == pytest.approx([quick_data.x_train.std().item()], rel=1e-5)


def test_unknown_data_set_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown data set 'svhn'"):
        load_dataset("svhn")


# ------------------------------------------------------------------------------------------ stratified_split
@settings(max_examples=40, deadline=None)
@given(labels=st.lists(st.integers(0, 4), min_size=2, max_size=120), fraction=st.floats(0.01, 0.99),
       seed=st.integers(0, 2**31))
def test_stratified_split_properties(labels, fraction, seed):
    y = np.array(labels)
    test_size = min(max(1, int(round(fraction * len(y)))), len(y) - 1)
    train, test = stratified_split(y, test_size, seed)
    assert len(test) == test_size and len(train) == len(y) - test_size
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(len(y)))  # disjoint and complete
    for c in np.unique(y):
        share = np.sum(y == c) * test_size / len(y)
        assert abs(np.sum(y[test] == c) - share) < 1
    again = stratified_split(y, test_size, seed)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])


@pytest.mark.parametrize("test_size", [0, -1, 10, 11])
def test_stratified_split_rejects_impossible_sizes(test_size):
    with pytest.raises(ValueError, match="test_size must be in"):
        stratified_split(np.arange(10) % 2, test_size, 0)


# ------------------------------------------------------------------------------------------ make_loader
def test_make_loader_shuffles_reproducibly_and_covers_everything():
    x = torch.arange(20, dtype=torch.float32).view(20, 1, 1, 1) / 20
    y = torch.arange(20)

    def order(seed, shuffle=True):
        return torch.cat([yb for _, yb in make_loader(x, y, 6, shuffle=shuffle, seed=seed)]).tolist()

    assert order(3) == order(3)
    assert order(3) != order(4)
    assert sorted(order(3)) == list(range(20))
    assert order(0, shuffle=False) == list(range(20))
    for xb, yb in make_loader(x, y, 6, shuffle=True, seed=1):
        assert torch.equal((xb.flatten() * 20).round().long(), yb)  # pairs stay together


def test_make_loader_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="different lengths: 3 vs 2"):
        make_loader(torch.zeros(3, 1, 2, 2), torch.zeros(2, dtype=torch.long), 2, shuffle=False)


# ------------------------------------------------------------------------------------------ data_dir
def test_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "downloads"))
    assert data_dir() == tmp_path / "downloads"
    monkeypatch.setenv(DATA_ENV, "~/somewhere")
    assert data_dir() == Path.home() / "somewhere"
    monkeypatch.delenv(DATA_ENV)
    assert data_dir() == Path("data")


# ------------------------------------------------------------------------------------------ torchvision, offline
def _write_idx(path: Path, array: np.ndarray) -> None:
    """An idx file (LeCun's format): magic 0x0000 0x08 (unsigned byte) ndim, big-endian sizes, then the bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


def _images(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    images = rng.integers(0, 256, size=shape, dtype=np.uint8)
    images.reshape(-1)[:2] = [0, 255]  # both ends of the pixel range occur
    return images


def _write_mnist_like(root: Path, folder: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    arrays = {}
    for split, n in (("train", 6), ("t10k", 4)):
        arrays[f"{split}_x"] = _images(rng, (n, 28, 28))
        arrays[f"{split}_y"] = rng.permutation(10)[:n].astype(np.uint8)
        _write_idx(raw / f"{split}-images-idx3-ubyte", arrays[f"{split}_x"])
        _write_idx(raw / f"{split}-labels-idx1-ubyte", arrays[f"{split}_y"])
    return arrays


def _write_cifar10(root: Path, rng: np.random.Generator, monkeypatch) -> dict[str, np.ndarray]:
    arrays = {"train_x": _images(rng, (10, 3072)), "train_y": rng.integers(0, 10, 10),
              "test_x": _images(rng, (3, 3072)), "test_y": rng.integers(0, 10, 3)}
    # See the module docstring: torchvision's integrity check runs against the digests of *these* files.
    write_cifar10_files(root / "cifar-10-batches-py", arrays, (2, 2, 2, 2, 2), monkeypatch)
    return arrays


@pytest.fixture
def clean_dataset_cache(fresh_quick_split):
    """load_dataset is lru-cached (4 entries): drop the tiny data sets afterwards and keep the quick split cached."""
    load_dataset.cache_clear()
    yield
    fresh_quick_split()


@pytest.mark.usefixtures("clean_dataset_cache")
@pytest.mark.parametrize("download", [False, True])
@pytest.mark.parametrize("name, folder, classes", [("mnist", "MNIST", MNIST_CLASSES),
                                                    ("fashion", "FashionMNIST", FASHION_CLASSES)])
def test_torchvision_mnist_formats_offline(tmp_path, no_network, name, folder, classes, download):
    arrays = _write_mnist_like(tmp_path, folder, np.random.default_rng(1))
    split = load_dataset(name, root=str(tmp_path), download=download)
    assert split.name == name and split.classes == classes
    for part, prefix in (("train", "train"), ("test", "t10k")):
        x, y = getattr(split, f"x_{part}"), getattr(split, f"y_{part}")
        assert x.shape == (len(arrays[f"{prefix}_x"]), 1, 28, 28) and x.dtype == torch.float32
        assert x.min() == 0 and x.max() == 1
        torch.testing.assert_close(x[:, 0], torch.from_numpy(arrays[f"{prefix}_x"]).float() / 255, rtol=0, atol=0)
        assert y.dtype == torch.int64 and y.tolist() == arrays[f"{prefix}_y"].tolist()


@pytest.mark.usefixtures("clean_dataset_cache")
@pytest.mark.parametrize("download", [False, True])
def test_torchvision_cifar10_format_offline(tmp_path, no_network, monkeypatch, download):
    arrays = _write_cifar10(tmp_path, np.random.default_rng(2), monkeypatch)
    split = load_dataset("cifar10", root=str(tmp_path), download=download)
    assert split.name == "cifar10" and split.classes == CIFAR10_CLASSES
    for part in ("train", "test"):
        x, y = getattr(split, f"x_{part}"), getattr(split, f"y_{part}")
        raw = arrays[f"{part}_x"]
        assert x.shape == (len(raw), 3, 32, 32) and x.dtype == torch.float32 and x.is_contiguous()
        assert x.min() == 0 and x.max() == 1
        # CIFAR rows are 1024 red, then 1024 green, then 1024 blue values, row-major: channel first, N x C x H x W
        expected = torch.from_numpy(raw.reshape(-1, 3, 32, 32)).float() / 255
        torch.testing.assert_close(x, expected, rtol=0, atol=0)
        assert y.dtype == torch.int64 and y.tolist() == arrays[f"{part}_y"].tolist()
    assert split.mean == pytest.approx(split.x_train.mean(dim=(0, 2, 3)).tolist())
    assert len(split.mean) == 3


@pytest.mark.usefixtures("clean_dataset_cache")
def test_torchvision_root_defaults_to_course_data_dir(tmp_path, no_network, monkeypatch):
    arrays = _write_mnist_like(tmp_path, "MNIST", np.random.default_rng(3))
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    split = load_dataset("mnist", download=False)
    assert split.y_test.tolist() == arrays["t10k_y"].tolist()


@pytest.mark.usefixtures("clean_dataset_cache")
@pytest.mark.parametrize("name", ["mnist", "fashion", "cifar10"])
def test_missing_files_without_download_fail_without_touching_the_network(tmp_path, no_network, name):
    with pytest.raises(RuntimeError, match="not found"):
        load_dataset(name, root=str(tmp_path / "empty"), download=False)
    assert data.load_dataset.cache_info().currsize == 0  # a failure is not cached
