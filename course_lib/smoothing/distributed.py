r"""CERTIFY split over processes: each rank certifies its share of the images, every rank gets all the counts.

CERTIFY of one image (Cohen et al. 2019) never looks at another image, so W processes (``torchrun``, see
:mod:`course_lib.distributed`) can certify ``N`` images in about ``1/W`` of the time: rank r certifies the
contiguous block :func:`course_lib.distributed.shard` ``(N)`` and the count arrays meet by an all-reduce.

Seeds per image. :func:`course_lib.smoothing.certify.evaluate_certify` draws the noise of all images from ONE
generator, image after image, so the noise of image i depends on every draw before it, i.e. on the images
certified first, and a rank starting at image 500 could not reproduce it without drawing the 500 images' noise
first. Here the noise of image i comes from a generator of its own, seeded with
``derived_seed(seed, index_i)`` (a distinct seed per image), on the model's device. Its counts therefore depend only
on the model, the image, its index, ``seed``, ``n0``, ``n`` and ``batch_size``, not on which rank certifies it nor on
the other images: the result of W processes equals that of one process, count for count (the test certifies with
2 processes and with 1 and compares). It is a different random stream from ``evaluate_certify``'s, so the two
agree in distribution, not draw for draw; the chapters keep reading the ``certify`` evaluation.

Gathering. Each rank writes its images' counts into an ``N x 2 x K`` array of zeros (``int64``); the element-wise sum
over ranks (all-reduce) is the full array, exactly (integers), on every rank, and every rank returns the same
:class:`~course_lib.smoothing.certify.CertifyResult` (rank 0 is the one that writes it to the cache).
"""

from __future__ import annotations

import time
from typing import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from .. import distributed
from ..checks import check_count
from ..data import DataSplit
from ..evaluation import register_evaluation
from ..profiles import Profile
from .certify import CertifyResult, Smooth, certificate, certify_setup
from .sampling import noise_counts
from .stats import check_alpha


def certify_sharded(smooth: Smooth, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int = 100,
                    seed: int = 0, indices: Sequence[int] | None = None) -> CertifyResult:
    """CERTIFY (:meth:`Smooth.certify_batch`'s procedure) of every input of ``x``, the inputs shared among the
    processes of the group (one process without a group: all of them), with image ``j``'s noise drawn from a
    generator seeded with ``derived_seed(seed, indices[j])`` (``indices`` default ``0 .. len(x) - 1``: pass the
    images' positions in their data set to certify part of it and get the same counts as certifying all of it).
    Every rank must call it with the same arguments; every rank returns the result for all of ``x``."""
    n0, n, alpha = check_count(n0, "n0"), check_count(n, "n"), check_alpha(alpha)
    check_count(batch_size, "batch_size")
    smooth._check_x(x, batched=True)
    indices = list(range(len(x))) if indices is None else [int(i) for i in indices]
    if len(indices) != len(x) or len(set(indices)) != len(indices):
        raise ValueError(f"indices must give {len(x)} distinct image indices, got {len(indices)} "
                         f"({len(set(indices))} distinct)")
    counts = torch.zeros((len(x), 2, smooth.num_classes), dtype=torch.long)
    device = smooth.device
    mine = distributed.shard(len(x))
    bar = tqdm(mine, desc="certifying", unit="images", leave=False,
               disable=not (smooth.progress and distributed.is_main()))
    for j in bar:
        generator = torch.Generator(device=device).manual_seed(distributed.derived_seed(seed, indices[j]))
        counts[j] = torch.from_numpy(noise_counts(smooth.base_classifier, x[j:j + 1], [n0, n], smooth.sigma,
                                                  smooth.num_classes, batch_size, generator, progress=False)[0])
    counts = distributed.all_reduce_sum(counts).numpy()
    return certificate(counts[:, 0], counts[:, 1], smooth.sigma, n0, n, alpha)


@register_evaluation("certify_sharded")
def evaluate_certify_sharded(model: nn.Module, data: DataSplit, profile: Profile, sigma: float,
                             n: int | None = None, n0: int | None = None, alpha: float = 0.001,
                             images: int | None = None, seed: int = 0, batch_size: int = 100) -> dict:
    """Like :func:`course_lib.smoothing.certify.evaluate_certify` (the same images, defaults and record: counts of
    both draws, labels, settings, seconds), but certified by :func:`certify_sharded`: split over the processes
    when run under ``torchrun`` (``python -m course_lib.zoo certify``), with noise seeded per image, so the counts
    are the same for any number of processes. Also records ``processes``."""
    smooth, x, y, n, n0, images = certify_setup(model, data, profile, sigma, n, n0, images)
    start = time.perf_counter()
    result = certify_sharded(smooth, x, n0, n, alpha, batch_size=batch_size, seed=seed)
    return {"sigma": sigma, "n": n, "n0": n0, "alpha": alpha, "images": images, "seed": seed,
            "noise": "per-image seeds", "processes": distributed.world_size(),
            "seconds": time.perf_counter() - start, "labels": y.tolist(),
            "counts0": result.counts0.tolist(), "counts": result.counts.tolist()}
