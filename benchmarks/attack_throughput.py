"""Attack throughput (images per second): the course's FGSM and PGD against torchattacks' on the same model.

Same model (the profile's architecture, eval mode, on the device and memory format :mod:`course_lib.device`
chooses), same images, same threat model (the profile's l_inf eps; PGD with the profile's evaluation steps, step
2.5 eps / steps, one random start), timed in interleaved rounds so that both see the same load; best and median
over ``--repeats`` rounds. Also reports the robust accuracy each attack leaves, which must agree within noise
(with ``--model random`` the model is untrained and the accuracies say nothing; pass a recipe name to attack the
cached model, trained on a miss)::

    python benchmarks/attack_throughput.py [--profile quick] [--device cpu] [--images 500] [--batch 250]
                                           [--repeats 5] [--model random|<recipe>] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchattacks

from common import IMAGE_SHAPES, add_switches, apply_switches, describe_machine, random_images, sync
from course_lib import zoo
from course_lib.attacks import fgsm, pgd
from course_lib.device import memory_format
from course_lib.evaluation import accuracy
from course_lib.models import build_model


def attacks(profile, generator: torch.Generator) -> dict:
    eps, steps = profile.attack.eps_linf, profile.attack.steps
    alpha = 2.5 * eps / steps
    return {
        "fgsm (course_lib)": lambda m, x, y: fgsm(m, x, y, eps),
        "FGSM (torchattacks)": lambda m, x, y: torchattacks.FGSM(m, eps=eps)(x, y),
        f"pgd-{steps} (course_lib)": lambda m, x, y: pgd(m, x, y, eps, alpha=alpha, steps=steps, generator=generator),
        f"PGD-{steps} (torchattacks)": lambda m, x, y: torchattacks.PGD(m, eps=eps, alpha=alpha, steps=steps,
                                                                       random_start=True)(x, y),
    }


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_switches(parser)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default="random", help="'random' (untrained) or a recipe name from the cache")
    args = parser.parse_args(argv)
    device, profile = apply_switches(args)
    if args.model == "random":
        channels, size = IMAGE_SHAPES[profile.dataset]
        x, y = random_images(profile, args.images)
        torch.manual_seed(0)
        model = build_model(profile.arch, channels, size, 10, [0.5] * channels, [0.25] * channels)
    else:
        data = zoo.load_data(profile)
        x, y = data.x_test[:args.images], data.y_test[:args.images]
        model = zoo.load(args.model, profile)
    model = model.to(device, memory_format=memory_format(device)).eval()
    x, y = x.to(device).contiguous(memory_format=memory_format(device)), y.to(device)
    print(f"profile {profile.name} ({profile.arch}, model {args.model}), {len(x)} images in batches of {args.batch}, "
          f"on {describe_machine(device)}")

    generator = torch.Generator(device=device)
    runs = attacks(profile, generator)
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    adversarial: dict[str, torch.Tensor] = {}

    def run(name: str) -> float:
        generator.manual_seed(0)
        sync(device)
        start = time.perf_counter()
        out = torch.cat([runs[name](model, x[i:i + args.batch], y[i:i + args.batch])
                         for i in range(0, len(x), args.batch)])
        sync(device)
        adversarial[name] = out
        return time.perf_counter() - start

    for name in runs:  # warm-up
        run(name)
    for _ in range(args.repeats):
        for name in runs:
            seconds[name].append(run(name))
    results = {}
    print(f"\n{'attack':28s} {'img/s best':>11s} {'img/s median':>13s} {'accuracy left':>14s}")
    for name in runs:
        acc = accuracy(model, adversarial[name].cpu(), y.cpu())
        results[name] = {"best": len(x) / min(seconds[name]), "median": len(x) / statistics.median(seconds[name]),
                         "accuracy": acc}
        r = results[name]
        print(f"{name:28s} {r['best']:11,.0f} {r['median']:13,.0f} {acc:14.3f}")
    names = list(runs)
    for ours, theirs in zip(names[::2], names[1::2]):
        ratio = statistics.median(t / o for o, t in zip(seconds[ours], seconds[theirs]))
        print(f"{ours} / {theirs}: {ratio:.2f}x torchattacks' throughput (paired median over rounds)")
    return results


if __name__ == "__main__":
    main()
