"""Profiles: which data set, which model, and every size that scales with the machine.

Chosen by the environment variable ``COURSE_PROFILE`` (default ``quick``). The sizes a chapter scales with the
profile live here, grouped by idea so that a new chapter adds a group rather than growing one flat list:

- ``training``  -- epochs of each kind of training, the PGD steps used inside training, the batch size;
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
    epochs: int  # standard training
    at_epochs: int  # adversarial training (FGSM-AT, PGD-AT)
    noise_epochs: int  # Gaussian-noise training for smoothing
    attack_steps: int  # PGD steps used inside training
    batch_size: int = 128


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
    "cifar10": Profile(
        "cifar10", "cifar10", "resnet",
        TrainingSizes(epochs=30, at_epochs=30, noise_epochs=30, attack_steps=10),
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
    """A recipe's reference to a profile size, e.g. ``size("training.at_epochs")``; see :func:`size`."""

    path: str

    def __post_init__(self) -> None:  # a typo fails here, when the recipe is written
        self.resolve(PROFILES["quick"])

    def resolve(self, profile: Profile) -> Any:
        group, _, field = self.path.partition(".")
        sizes = getattr(profile, group, None) if field else None
        if not dataclasses.is_dataclass(sizes) or field not in {f.name for f in dataclasses.fields(sizes)}:
            raise ValueError(f"{self.path!r} is not a profile size; sizes are written 'group.size', e.g. "
                             f"'attack.eps_linf' or 'training.at_epochs'")
        return getattr(sizes, field)


def size(path: str) -> ProfileSize:
    """Mark a recipe value as the profile's size at ``path`` ("group.size"), resolved when the recipe is trained."""
    return ProfileSize(path)


def resolve_sizes(value: Any, profile: Profile) -> Any:
    """``value`` with every :class:`ProfileSize` marker (also inside dicts) replaced by the profile's number."""
    if isinstance(value, ProfileSize):
        return value.resolve(profile)
    if isinstance(value, dict):
        return {k: resolve_sizes(v, profile) for k, v in value.items()}
    return value
