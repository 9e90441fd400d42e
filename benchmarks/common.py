"""What every benchmark shares: the ``--profile``, ``--device`` and ``--threads`` switches, the profiles' image shapes
and random images, and a one-line description of the machine (for the README's tables).

The benchmarks import it as ``common`` (Python puts a script's own folder first on ``sys.path``).
"""

from __future__ import annotations

import argparse
import os
import platform

import torch

from course_lib.device import DEVICE_ENV, get_device
from course_lib.profiles import PROFILES, Profile, get_profile

IMAGE_SHAPES = {"mnist_subset": (1, 28), "mnist": (1, 28), "fashion": (1, 28), "cifar10": (3, 32)}
"""(channels, height = width) of each profile's data set, for random images of the right shape."""


def add_switches(parser: argparse.ArgumentParser, profile_default: str | None = None) -> None:
    """``--profile`` (default ``$COURSE_PROFILE`` or quick), ``--device`` and ``--threads``."""
    parser.add_argument("--profile", default=profile_default, choices=sorted(PROFILES),
                        help="default: $COURSE_PROFILE or quick")
    parser.add_argument("--device", default=None, help=f"e.g. cpu, cuda, cuda:1 (default: ${DEVICE_ENV} or the best)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")


def apply_switches(args: argparse.Namespace) -> tuple[torch.device, Profile]:
    """Set the torch threads and ``$COURSE_DEVICE`` from the switches; return the device and the profile."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device:
        os.environ[DEVICE_ENV] = args.device
    return get_device(), get_profile(args.profile)


def random_images(profile: Profile, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` uniform random images of the profile's shape and random labels 0..9 (throughput ignores content)."""
    channels, size = IMAGE_SHAPES[profile.dataset]
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, size, size, generator=g), torch.randint(0, 10, (n,), generator=g)


def sync(device: torch.device) -> None:
    """Wait for the GPU's queued work (a no-op elsewhere), so that a timer measures the work itself."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def describe_machine(device: torch.device) -> str:
    """One line naming the machine: the GPU, or the CPU model, its cores and torch's threads; the torch version."""
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        where = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo") as f:
                where = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
        where += f", {os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads"
    return f"{device} ({where}), torch {torch.__version__}"
