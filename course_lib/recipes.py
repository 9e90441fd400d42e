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

# --- chapter 3: Gaussian-noise training for randomized smoothing -------------------------------------------
for _sigma in (0.12, 0.25, 0.50, 1.00):
    register(Recipe(f"gaussian_{_sigma:.2f}", f"Gaussian data augmentation, sigma = {_sigma} (Cohen et al. 2019)",
                    loss="gaussian", loss_kwargs={"sigma": _sigma}, epochs="noise_epochs", eval="noise"))
