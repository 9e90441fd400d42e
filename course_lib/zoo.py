"""The model cache ("zoo"): ``load(name)`` returns a trained model, training and caching it on a miss.

Each entry is a state_dict plus metadata (recipe, profile, metrics, versions) saved with ``torch.save`` under
``$COURSE_CACHE_DIR`` (default ``~/.cache/accuracy-vs-robustness``), in a file named by the recipe, the profile
and a hash of both. Writes are atomic (temporary file, then ``os.replace``); loads use ``weights_only=True``;
a corrupt or foreign file is detected and retrained; a file lock makes concurrent builds train once.
:func:`evaluate` caches a costly evaluation of a cached model (e.g. CERTIFY at n = 10,000) the same way.

Command line::

    python -m course_lib.zoo list
    python -m course_lib.zoo train --all        # or: train standard pgd_at
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from torch import nn

from .data import DataSplit, load_data
from .device import get_device, seed_everything
from . import mixing, smoothing  # noqa: F401  (register the "mixing_sweep" and "certify" evaluation kinds)
from .evaluation import EVALUATIONS, MONITORS
from .models import build_model
from .profiles import Profile, get_profile, resolve_profile, resolve_sizes
from .recipes import RECIPES, Recipe, get_recipe
from .training import LOSSES, train

CACHE_ENV = "COURSE_CACHE_DIR"
FORMAT_VERSION = 3

# Named (accurate, robust) pairs: the base models of the mixing chapters (6-7).
# "mixing": the standard model and a robust model with a real clean-accuracy gap (measured in chapter 2).
PAIRS: dict[str, tuple[str, str]] = {"mixing": ("standard", "tiny_trades_6")}
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
    """An untrained model for ``recipe`` on the profile's data, on the default device, channels_last."""
    x = data.x_train
    model = build_model(recipe.arch or profile.arch, x.shape[1], x.shape[-1], data.num_classes, data.mean, data.std)
    return model.to(get_device(), memory_format=torch.channels_last)


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
    history = train(model, data.x_train, data.y_train, loss, epochs=int(resolve_sizes(recipe.epochs, profile)),
                    batch_size=profile.training.batch_size, optimizer=recipe.optimizer, lr=recipe.lr,
                    schedule=recipe.schedule, monitor=monitor, seed=recipe.seed, desc=f"training {recipe.name}")
    metrics = EVALUATIONS[recipe.eval](model, data, profile, **resolve_sizes(recipe.eval_kwargs, profile))
    meta = {"name": recipe.name, "key": recipe_key(recipe, profile), "profile": profile.name,
            "recipe": json.dumps(dataclasses.asdict(recipe), sort_keys=True), "train_seconds": history.seconds,
            "final_loss": history.loss[-1], "loss_history": history.loss, "monitor": history.monitor,
            "metrics": metrics,
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
    with FileLock(str(path) + ".lock"):
        model = build_for(recipe, profile, load_data(profile))
        meta = None if retrain else _try_load(path, key, model)
        if meta is None:
            model, meta = train_recipe(recipe, profile)
            _atomic_save({"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "meta": meta}, path)
    return model.eval(), meta


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
    with FileLock(str(path) + ".lock"):
        if path.exists():
            try:
                blob = torch.load(path, map_location="cpu", weights_only=True)
                if blob.get("model_key") == model_keys and blob.get("kwargs") == kwargs:
                    return blob["metrics"]
            except Exception as err:  # corrupt or foreign: recompute
                print(f"[zoo] ignoring unusable evaluation {path.name}: {type(err).__name__}: {err}")
        metrics = EVALUATIONS[kind](model, load_data(profile), profile, **kwargs)
        _atomic_save({"model_key": model_keys, "kind": kind, "kwargs": kwargs, "metrics": metrics}, path)
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


def evaluate_pair(pair: str, kind: str, profile: Profile | str | None = None, **kwargs: Any) -> dict:
    """Like :func:`evaluate` for a named pair of :data:`PAIRS`: ``EVALUATIONS[kind]((accurate, robust), data,
    profile, **kwargs)``, cached under both models' keys (retraining either recomputes it)."""
    if pair not in PAIRS:
        raise ValueError(f"unknown pair {pair!r}; known pairs: {sorted(PAIRS)}")
    kwargs = _check_evaluation_kwargs(kind, kwargs)
    profile = resolve_profile(profile)
    names = PAIRS[pair]
    loaded = [load_with_meta(name, profile) for name in names]
    path = evaluation_path(f"{names[1]}+{names[0]}", kind, kwargs, profile)
    return _cached_evaluation(path, [meta["key"] for _, meta in loaded], kind, kwargs,
                              tuple(model for model, _ in loaded), profile)


def load_pair(name: str, profile: Profile | str | None = None) -> tuple[nn.Module, nn.Module]:
    """The (accurate, robust) models of the named pair (:data:`PAIRS`), from the cache (trained on a miss)."""
    if name not in PAIRS:
        raise ValueError(f"unknown pair {name!r}; known pairs: {sorted(PAIRS)}")
    profile = resolve_profile(profile)
    accurate, robust = PAIRS[name]
    return load(accurate, profile), load(robust, profile)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m course_lib.zoo", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the recipes and whether each is cached for the current profile")
    tr = sub.add_parser("train", help="train (or load) recipes")
    tr.add_argument("names", nargs="*")
    tr.add_argument("--all", action="store_true")
    tr.add_argument("--retrain", action="store_true", help="ignore cached checkpoints")
    args = parser.parse_args(argv)
    profile = get_profile()
    if args.command == "list":
        print(f"profile {profile.name}, cache {cache_dir()}")
        for name, recipe in RECIPES.items():
            state = "cached" if checkpoint_path(name, profile).exists() else "-"
            print(f"  {name:16s} {state:7s} {recipe.description}")
        return
    names = list(RECIPES) if args.all else args.names
    if not names:
        parser.error("name recipes to train, or pass --all")
    for name in names:
        get_recipe(name)  # fail early on a typo
    for name in names:
        _, meta = load_with_meta(name, profile, retrain=args.retrain)
        print(f"{name}: {json.dumps(meta['metrics'])} ({meta['train_seconds']:.1f} s to train)")


if __name__ == "__main__":
    main()
