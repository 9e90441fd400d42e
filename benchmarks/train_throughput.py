"""Training throughput (images per second) of standard, PGD-AT and Gaussian training, per profile and device.

Each kind trains its recipe (``standard``, ``pgd_at``, ``gaussian_0.25``) exactly as the model cache would for the
profile: the profile's architecture, optimizer, learning-rate schedule, weight decay, augmentation, batch size and
inner PGD, through :func:`course_lib.training.train` (so mixed precision and channels_last are whatever the loop
and :mod:`course_lib.device` choose on the device). The images are random tensors of the profile's image shape
(no download needed); the throughput does not depend on their content. One warm-up epoch, then ``--repeats``
timed epochs of ``--images`` images; the best and the median are reported (the machine may be shared)::

    python benchmarks/train_throughput.py [--profile quick] [--device cpu] [--images 2048] [--repeats 3]
                                          [--kinds standard pgd_at gaussian_0.25] [--threads N]

DDP scaling: launched by torchrun, every process trains its share of each global batch (the loop's
DistributedDataParallel path, :mod:`course_lib.distributed`), the epoch is timed between barriers, and the images
per second are the whole group's (rank 0 prints)::

    torchrun --standalone --nproc_per_node=2 benchmarks/train_throughput.py --kinds pgd_at
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import IMAGE_SHAPES, add_switches, apply_switches, describe_machine, random_images, sync
from course_lib import distributed
from course_lib.device import memory_format
from course_lib.models import build_model, count_parameters
from course_lib.recipes import get_recipe
from course_lib.training import LOSSES, train
from course_lib.training.augment import make_augment

KINDS = ("standard", "pgd_at", "gaussian_0.25")


def throughput(name: str, profile, device: torch.device, images: int, repeats: int) -> dict[str, float]:
    """Images per second of one training epoch of recipe ``name`` for ``profile`` on ``device``."""
    recipe = get_recipe(name).resolved(profile)
    channels, size = IMAGE_SHAPES[profile.dataset]
    x, y = random_images(profile, images)
    torch.manual_seed(0)
    model = build_model(recipe.arch or profile.arch, channels, size, 10, [0.5] * channels, [0.25] * channels)
    model = model.to(device, memory_format=memory_format(device))
    loss = LOSSES[recipe.loss](**recipe.loss_kwargs)  # (an eps ramp-up does not change the cost: PGD runs all steps)

    def epoch() -> float:
        sync(device)
        distributed.barrier()  # a no-op in one process
        start = time.perf_counter()
        train(model, x, y, loss, epochs=1, batch_size=recipe.batch_size, optimizer=recipe.optimizer, lr=recipe.lr,
              weight_decay=recipe.weight_decay, schedule=recipe.schedule, augment=make_augment(recipe.augment),
              desc=None)
        sync(device)
        distributed.barrier()
        return time.perf_counter() - start

    epoch()  # warm-up: allocations, oneDNN / cuDNN algorithm choice
    seconds = [epoch() for _ in range(repeats)]
    return {"best": images / min(seconds), "median": images / statistics.median(seconds),
            "parameters": count_parameters(model), "batch": recipe.batch_size}


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_switches(parser)
    parser.add_argument("--images", type=int, default=2048, help="images per timed epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), help="recipe names to time")
    args = parser.parse_args(argv)
    device, profile = apply_switches(args)
    if distributed.launched():
        device = distributed.init_from_env()
    say = print if distributed.is_main() else (lambda *_: None)  # rank 0 reports
    say(f"profile {profile.name} ({profile.dataset}, {profile.arch}), {args.images} random images per epoch, "
        f"on {describe_machine(device)}, {distributed.world_size()} process(es)")
    results = {}
    say(f"\n{'recipe':16s} {'arch':20s} {'params':>10s} {'batch':>6s} {'img/s best':>11s} {'img/s median':>13s}")
    for name in args.kinds:
        r = results[name] = throughput(name, profile, device, args.images, args.repeats)
        arch = get_recipe(name).arch or profile.arch
        say(f"{name:16s} {arch:20s} {r['parameters']:10,d} {r['batch']:6d} {r['best']:11,.0f} {r['median']:13,.0f}")
    distributed.teardown()
    return results


if __name__ == "__main__":
    main()
