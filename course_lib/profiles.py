"""Profiles: which data set, which model, and every size that scales with the machine.

Chosen by the environment variable ``COURSE_PROFILE`` (default ``quick``). The sizes a chapter scales with the
profile live here, grouped by idea so that a new chapter adds a group rather than growing one flat list:

- ``training``  -- epochs of each kind of training, the PGD steps used inside training, and how every recipe trains:
  optimizer, learning rate and schedule, weight decay, augmentation, batch size, which checkpoint is kept;
- ``attack``    -- the threat model (l_inf and l_2 radii) and the evaluation attacks (steps, restarts, images);
- ``smoothing`` -- randomized-smoothing certification (n0, n, images certified).

A profile is resolved once, where a public function is called (:func:`resolve_profile`); inside the library
everything takes a :class:`Profile`. Recipes refer to a size with an explicit marker, ``size("attack.eps_linf")``,
which is checked when the recipe is written, so a typo fails at import time rather than silently training with
a string where a number belongs.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, replace
from typing import Any

PROFILE_ENV = "COURSE_PROFILE"


@dataclass(frozen=True)
class TrainingSizes:
    """Epochs per kind of training, and how every recipe trains (optimizer, schedule, augmentation, batches).

    The defaults are the quick profile's CPU settings (Adam at 1e-3, constant rate, no augmentation, no weight decay,
    final weights); the cifar10 profile overrides them with the published GPU recipes (see ``PROFILES``). SGD's
    momentum is 0.9 (:data:`course_lib.training.OPTIMIZERS`), as in every paper the recipes follow.
    """

    epochs: int  # standard training
    at_epochs: int  # adversarial training (FGSM-AT, PGD-AT, TRADES, OAT)
    noise_epochs: int  # Gaussian-noise training and SmoothMix
    attack_steps: int  # PGD steps used inside training
    batch_size: int = 128
    optimizer: str = "adam"  # a key of course_lib.training.OPTIMIZERS
    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 0.0
    schedule: str = "constant"  # a key of course_lib.training.SCHEDULES
    augment: str = "none"  # a key of course_lib.training.augment.AUGMENTS
    attack_step_ratio: float = 1 / 6  # PGD step inside training, as a fraction of eps
    eps_ramp_epochs: float = 3.0  # eps grows linearly from 0 over these epochs (0: the full eps from the start)
    keep_best: str | None = None  # a monitor key (e.g. "pgd"): keep the epoch with the best value, not the last
    noise_batch_size: int = 128  # batch size of the Gaussian and SmoothMix recipes
    noise_weight_decay: float = 0.0  # their weight decay
    noise_schedule: str = "constant"  # the schedule of Gaussian-noise training and SmoothMix
    noise_warmup_epochs: int = 3  # SmoothMix's warm-up of its adversarial term
    smoothmix_steps: tuple[int, ...] = (2, 4, 8)  # SmoothMix search steps T at sigma = 0.25, 0.5, 1.0
    smoothmix_step_size: tuple[float, ...] = (1.0, 1.0, 1.0)  # its step size at sigma = 0.25, 0.5, 1.0


@dataclass(frozen=True)
class AttackSizes:
    eps_linf: float  # the chapter's l_inf radius (pixel scale [0, 1])
    eps_l2: float  # the chapter's l_2 radius
    steps: int  # PGD steps for evaluation (more than training's)
    restarts: int  # PGD random restarts for evaluation
    images: int  # test images attacked in the evaluations
    apgd_steps: int = 100  # APGD-CE / APGD-T iterations (Croce and Hein 2020 use 100)
    monitor_images: int = 200  # held-out test images for a per-epoch robust-accuracy curve during training


@dataclass(frozen=True)
class SmoothingSizes:
    n0: int  # selection samples of CERTIFY
    n: int  # estimation samples of CERTIFY (and PREDICT)
    images: int  # test images certified


@dataclass(frozen=True)
class Profile:
    """A named profile: ``dataset`` is a key of :data:`course_lib.data.DATASETS`, ``arch`` of
    :data:`course_lib.models.ARCHS`; the sizes come in one group per idea."""

    name: str
    dataset: str
    arch: str  # the default architecture
    training: TrainingSizes
    attack: AttackSizes
    smoothing: SmoothingSizes


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        "quick", "mnist_subset", "small_cnn",
        TrainingSizes(epochs=15, at_epochs=20, noise_epochs=20, attack_steps=7),
        AttackSizes(eps_linf=0.3, eps_l2=2.0, steps=20, restarts=2, images=500),
        SmoothingSizes(n0=100, n=1000, images=100)),
    "mnist": Profile(
        "mnist", "mnist", "cnn",
        TrainingSizes(epochs=10, at_epochs=20, noise_epochs=20, attack_steps=10),
        AttackSizes(eps_linf=0.3, eps_l2=2.0, steps=40, restarts=5, images=2000, monitor_images=1000),
        SmoothingSizes(n0=100, n=10_000, images=500)),
    "fashion": Profile(
        "fashion", "fashion", "cnn",
        TrainingSizes(epochs=15, at_epochs=20, noise_epochs=20, attack_steps=10),
        AttackSizes(eps_linf=0.1, eps_l2=1.0, steps=40, restarts=5, images=2000, monitor_images=1000),
        SmoothingSizes(n0=100, n=10_000, images=500)),
    # The papers' CIFAR-10 recipes on a PreAct ResNet-18 (He et al. 2016b), on a GPU. Rice et al. (2020): SGD
    # (momentum 0.9) at 0.1, weight decay 5e-4, batches of 128, 200 epochs with the rate divided by 10 at epochs 100
    # and 150, random crop (padding 4) and flip, PGD-10 with step 2/255 at 8/255 from the first epoch, and the
    # checkpoint of the epoch with the best PGD accuracy on held-out images. Gaussian and SmoothMix as Jeong et al.
    # (2021) train them: 150 epochs, batches of 256, weight decay 1e-4, T = 4 search steps of size 2 sigma, a warm-up
    # of 10 epochs, the rate divided by 10 every 50 epochs ("thirds").
    "cifar10": Profile(
        "cifar10", "cifar10", "preact_resnet18",
        TrainingSizes(epochs=200, at_epochs=200, noise_epochs=150, attack_steps=10, batch_size=128,
                      optimizer="sgd", lr=0.1, weight_decay=5e-4, schedule="multistep", augment="crop_flip",
                      attack_step_ratio=0.25, eps_ramp_epochs=0.0, keep_best="pgd", noise_batch_size=256,
                      noise_weight_decay=1e-4, noise_schedule="thirds", noise_warmup_epochs=10,
                      smoothmix_steps=(4, 4, 4), smoothmix_step_size=(0.5, 1.0, 2.0)),
        AttackSizes(eps_linf=8 / 255, eps_l2=0.5, steps=50, restarts=5, images=1000, monitor_images=1000),
        SmoothingSizes(n0=100, n=100_000, images=500)),
}


def get_profile(name: str | None = None) -> Profile:
    """The named profile, or the one named by ``$COURSE_PROFILE`` (default ``quick``)."""
    if name is not None and not isinstance(name, str):
        raise TypeError(f"a profile name must be a string, got {type(name).__name__}")
    name = name if name is not None else os.environ.get(PROFILE_ENV, "quick").strip() or "quick"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r} (from {PROFILE_ENV}); choose one of {sorted(PROFILES)}")
    return PROFILES[name]


def resolve_profile(profile: Profile | str | None = None) -> Profile:
    """What public functions accept: a :class:`Profile`, a profile name, or None for ``$COURSE_PROFILE``."""
    return profile if isinstance(profile, Profile) else get_profile(profile)


def with_sizes(profile: Profile, name: str | None = None, arch: str | None = None,
               **groups: dict[str, Any]) -> Profile:
    """A copy of ``profile`` with some sizes changed (for homework and tests), e.g.
    ``with_sizes(p, training={"epochs": 1}, attack={"images": 50})``. Unknown groups or sizes raise ValueError."""
    group_names = {f.name for f in dataclasses.fields(Profile)} - {"name", "dataset", "arch"}
    changes: dict[str, Any] = {}
    for group, sizes in groups.items():
        if group not in group_names:
            raise ValueError(f"unknown size group {group!r}; the groups are {sorted(group_names)}")
        current = getattr(profile, group)
        unknown = set(sizes) - {f.name for f in dataclasses.fields(current)}
        if unknown:
            raise ValueError(f"unknown sizes {sorted(unknown)} in group {group!r}")
        changes[group] = replace(current, **sizes)
    if name is not None:
        changes["name"] = name
    if arch is not None:
        changes["arch"] = arch
    return replace(profile, **changes)


@dataclass(frozen=True)
class ProfileSize:
    """A recipe's reference to a profile size, e.g. ``size("training.at_epochs")``, or to one entry of a tuple-valued
    size, ``size("training.smoothmix_steps", 1)``; see :func:`size`."""

    path: str
    index: int | None = None

    def __post_init__(self) -> None:  # a typo fails here, when the recipe is written
        self.resolve(PROFILES["quick"])

    def resolve(self, profile: Profile) -> Any:
        group, _, field = self.path.partition(".")
        sizes = getattr(profile, group, None) if field else None
        if not dataclasses.is_dataclass(sizes) or field not in {f.name for f in dataclasses.fields(sizes)}:
            raise ValueError(f"{self.path!r} is not a profile size; sizes are written 'group.size', e.g. "
                             f"'attack.eps_linf' or 'training.at_epochs'")
        value = getattr(sizes, field)
        if self.index is None:
            return value
        if not isinstance(value, tuple) or not -len(value) <= self.index < len(value):
            raise ValueError(f"{self.path!r} has no entry {self.index} (its value is {value!r})")
        return value[self.index]


def size(path: str, index: int | None = None) -> ProfileSize:
    """Mark a recipe value as the profile's size at ``path`` ("group.size"; with ``index``, that entry of a tuple),
    resolved when the recipe is trained."""
    return ProfileSize(path, index)


def resolve_sizes(value: Any, profile: Profile) -> Any:
    """``value`` with every :class:`ProfileSize` marker (also inside dicts) replaced by the profile's number."""
    if isinstance(value, ProfileSize):
        return value.resolve(profile)
    if isinstance(value, dict):
        return {k: resolve_sizes(v, profile) for k, v in value.items()}
    return value
