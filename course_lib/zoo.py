"""The model cache ("zoo"): ``load(name)`` returns a trained model, training and caching it on a miss.

Each entry is a state_dict plus metadata (recipe, profile, metrics, versions) saved with ``torch.save`` under
``$COURSE_CACHE_DIR`` (default ``~/.cache/accuracy-vs-robustness``), in a file named by the recipe, the profile
and a hash of both. Writes are atomic (temporary file, then ``os.replace``); loads use ``weights_only=True``;
a corrupt or foreign file is detected and retrained; a file lock makes concurrent builds train once.
:func:`evaluate` caches a costly evaluation of a cached model (e.g. CERTIFY at n = 10,000) the same way.

Command line::

    python -m course_lib.zoo list
    python -m course_lib.zoo train --all        # or: train standard pgd_at
    python -m course_lib.zoo certify gaussian_0.25 --sigma 0.25 --samples 10000   # "certify_sharded"

Several processes (:mod:`course_lib.distributed`): ``torchrun --standalone --nproc_per_node=8 -m course_lib.zoo
train pgd_at`` trains with DistributedDataParallel (the recipe's global batch split over the 8 processes) and
``... -m course_lib.zoo certify ...`` certifies each process's share of the images. Rank 0 alone takes the file
lock and writes the cache, after every rank has finished; every rank gets rank 0's entry. One failing rank fails
the run (torchrun names it) and nothing is written.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock
from torch import nn

from .data import DataSplit, load_data
from .device import get_device, memory_format, seed_everything
from . import distributed
from . import mixing, smoothing  # noqa: F401  (register the "mixing_sweep" and "certify" evaluation kinds)
from .smoothing import distributed as _sharded_certify  # noqa: F401  (registers the "certify_sharded" kind)
from .evaluation import EVALUATIONS, MONITORS
from .models import build_model
from .profiles import Profile, get_profile, resolve_profile, resolve_sizes
from .recipes import RECIPES, Recipe, get_recipe
from .training import LOSSES, train
from .training.augment import make_augment
from .training.best import KeepBest

CACHE_ENV = "COURSE_CACHE_DIR"
FORMAT_VERSION = 3

# Named (accurate, robust) pairs: the base models of the mixing chapters (6-7); read them with pair_names().
# "mixing": the standard model and a robust model with a real clean-accuracy gap (measured in chapter 2).
PAIRS: dict[str, tuple[str, str]] = {"mixing": ("standard", "tiny_trades_6")}
# Where a profile has its own pair: at full size both are PreAct ResNet-18s, the robust one trained with TRADES
# (beta 6), as Bai et al. (2024) mix two ResNet-18s (Figure 2; a TRADES model in their Appendix A). The quick
# profile's tiny CNN is a CPU stand-in with a clean-accuracy gap chapter 2 measures.
PROFILE_PAIRS: dict[str, dict[str, tuple[str, str]]] = {"cifar10": {"mixing": ("standard", "trades_6")}}
# The alpha sweep of chapter 6 (at least 11 values, denser around 1/2); chapter 7 reads the same cached evaluation.
MIXING_ALPHAS = (0.0, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)


def cache_dir() -> Path:
    """``$COURSE_CACHE_DIR`` or ``~/.cache/accuracy-vs-robustness``."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "accuracy-vs-robustness"
    return Path(os.environ.get(CACHE_ENV, default)).expanduser()


def recipe_key(recipe: Recipe, profile: Profile) -> str:
    """A hash of everything that determines the trained weights (the recipe's prose description does not)."""
    fields = {k: v for k, v in dataclasses.asdict(recipe).items() if k != "description"}
    blob = json.dumps({"recipe": fields, "profile": dataclasses.asdict(profile),
                       "format": FORMAT_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def checkpoint_path(name: str, profile: Profile) -> Path:
    """Where the named recipe's checkpoint for ``profile`` lives in the cache."""
    return cache_dir() / f"{name}--{profile.name}--{recipe_key(get_recipe(name), profile)}.pt"


def build_for(recipe: Recipe, profile: Profile, data: DataSplit) -> nn.Module:
    """An untrained model for ``recipe`` on the profile's data, on the default device, in the memory format the
    device module chooses for it (:func:`course_lib.device.memory_format`: channels_last on CUDA and the CPU)."""
    x = data.x_train
    model = build_model(recipe.arch or profile.arch, x.shape[1], x.shape[-1], data.num_classes, data.mean, data.std)
    device = get_device()
    return model.to(device, memory_format=memory_format(device))


def train_recipe(recipe: Recipe, profile: Profile) -> tuple[nn.Module, dict]:
    """Train ``recipe`` from scratch (seeded), evaluate it, and return the model and its metadata."""
    for kind, value, known in (("loss", recipe.loss, LOSSES), ("evaluation", recipe.eval, EVALUATIONS),
                               ("monitor", recipe.monitor, MONITORS)):
        if value not in known and not (kind == "monitor" and value is None):
            raise ValueError(f"recipe {recipe.name!r}: unknown {kind} {value!r}; known: {sorted(known)}")
    data = load_data(profile)
    seed_everything(recipe.seed)
    model = build_for(recipe, profile, data)
    loss = LOSSES[recipe.loss](**resolve_sizes(recipe.loss_kwargs, profile))
    monitor = MONITORS[recipe.monitor](data, profile) if recipe.monitor else None
    trained = recipe.resolved(profile)  # every size("training....") marker replaced by the profile's value
    best = KeepBest(monitor, trained.keep_best) if monitor is not None and trained.keep_best else None
    history = train(model, data.x_train, data.y_train, loss, epochs=int(trained.epochs),
                    batch_size=trained.batch_size, optimizer=trained.optimizer, lr=trained.lr,
                    weight_decay=trained.weight_decay, schedule=trained.schedule,
                    augment=make_augment(trained.augment, recipe.seed), monitor=best or monitor, seed=recipe.seed,
                    desc=f"training {recipe.name}")
    epoch = best.restore(model) if best is not None else len(history.loss)  # Rice et al.'s best epoch, or the last
    metrics = EVALUATIONS[recipe.eval](model, data, profile, **resolve_sizes(recipe.eval_kwargs, profile))
    meta = {"name": recipe.name, "key": recipe_key(recipe, profile), "profile": profile.name,
            "recipe": json.dumps(dataclasses.asdict(trained), sort_keys=True), "train_seconds": history.seconds,
            "final_loss": history.loss[-1], "loss_history": history.loss, "monitor": history.monitor,
            "epoch": epoch, "best_by": trained.keep_best if best is not None else None, "metrics": metrics,
            "torch": str(torch.__version__), "format": FORMAT_VERSION}
    return model, meta


def _atomic_save(obj: Any, path: Path) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a shared cache must be readable by others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _try_load(path: Path, key: str, model: nn.Module) -> dict | None:
    """The metadata if ``path`` holds a valid checkpoint for ``key`` (loaded into ``model``), else None."""
    if not path.exists():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or blob.get("meta", {}).get("key") != key:
            raise ValueError("checkpoint belongs to another recipe")
        model.load_state_dict(blob["state_dict"])
        return blob["meta"]
    except Exception as err:  # corrupt, truncated, foreign or incompatible: retrain
        print(f"[zoo] ignoring unusable checkpoint {path.name}: {type(err).__name__}: {err}")
        return None


def load(name: str, profile: Profile | str | None = None, retrain: bool = False) -> nn.Module:
    """The trained model for recipe ``name`` in eval mode (trained and cached on a miss)."""
    return load_with_meta(name, profile, retrain)[0]


def load_with_meta(name: str, profile: Profile | str | None = None, retrain: bool = False) -> tuple[nn.Module, dict]:
    """Like :func:`load`, also returning the entry's metadata (recipe, metrics, training time)."""
    profile = resolve_profile(profile)
    recipe = get_recipe(name)
    key = recipe_key(recipe, profile)
    path = checkpoint_path(name, profile)
    path.parent.mkdir(parents=True, exist_ok=True)
    if distributed.world_size() > 1:
        return _load_shared(recipe, profile, key, path, retrain)
    with FileLock(str(path) + ".lock"):
        model = build_for(recipe, profile, load_data(profile))
        meta = None if retrain else _try_load(path, key, model)
        if meta is None:
            model, meta = train_recipe(recipe, profile)
            _atomic_save({"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "meta": meta}, path)
    return model.eval(), meta


def _shared_entry(path: Path, what: str, lookup, compute, save, share=None):
    """A cache entry under a process group of W > 1 processes (torchrun): found or made once, the same everywhere.

    Rank 0 alone holds the file lock (ranks of one job waiting for one another's lock while the holder waits for
    them in a collective would deadlock) and runs ``lookup()``; its verdict is broadcast. On a miss every rank runs
    ``compute()`` (data-parallel training or a sharded evaluation: collectives inside), a barrier proves that every
    rank finished, and only then rank 0 runs ``save(entry)``, the atomic write. Every rank returns rank 0's entry,
    broadcast rather than read back from the file (a second machine needs no shared cache folder); ``share()``, if
    given, runs last on every rank (e.g. broadcasting the weights). If any rank fails, the others fail at their next
    collective (or torchrun stops them) before rank 0 writes: the cache gets no new and no partial file.
    """
    main = distributed.is_main()
    with FileLock(str(path) + ".lock") if main else contextlib.nullcontext():
        try:
            entry = lookup() if main else None
            if not distributed.broadcast_object(entry is not None):
                entry = compute()
                distributed.barrier()
                if main:
                    save(entry)
            entry = distributed.broadcast_object(entry)
            if share is not None:
                share()
            return entry
        except Exception as err:
            raise RuntimeError(f"[zoo] rank {distributed.rank()} of {distributed.world_size()}: {what} failed "
                               f"({type(err).__name__}: {err}). If another rank failed first, its error is the "
                               f"cause (torchrun names it). Nothing partial was written to the cache.") from err


def _load_shared(recipe: Recipe, profile: Profile, key: str, path: Path, retrain: bool) -> tuple[nn.Module, dict]:
    """:func:`load_with_meta` under a process group: every rank trains (DDP in :func:`course_lib.training.train`),
    rank 0 writes, every rank ends with rank 0's weights and metadata (:func:`_shared_entry`)."""
    box = [build_for(recipe, profile, load_data(profile))]

    def compute() -> dict:
        box[0], meta = train_recipe(recipe, profile)
        return meta

    def save(meta: dict) -> None:
        _atomic_save({"state_dict": {k: v.cpu() for k, v in box[0].state_dict().items()}, "meta": meta}, path)

    meta = _shared_entry(path, f"training {recipe.name!r}", lambda: None if retrain else _try_load(path, key, box[0]),
                         compute, save, share=lambda: distributed.broadcast_module(box[0]))
    return box[0].eval(), meta


def metrics(name: str, profile: Profile | str | None = None) -> dict:
    """The metrics recorded when the named model was trained (trains it on a miss)."""
    return load_with_meta(name, profile)[1]["metrics"]


def evaluation_path(name: str, kind: str, kwargs: dict, profile: Profile) -> Path:
    """Where :func:`evaluate` caches evaluation ``kind`` with ``kwargs`` of the named model (or, for
    :func:`evaluate_pair`, of the pair's robust model, ``name = "a+b"`` naming both): next to the checkpoint,
    named by a hash of the evaluation (the stored model keys make retraining a model invalidate it)."""
    blob = json.dumps({"kind": kind, "kwargs": kwargs, "format": FORMAT_VERSION}, sort_keys=True)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:12]
    first, _, partner = name.partition("+")
    suffix = f".{kind}-{partner + '-' if partner else ''}{digest}.pt"
    return checkpoint_path(first, profile).with_suffix(suffix)


def _check_evaluation_kwargs(kind: str, kwargs: dict) -> dict:
    """Known kind; arguments that are JSON numbers, strings, booleans, None or lists of numbers (returned with
    tuples turned into lists, so that the key does not depend on which one was passed)."""
    if kind not in EVALUATIONS:
        raise ValueError(f"unknown evaluation {kind!r}; known: {sorted(EVALUATIONS)}")
    clean = {}
    for key, value in kwargs.items():
        if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
            value = list(value)
        elif not isinstance(value, (int, float, str, bool)) and value is not None:
            raise TypeError(f"evaluation argument {key}={value!r} must be a number, string, boolean, None or a "
                            f"list of numbers")
        clean[key] = value
    return clean


def _cached_evaluation(path: Path, model_keys: str | list[str], kind: str, kwargs: dict, model: Any,
                       profile: Profile) -> dict:
    def lookup() -> dict | None:
        if path.exists():
            try:
                blob = torch.load(path, map_location="cpu", weights_only=True)
                if blob.get("model_key") == model_keys and blob.get("kwargs") == kwargs:
                    return blob["metrics"]
            except Exception as err:  # corrupt or foreign: recompute
                print(f"[zoo] ignoring unusable evaluation {path.name}: {type(err).__name__}: {err}")
        return None

    def compute() -> dict:
        return EVALUATIONS[kind](model, load_data(profile), profile, **kwargs)

    def save(metrics: dict) -> None:
        _atomic_save({"model_key": model_keys, "kind": kind, "kwargs": kwargs, "metrics": metrics}, path)

    if distributed.world_size() > 1:
        return _shared_entry(path, f"evaluation {kind!r}", lookup, compute, save)
    with FileLock(str(path) + ".lock"):
        metrics = lookup()
        if metrics is None:
            metrics = compute()
            save(metrics)
    return metrics


def evaluate(name: str, kind: str, profile: Profile | str | None = None, **kwargs: Any) -> dict:
    """``EVALUATIONS[kind](model, data, profile, **kwargs)`` for the named cached model, itself cached.

    For evaluations that cost more than a warm build can pay (e.g. CERTIFY at n = 10,000): the result is saved
    atomically beside the checkpoint and read back with ``weights_only=True``; the key covers the model's recipe,
    the profile, the kind and every argument, so any change recomputes it. Arguments must be JSON numbers,
    strings, booleans or lists of numbers.
    """
    kwargs = _check_evaluation_kwargs(kind, kwargs)
    profile = resolve_profile(profile)
    model, meta = load_with_meta(name, profile)
    return _cached_evaluation(evaluation_path(name, kind, kwargs, profile), meta["key"], kind, kwargs, model,
                              profile)


def pair_names(pair: str, profile: Profile | str | None = None) -> tuple[str, str]:
    """The (accurate, robust) recipe names of the named pair in ``profile`` (:data:`PROFILE_PAIRS`, else
    :data:`PAIRS`)."""
    if pair not in PAIRS:
        raise ValueError(f"unknown pair {pair!r}; known pairs: {sorted(PAIRS)}")
    return PROFILE_PAIRS.get(resolve_profile(profile).name, {}).get(pair, PAIRS[pair])


def evaluate_pair(pair: str, kind: str, profile: Profile | str | None = None, **kwargs: Any) -> dict:
    """Like :func:`evaluate` for a named pair (:func:`pair_names`): ``EVALUATIONS[kind]((accurate, robust), data,
    profile, **kwargs)``, cached under both models' keys (retraining either recomputes it)."""
    names = pair_names(pair, profile)
    kwargs = _check_evaluation_kwargs(kind, kwargs)
    profile = resolve_profile(profile)
    loaded = [load_with_meta(name, profile) for name in names]
    path = evaluation_path(f"{names[1]}+{names[0]}", kind, kwargs, profile)
    return _cached_evaluation(path, [meta["key"] for _, meta in loaded], kind, kwargs,
                              tuple(model for model, _ in loaded), profile)


def load_pair(name: str, profile: Profile | str | None = None) -> tuple[nn.Module, nn.Module]:
    """The (accurate, robust) models of the named pair (:data:`PAIRS`), from the cache (trained on a miss)."""
    profile = resolve_profile(profile)
    accurate, robust = pair_names(name, profile)
    return load(accurate, profile), load(robust, profile)


def main(argv: list[str] | None = None) -> None:
    """The command line (module docstring). Under torchrun each process runs it: it joins the process group
    (:func:`course_lib.distributed.init_from_env`), only rank 0 prints, and a failing rank's traceback reaches
    torchrun's summary (``torch.distributed.elastic``'s ``record``)."""
    if distributed.launched():
        from torch.distributed.elastic.multiprocessing.errors import record

        return record(_main)(argv)
    return _main(argv)


def _main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(prog="python -m course_lib.zoo", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the recipes and whether each is cached for the current profile")
    tr = sub.add_parser("train", help="train (or load) recipes")
    tr.add_argument("names", nargs="*")
    tr.add_argument("--all", action="store_true")
    tr.add_argument("--retrain", action="store_true", help="ignore cached checkpoints")
    ce = sub.add_parser("certify", help="CERTIFY a model's first test images, noise seeded per image, split over "
                        "the processes under torchrun (the cached 'certify_sharded' evaluation)")
    ce.add_argument("name")
    ce.add_argument("--sigma", type=float, required=True)
    # Cohen et al.'s n is --samples: torchrun would read "--n" as an abbreviation of its own --nnodes/--nproc-per-node
    ce.add_argument("--samples", dest="n", type=int, help="estimation samples n (default: the profile's)")
    ce.add_argument("--n0", type=int, help="selection samples n0 (default: the profile's)")
    for option, kind in (("--alpha", float), ("--images", int), ("--seed", int), ("--batch-size", int)):
        ce.add_argument(option, type=kind, help="default: the profile's images; alpha 0.001, seed 0, batch size 100")
    args = parser.parse_args(argv)
    profile = get_profile()
    started = distributed.launched() and not distributed.is_initialized()
    distributed.init_from_env()
    say = print if distributed.is_main() else (lambda *_: None)
    try:
        if args.command == "list":
            say(f"profile {profile.name}, cache {cache_dir()}")
            for name, recipe in RECIPES.items():
                state = "cached" if checkpoint_path(name, profile).exists() else "-"
                say(f"  {name:16s} {state:7s} {recipe.description}")
        elif args.command == "certify":
            _certify_command(args, profile, say)
        else:
            names = list(RECIPES) if args.all else args.names
            if not names:
                parser.error("name recipes to train, or pass --all")
            for name in names:
                get_recipe(name)  # fail early on a typo
            for name in names:
                _, meta = load_with_meta(name, profile, retrain=args.retrain)
                say(f"{name}: {json.dumps(meta['metrics'])} ({meta['train_seconds']:.1f} s to train)")
    finally:
        if started:
            distributed.teardown()


def _certify_command(args: argparse.Namespace, profile: Profile, say) -> None:
    options = {"sigma": args.sigma, "n": args.n, "n0": args.n0, "alpha": args.alpha, "images": args.images,
               "seed": args.seed, "batch_size": args.batch_size}
    record = evaluate(args.name, "certify_sharded", profile, **{k: v for k, v in options.items() if v is not None})
    result = smoothing.certificate(np.array(record["counts0"]), np.array(record["counts"]), record["sigma"],
                                   record["n0"], record["n"], record["alpha"])
    correct = result.prediction == np.array(record["labels"])
    say(f"{args.name}: {record['images']} images certified at sigma = {record['sigma']:g} (n0 = {record['n0']}, "
        f"n = {record['n']}, alpha = {record['alpha']:g}) by {record['processes']} process(es) in "
        f"{record['seconds']:.1f} s: certified accuracy at radius 0 {correct.mean():.3f}, abstained "
        f"{result.abstained.mean():.3f}, average certified radius {float((result.radius * correct).mean()):.3f}")


if __name__ == "__main__":
    main()
