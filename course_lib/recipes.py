"""Named training recipes for the model cache (:mod:`course_lib.zoo`).

A recipe is data: architecture, loss and its parameters, epochs, optimizer, learning rate and schedule, weight
decay, augmentation, batch size, seed, which checkpoint to keep, and the evaluation the cache records after
training. A value that scales with the profile is written ``size("group.name")`` (e.g. ``size("attack.eps_linf")``,
see :mod:`course_lib.profiles`) and is checked when the recipe is written; by default a recipe trains as its
profile says (``size("training.optimizer")``, ...), so the quick profile's recipes train with Adam on a CPU and the
cifar10 profile's as the papers train them on a GPU (:data:`FULL_SIZE_RECIPES`). The recipe's hash (with the
profile) is the cache key, so changing a recipe retrains it.
Chapters share recipes: the standard CNN of chapter 1 is also the accurate base model of the mixing chapters.

This module only describes; it imports no training code. ``loss`` names an entry of
:data:`course_lib.training.LOSSES`, ``eval`` one of :data:`course_lib.evaluation.EVALUATIONS` and ``monitor`` (if given) one of
:data:`course_lib.evaluation.MONITORS`; the cache checks them when it trains.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .profiles import Profile, ProfileSize, resolve_sizes, size


@dataclass(frozen=True)
class Recipe:
    """How to train one cached model and what to measure afterwards."""

    name: str
    description: str
    loss: str = "standard"
    loss_kwargs: dict[str, Any] = field(default_factory=dict)
    arch: str | None = None  # None: the profile's default architecture
    epochs: int | ProfileSize = size("training.epochs")
    optimizer: str | ProfileSize = size("training.optimizer")  # a key of course_lib.training.OPTIMIZERS
    lr: float | ProfileSize = size("training.lr")
    schedule: str | ProfileSize = size("training.schedule")  # a key of course_lib.training.SCHEDULES
    weight_decay: float | ProfileSize = size("training.weight_decay")
    augment: str | ProfileSize = size("training.augment")  # a key of course_lib.training.augment.AUGMENTS
    batch_size: int | ProfileSize = size("training.batch_size")
    seed: int = 0
    eval: str = "robust"  # a key of course_lib.evaluation.EVALUATIONS
    eval_kwargs: dict[str, Any] = field(default_factory=dict)
    monitor: str | None = None  # a key of course_lib.evaluation.MONITORS: a per-epoch curve while training
    keep_best: str | None | ProfileSize = None  # a key of the monitor's records: keep the epoch where it peaks

    def resolved(self, profile: Profile) -> Recipe:
        """The recipe as trained for ``profile``: every ``size(...)`` marker replaced by the profile's value."""
        return dataclasses.replace(self, **{f.name: resolve_sizes(getattr(self, f.name), profile)
                                            for f in dataclasses.fields(self)})


RECIPES: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    """Add a recipe to :data:`RECIPES` (names are unique)."""
    if not isinstance(recipe, Recipe):
        raise TypeError(f"expected a Recipe, got {type(recipe).__name__}")
    if recipe.name in RECIPES:
        raise ValueError(f"recipe {recipe.name!r} is already registered")
    RECIPES[recipe.name] = recipe
    return recipe


def get_recipe(name: str) -> Recipe:
    """The registered recipe called ``name`` (ValueError with the known names on a typo)."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known recipes: {sorted(RECIPES)}")
    return RECIPES[name]


EPS = size("attack.eps_linf")
AT_EPOCHS = size("training.at_epochs")
TRAIN_STEPS = size("training.attack_steps")
# The inner PGD of adversarial training: the profile's steps and step size (quick: 7 steps of eps / 6, eps ramped up
# over 3 epochs; cifar10: Rice et al.'s 10 steps of 2/255 at the full 8/255 from the start).
PGD_TRAIN = {"steps": TRAIN_STEPS, "step_ratio": size("training.attack_step_ratio"),
             "ramp_epochs": size("training.eps_ramp_epochs")}
RAMP = {"ramp_epochs": size("training.eps_ramp_epochs")}
# Robust overfitting (Rice et al. 2020): where the profile says so (cifar10), keep the epoch with the best PGD accuracy
# of the per-epoch monitor (held-out images, disjoint from the evaluation images), not the last one.
KEEP_BEST = size("training.keep_best")
NOISE = {"batch_size": size("training.noise_batch_size"), "weight_decay": size("training.noise_weight_decay"),
         "schedule": size("training.noise_schedule")}

# --- chapter 1: the standard model (also the accurate model of chapters 6-7) -----------------------------
register(Recipe("standard", "standard training (cross-entropy on clean images)"))

# --- chapter 2: adversarial training ----------------------------------------------------------------------
# FGSM-AT and PGD-AT record a per-epoch PGD accuracy on held-out images: catastrophic overfitting shows in it.
register(Recipe("fgsm_at", "FGSM adversarial training at the profile's l_inf eps, adversarial loss only",
                loss="fgsm_at", loss_kwargs={"eps": EPS, **RAMP}, epochs=AT_EPOCHS, monitor="pgd",
                keep_best=KEEP_BEST))
register(Recipe("fgsm_at_mixed", "FGSM adversarial training as Goodfellow et al. (2015) trained it: "
                "0.5 clean + 0.5 adversarial loss", loss="fgsm_at",
                loss_kwargs={"eps": EPS, "clean_weight": 0.5, **RAMP}, epochs=AT_EPOCHS, monitor="pgd",
                keep_best=KEEP_BEST))
register(Recipe("pgd_at", "PGD adversarial training at the profile's l_inf eps (Madry et al. 2018); quick: eps "
                "ramped over 3 epochs; cifar10: as Rice et al. (2020), best epoch by held-out PGD accuracy",
                loss="pgd_at", loss_kwargs={"eps": EPS, **PGD_TRAIN}, epochs=AT_EPOCHS, monitor="pgd",
                keep_best=KEEP_BEST))

# Capacity: the low-capacity tiny_cnn (conv4-conv8-fc32), standard and PGD-AT.
register(Recipe("tiny_standard", "standard training of the low-capacity tiny_cnn", arch="tiny_cnn"))
register(Recipe("tiny_pgd_at", "PGD adversarial training of the low-capacity tiny_cnn at the profile's l_inf eps "
                "(Madry et al. 2018)", loss="pgd_at", loss_kwargs={"eps": EPS, **PGD_TRAIN},
                arch="tiny_cnn", epochs=AT_EPOCHS))

# TRADES at several beta (Zhang et al. 2019) on the tiny_cnn: the accuracy-robustness trade-off curve.
# The sweep uses the standard-training epoch budget (3/4 of PGD-AT's in the quick profile) so that four models fit
# the chapter's CPU budget; on the small_cnn the sweep would cost about three times as much.
TRADES_BETAS = (0.1, 0.5, 1.5, 6.0)
for _beta in TRADES_BETAS:
    register(Recipe(f"tiny_trades_{_beta:g}", f"TRADES on the tiny_cnn, beta = {_beta:g} (Zhang et al. 2019)",
                    loss="trades", loss_kwargs={"eps": EPS, "beta": _beta, **PGD_TRAIN},
                    arch="tiny_cnn", epochs=size("training.epochs")))
# TRADES at the published beta = 6 on the profile's own architecture (the cifar10 profile's PreAct ResNet-18), trained
# like PGD-AT (Rice et al. 2020 retrain TRADES with the same 200-epoch schedule and early stopping).
register(Recipe("trades_6", "TRADES, beta = 6 (Zhang et al. 2019), on the profile's architecture", loss="trades",
                loss_kwargs={"eps": EPS, "beta": 6.0, **PGD_TRAIN}, epochs=AT_EPOCHS, monitor="pgd",
                keep_best=KEEP_BEST))

# --- chapter 3: Gaussian-noise training for randomized smoothing -------------------------------------------
SIGMAS = (0.12, 0.25, 0.50, 1.00)
for _sigma in SIGMAS:
    register(Recipe(f"gaussian_{_sigma:.2f}", f"Gaussian data augmentation, sigma = {_sigma} (Cohen et al. 2019)",
                    loss="gaussian", loss_kwargs={"sigma": _sigma}, epochs=size("training.noise_epochs"),
                    eval="noise", eval_kwargs={"sigma": _sigma}, **NOISE))

# --- chapter 4: SmoothMix (Jeong et al. 2021), against chapter 3's Gaussian models at the same sigma ---------------
# Same architecture, optimizer and epoch budget as the Gaussian recipes, so that the comparison is fair. From the
# reference's MNIST settings: step a = 1.0, eta = 5, T = 2 / 4 / 8 at sigma 0.25 / 0.5 / 1.0; m = 2 draws (its
# CIFAR-10 value; MNIST uses 4) and a warm-up of 3 epochs (the reference warms up over 10 of 90 epochs) to fit the
# quick profile's 20 epochs. sigma = 1.0 is registered for the larger profiles; the quick chapter trains 0.25 and 0.5.
# The cifar10 profile uses the reference's CIFAR-10 settings instead: T = 4 steps of size 2 sigma, a 10-epoch warm-up.
SMOOTHMIX_SIGMAS = (0.25, 0.50, 1.00)  # the order of the profile's smoothmix_steps and smoothmix_step_size
for _i, _sigma in enumerate(SMOOTHMIX_SIGMAS):
    register(Recipe(f"smoothmix_{_sigma:.2f}", f"SmoothMix, sigma = {_sigma}, m = 2, eta = 5, the profile's search "
                    "steps and step size (Jeong et al. 2021)", loss="smoothmix",
                    loss_kwargs={"sigma": _sigma, "m": 2, "steps": size("training.smoothmix_steps", _i),
                                 "step_size": size("training.smoothmix_step_size", _i), "eta": 5.0,
                                 "warmup_epochs": size("training.noise_warmup_epochs")},
                    epochs=size("training.noise_epochs"), eval="noise", eval_kwargs={"sigma": _sigma}, **NOISE))

# --- chapter 5: once-for-all adversarial training (Wang et al. 2020) on the tiny CNN --------------------------------
# The OAT model: the tiny_cnn with dual batch norm and FiLM, lambda per sample from the reference's choices, PGD as in
# tiny_pgd_at, the same epochs; evaluated at each lambda with chapter 2's worst case. The dedicated models at a fixed
# lambda are PGD-AT of the plain tiny_cnn with clean weight 1 - lambda; lambda = 1 is tiny_pgd_at itself and
# lambda = 0 is tiny_standard (cross-entropy only, the standard epoch budget), so those two are not trained again.
OAT_LAMBDAS = (0.0, 0.1, 0.2, 0.3, 0.4, 1.0)
register(Recipe("oat_tiny", "once-for-all adversarial training of the lambda-conditioned tiny_cnn (dual batch norm, "
                "FiLM) at the profile's l_inf eps (Wang et al. 2020)", loss="oat",
                loss_kwargs={"eps": EPS, "choices": OAT_LAMBDAS, **PGD_TRAIN}, arch="oat_tiny_cnn",
                epochs=AT_EPOCHS, eval="robust_per_lambda"))
# OAT at full size (the cifar10 profile's): the PreAct ResNet-18 with dual batch norm and FiLM after every batch norm
# (Wang et al. use a ResNet-34), the same lambdas, the profile's SGD and augmentation, and OAT's cosine schedule.
register(Recipe("oat_preact_resnet18", "once-for-all adversarial training of the lambda-conditioned PreAct ResNet-18 "
                "(dual batch norm, FiLM) at the profile's l_inf eps (Wang et al. 2020)", loss="oat",
                loss_kwargs={"eps": EPS, "choices": OAT_LAMBDAS, **PGD_TRAIN}, arch="oat_preact_resnet18",
                epochs=AT_EPOCHS, schedule="cosine", eval="robust_per_lambda"))
DEDICATED = {0.0: "tiny_standard", 1.0: "tiny_pgd_at"}
for _lam in OAT_LAMBDAS[1:-1]:
    DEDICATED[_lam] = register(Recipe(
        f"tiny_pgd_at_lambda_{_lam:g}", f"PGD-AT of the tiny_cnn with loss (1 - lambda) CE(x) + lambda CE(x_adv), "
        f"lambda = {_lam:g}: the dedicated model of OAT's lambda = {_lam:g}", loss="pgd_at",
        loss_kwargs={"eps": EPS, **PGD_TRAIN, "clean_weight": round(1 - _lam, 6)}, arch="tiny_cnn",
        epochs=AT_EPOCHS)).name
DEDICATED = dict(sorted(DEDICATED.items()))

# --- the full-size recipes: what the cifar10 profile trains as the papers do (README, "Full-size recipes") --------
FULL_SIZE_RECIPES = ("standard", "pgd_at", "trades_6", "gaussian_0.25", "gaussian_0.50", "smoothmix_0.25",
                     "smoothmix_0.50", "oat_preact_resnet18")
