"""Named training recipes for the model cache (:mod:`course_lib.zoo`).

A recipe is data: architecture, loss and its parameters, epochs (a number, or the name of a profile size),
learning rate and seed. Its hash (with the profile) is the cache key, so changing a recipe retrains it.
Chapters share recipes: the standard CNN of chapter 1 is also the accurate base model of the mixing chapters.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Recipe:
    """How to train one cached model. ``loss`` is a key of :data:`course_lib.zoo.LOSSES`."""

    name: str
    description: str
    loss: str = "standard"
    loss_kwargs: dict = field(default_factory=dict)
    arch: str | None = None  # None: the profile's default architecture
    epochs: int | str = "train_epochs"  # an int, or the name of a Profile size
    lr: float = 1e-3
    seed: int = 0
    eval: str = "linf"  # what the zoo measures after training: "linf" (clean + PGD) or "noise" (clean + noisy)


RECIPES: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    """Add a recipe to :data:`RECIPES` (names are unique)."""
    if recipe.name in RECIPES:
        raise ValueError(f"recipe {recipe.name!r} is already registered")
    RECIPES[recipe.name] = recipe
    return recipe


# --- chapter 1: the standard model (also the accurate model of chapters 6-7) -----------------------------
register(Recipe("standard", "standard training (cross-entropy on clean images)"))

# --- chapter 2: adversarial training ----------------------------------------------------------------------
register(Recipe("fgsm_at", "FGSM adversarial training at the profile's l_inf eps (Goodfellow et al. 2015)",
                loss="fgsm_at", loss_kwargs={"eps": "eps_linf"}, epochs="at_epochs"))
register(Recipe("pgd_at", "PGD-7 adversarial training at the profile's l_inf eps, eps ramped over 3 epochs "
                "(Madry et al. 2018)", loss="pgd_at", loss_kwargs={"eps": "eps_linf"}, epochs="at_epochs"))

# Capacity: the low-capacity tiny_cnn (conv4-conv8-fc32), standard and PGD-AT.
register(Recipe("tiny_standard", "standard training of the low-capacity tiny_cnn", arch="tiny_cnn"))
register(Recipe("tiny_pgd_at", "PGD adversarial training of the low-capacity tiny_cnn at the profile's l_inf eps "
                "(Madry et al. 2018)", loss="pgd_at", loss_kwargs={"eps": "eps_linf", "steps": "train_attack_steps"},
                arch="tiny_cnn", epochs="at_epochs"))

# TRADES at several beta (Zhang et al. 2019) on the tiny_cnn: the accuracy-robustness trade-off curve.
# The sweep uses the standard-training epoch budget (3/4 of PGD-AT's in the quick profile) so that four models fit
# the chapter's CPU budget; on the small_cnn the sweep would cost about three times as much.
TRADES_BETAS = (0.1, 0.5, 1.5, 6.0)
for _beta in TRADES_BETAS:
    register(Recipe(f"tiny_trades_{_beta:g}", f"TRADES on the tiny_cnn, beta = {_beta:g} (Zhang et al. 2019)",
                    loss="trades",
                    loss_kwargs={"eps": "eps_linf", "beta": _beta, "steps": "train_attack_steps"},
                    arch="tiny_cnn", epochs="train_epochs"))

# --- chapter 3: Gaussian-noise training for randomized smoothing -------------------------------------------
for _sigma in (0.12, 0.25, 0.50, 1.00):
    register(Recipe(f"gaussian_{_sigma:.2f}", f"Gaussian data augmentation, sigma = {_sigma} (Cohen et al. 2019)",
                    loss="gaussian", loss_kwargs={"sigma": _sigma}, epochs="noise_epochs", eval="noise"))

# --- named (accurate, robust) pairs: the base models of the mixing chapters (6-7) --------------------------
# "mixing": the standard model and a robust model with a real clean-accuracy gap (measured in chapter 2).
PAIRS: dict[str, tuple[str, str]] = {"mixing": ("standard", "tiny_trades_6")}


def load_pair(name: str, profile=None):
    """The (accurate, robust) models of the named pair, from the model cache (trained on a miss).

    ``profile`` is passed to :func:`course_lib.zoo.load` (a Profile, a profile name, or None for the default).
    """
    if name not in PAIRS:
        raise ValueError(f"unknown pair {name!r}; known pairs: {sorted(PAIRS)}")
    from . import zoo  # imported here: zoo imports this module

    return tuple(zoo.load(recipe, profile) for recipe in PAIRS[name])
