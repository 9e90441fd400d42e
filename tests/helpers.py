"""Small building blocks shared by several test modules (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import torch
from torch import nn


class Probe(nn.Module):
    """Identity that records whether it ran in training mode (to check that code restores a model's mode)."""

    def __init__(self):
        super().__init__()
        self.seen: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(self.training)
        return x


def write_cifar10_files(folder, arrays: dict, train_per_file: tuple[int, ...], monkeypatch) -> None:
    """Write ``arrays`` (train_x, train_y, test_x, test_y; images as N x 3072 uint8) in torchvision's CIFAR-10 format
    into ``folder`` (cifar-10-batches-py): len(train_per_file) training files of those sizes, a test file, the
    meta file. torchvision checks each file's md5 against its own table: the table is patched to these files."""
    import hashlib
    import pickle

    import numpy as np
    import torchvision.datasets as tvd

    from course_lib.data import CIFAR10_CLASSES

    folder.mkdir(parents=True)

    def dump(name: str, obj: dict) -> list[str]:
        with open(folder / name, "wb") as f:
            pickle.dump(obj, f)
        return [name, hashlib.md5((folder / name).read_bytes()).hexdigest()]

    ends = np.cumsum((0,) + tuple(train_per_file))
    train_list = [dump(f"data_batch_{i + 1}", {"data": arrays["train_x"][a:b],
                                               "labels": np.asarray(arrays["train_y"][a:b]).tolist()})
                  for i, (a, b) in enumerate(zip(ends[:-1], ends[1:]))]
    test_list = [dump("test_batch", {"data": arrays["test_x"], "labels": np.asarray(arrays["test_y"]).tolist()})]
    meta_name, meta_md5 = dump("batches.meta", {"label_names": CIFAR10_CLASSES})
    monkeypatch.setattr(tvd.CIFAR10, "train_list", train_list)
    monkeypatch.setattr(tvd.CIFAR10, "test_list", test_list)
    monkeypatch.setattr(tvd.CIFAR10, "meta", {"filename": meta_name, "key": "label_names", "md5": meta_md5})
