"""Certification throughput of :class:`course_lib.smoothing.Smooth` (noisy samples per second).

Compares, on the same model and the same forward batch size:

1. ``raw forward``: the model alone on a ready-made batch (the ceiling: no noise, no counting);
2. ``certify_batch``: :meth:`Smooth.certify_batch` on all images at once (noise drawn per image, forward
   batches packed across images, counts on the device);
3. ``image-by-image``: a loop like the reference implementation (locuslab/smoothing ``core.py``): one image at
   a time, each forward batch holds that image's noise only, counts accumulated with ``numpy.bincount``.

The machine may be shared: each method is timed ``--repeats`` times, interleaved, and the best (least
disturbed) time is reported next to the median, both in wall-clock time and in CPU time of this process
(``time.process_time``; with ``--threads 1`` it measures the work done and hardly depends on other processes
competing for the cores). Usage::

    python benchmarks/certify_throughput.py [--images 20 --n0 100 --n 1000 --batch 100 --repeats 10 --threads 1]
                                            [--profile quick] [--device cpu]

The model is the profile's architecture (quick: the Small CNN on 1 x 28 x 28 images, the numbers in the README), on
``--device`` (default ``$COURSE_DEVICE`` or the best available) in the memory format :mod:`course_lib.device` picks.

Target: certify_batch within 10% of the raw forward throughput.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch import nn

from common import IMAGE_SHAPES, add_switches, apply_switches, sync
from course_lib.device import memory_format
from course_lib.models import build_model
from course_lib.smoothing import Smooth


def profile_model(profile, device: torch.device) -> nn.Module:
    """The profile's architecture (quick: the Small CNN, conv16-conv32-fc100, for 1 x 28 x 28 inputs), untrained,
    in eval mode, on ``device`` in its memory format."""
    channels, size = IMAGE_SHAPES[profile.dataset]
    model = build_model(profile.arch, channels, size, 10, [0.1307] * channels, [0.3081] * channels)
    return model.eval().to(device, memory_format=memory_format(device))


def timed(fn, device: torch.device = torch.device("cpu")) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds of this process) spent in ``fn()`` (GPU work included: synchronized)."""
    sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def raw_forward(model: nn.Module, x: torch.Tensor, total: int, batch: int) -> None:
    """Push ``total`` samples through the model in batches of ``batch`` (inputs prepared once, no noise)."""
    xb = x[:1].repeat(batch, 1, 1, 1).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        done = 0
        while done < total:
            m = min(batch, total - done)
            model(xb[:m])
            done += m


def reference_counts(model: nn.Module, x: torch.Tensor, num: int, batch: int, sigma: float,
                     num_classes: int) -> np.ndarray:
    """Counts for ONE image as the reference implementation draws them: noise of that image only."""
    counts = np.zeros(num_classes, dtype=int)
    remaining = num
    with torch.no_grad():
        while remaining > 0:
            this = min(batch, remaining)
            remaining -= this
            xb = x.repeat((this, 1, 1, 1))
            noise = torch.randn_like(xb) * sigma
            predictions = model(xb + noise).argmax(1)
            counts += np.bincount(predictions.cpu().numpy(), minlength=num_classes)
    return counts


def image_by_image(model: nn.Module, x: torch.Tensor, n0: int, n: int, batch: int, sigma: float) -> None:
    for i in range(x.shape[0]):
        reference_counts(model, x[i], n0, batch, sigma, 10)
        reference_counts(model, x[i], n, batch, sigma, 10)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--sigma", type=float, default=0.25)
    parser.add_argument("--repeats", type=int, default=10)
    add_switches(parser, profile_default="quick")
    args = parser.parse_args(argv)
    device, profile = apply_switches(args)

    torch.manual_seed(0)
    model = profile_model(profile, device)
    channels, size = IMAGE_SHAPES[profile.dataset]
    x = torch.rand(args.images, channels, size, size, generator=torch.Generator().manual_seed(1)).to(device)
    smooth = Smooth(model, 10, args.sigma, progress=False)
    total = args.images * (args.n0 + args.n)
    params = sum(p.numel() for p in model.parameters())
    print(f"{profile.arch} of profile {profile.name} ({params:,} parameters, {memory_format(device)}) on {device}, "
          f"{args.images} images, n0={args.n0}, n={args.n}, batch {args.batch}, {torch.get_num_threads()} threads: "
          f"{total:,} noisy samples per run")

    g = torch.Generator(device=device).manual_seed(0)
    runs = {
        "raw forward": lambda: raw_forward(model, x, total, args.batch),
        "certify_batch": lambda: smooth.certify_batch(x, args.n0, args.n, 0.001, args.batch, generator=g),
        "image-by-image (reference)": lambda: image_by_image(model, x, args.n0, args.n, args.batch, args.sigma),
    }
    for run in runs.values():  # warm-up (one-time allocations, oneDNN primitive caches)
        run()
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            w, c = timed(run, device)
            wall[name].append(w)
            cpu[name].append(c)

    rate = {
        (clock, stat): {name: total / f(t[name]) for name in runs}
        for clock, t in (("wall", wall), ("cpu", cpu)) for stat, f in (("best", min), ("median", statistics.median))
    }
    print(f"\n{'samples/s':28s} {'wall best':>11s} {'wall median':>12s} {'CPU best':>11s} {'CPU median':>11s}")
    for name in runs:
        print(f"{name:28s} " + " ".join(f"{rate[key][name]:{11 if i != 1 else 12},.0f}"
                                        for i, key in enumerate(rate)))
    # Paired ratios: the methods of one round ran back to back, under about the same load from other processes;
    # the median over rounds of the per-round ratio is the most robust number on a shared machine.
    ratios = {
        "certify_batch / raw forward (paired, CPU, median over rounds)": statistics.median(
            r / c for r, c in zip(cpu["raw forward"], cpu["certify_batch"])),
        "certify_batch / image-by-image (paired, CPU, median over rounds)": statistics.median(
            r / c for r, c in zip(cpu["image-by-image (reference)"], cpu["certify_batch"])),
    }
    for key in rate:
        ratios[f"certify_batch / raw forward ({key[0]} {key[1]})"] = (rate[key]["certify_batch"]
                                                                    / rate[key]["raw forward"])
    for key in rate:
        ratios[f"certify_batch / image-by-image ({key[0]} {key[1]})"] = (rate[key]["certify_batch"]
                                                                       / rate[key]["image-by-image (reference)"])
    print()
    for name, value in ratios.items():
        print(f"{name:66s} {value:6.3f}")
    target = ratios["certify_batch / raw forward (paired, CPU, median over rounds)"]
    verdict = "meets" if target >= 0.9 else "MISSES"
    print(f"\ncertify_batch {verdict} the target (within 10% of the raw forward throughput; paired CPU-time ratio).")
    return ratios


if __name__ == "__main__":
    main()
