"""Profiles: which data set, which model, and every size that scales with the machine.

Chosen by the environment variable ``COURSE_PROFILE`` (default ``quick``). All sizes that a chapter
scales with the profile (epochs, attack steps, certification sample sizes, images evaluated) live here,
so that a GPU user changes one variable and every chapter grows with it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

PROFILE_ENV = "COURSE_PROFILE"


@dataclass(frozen=True)
class Profile:
    """Sizes of one profile. ``dataset`` is a key of :data:`course_lib.data.DATASETS`."""

    name: str
    dataset: str
    arch: str  # the default architecture (a key of course_lib.models.ARCHS)
    eps_linf: float  # the chapter's l_inf radius (pixel scale [0, 1])
    eps_l2: float  # the chapter's l_2 radius
    train_epochs: int  # standard training
    at_epochs: int  # adversarial training (PGD-AT, TRADES)
    noise_epochs: int  # Gaussian-noise training for smoothing
    train_attack_steps: int  # PGD steps used inside training
    eval_attack_steps: int  # PGD steps used for evaluation (more than training)
    eval_restarts: int  # random restarts for evaluation
    eval_images: int  # test images used for attack evaluation in the chapters
    certify_n0: int
    certify_n: int
    certify_images: int
    batch_size: int = 128


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick", dataset="mnist_subset", arch="small_cnn", eps_linf=0.3, eps_l2=2.0,
        train_epochs=15, at_epochs=20, noise_epochs=20, train_attack_steps=7, eval_attack_steps=20,
        eval_restarts=2, eval_images=500, certify_n0=100, certify_n=1000, certify_images=100,
    ),
    "mnist": Profile(
        name="mnist", dataset="mnist", arch="cnn", eps_linf=0.3, eps_l2=2.0,
        train_epochs=10, at_epochs=20, noise_epochs=20, train_attack_steps=10, eval_attack_steps=40,
        eval_restarts=5, eval_images=2000, certify_n0=100, certify_n=10_000, certify_images=500,
    ),
    "fashion": Profile(
        name="fashion", dataset="fashion", arch="cnn", eps_linf=0.1, eps_l2=1.0,
        train_epochs=15, at_epochs=20, noise_epochs=20, train_attack_steps=10, eval_attack_steps=40,
        eval_restarts=5, eval_images=2000, certify_n0=100, certify_n=10_000, certify_images=500,
    ),
    "cifar10": Profile(
        name="cifar10", dataset="cifar10", arch="resnet", eps_linf=8 / 255, eps_l2=0.5,
        train_epochs=30, at_epochs=30, noise_epochs=30, train_attack_steps=10, eval_attack_steps=50,
        eval_restarts=5, eval_images=1000, certify_n0=100, certify_n=100_000, certify_images=500,
    ),
}


def get_profile(name: str | None = None) -> Profile:
    """Return the named profile, or the one named by ``$COURSE_PROFILE`` (default ``quick``)."""
    name = name if name is not None else os.environ.get(PROFILE_ENV, "quick").strip() or "quick"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r} (from {PROFILE_ENV}); choose one of {sorted(PROFILES)}")
    return PROFILES[name]


def with_sizes(profile: Profile, **sizes: int | float) -> Profile:
    """A copy of ``profile`` with some sizes changed (for homework and tests)."""
    return replace(profile, **sizes)
