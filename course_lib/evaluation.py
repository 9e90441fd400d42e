"""Clean accuracy, robust accuracy and accuracy-versus-eps curves, batched, with progress bars.

An *attack* here is any callable ``attack(model, x, y) -> x_adv`` (e.g. ``functools.partial(pgd, eps=0.3)``).
Robust accuracy is the fraction of test points still classified correctly after the attack; the honest
number for a defence is the per-example minimum over several attacks (:func:`worst_case_correct`).

*Evaluation kinds* are what the model cache measures after training a recipe: ``EVALUATIONS[recipe.eval]``
is called as ``evaluate(model, data, profile, **recipe.eval_kwargs)`` and returns a dict of metrics that is
stored with the checkpoint. A new kind registers itself with ``@register_evaluation(name)``; the cache never
switches on the kind. Errors: TypeError for wrong types, ValueError for wrong values (:mod:`course_lib.checks`).
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .attacks import apgd_ce, apgd_t, fgsm, pgd, transfer
from .attacks.base import check_steps
from .checks import IMAGE_DOMAIN, Domain, check_choice, check_count, check_eps, check_inputs, check_labels
from .data import DataSplit
from .device import eval_mode, model_device
from .models.conditioned import FixedLambda
from .profiles import Profile

Attack = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
Evaluation = Callable[..., dict]

EVALUATIONS: dict[str, Evaluation] = {}
"""Evaluation kinds by the name recipes use (``Recipe.eval``); filled by :func:`register_evaluation`."""


def register_evaluation(name: str) -> Callable[[Evaluation], Evaluation]:
    """Decorator: register ``evaluate(model, data, profile, **kwargs) -> metrics`` under ``name``."""
    def add(evaluate: Evaluation) -> Evaluation:
        if name in EVALUATIONS:
            raise ValueError(f"an evaluation named {name!r} is already registered")
        EVALUATIONS[name] = evaluate
        return evaluate
    return add


def _batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, desc: str | None, domain: Domain):
    check_inputs(x, domain)
    check_labels(y, x.shape[0])
    check_count(batch_size, "batch_size")
    starts = range(0, len(x), batch_size)
    return tqdm(starts, desc=desc, leave=False, disable=desc is None or len(starts) < 2)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 500, domain: Domain = IMAGE_DOMAIN) -> torch.Tensor:
    """Predicted labels (on the CPU) of ``model`` in eval mode for inputs ``x`` (images in [0, 1] by default;
    ``domain=None`` for noisy images, which may leave [0, 1], and for inputs that are not images)."""
    check_inputs(x, domain)
    check_count(batch_size, "batch_size")
    device = model_device(model)
    with eval_mode(model):
        return torch.cat([model(x[i:i + batch_size].to(device)).argmax(1).cpu()
                          for i in range(0, len(x), batch_size)])


def correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Attack | None = None,
            batch_size: int = 250, desc: str | None = "evaluating", domain: Domain = IMAGE_DOMAIN) -> torch.Tensor:
    """Boolean per example: is the (attacked, if ``attack`` is given) input classified as ``y``?"""
    device = model_device(model)
    out = []
    for i in _batches(x, y, batch_size, desc, domain):
        xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
        if attack is not None:
            xb = attack(model, xb, yb)
        out.append((predict(model, xb, batch_size, domain) == yb.cpu()))
    return torch.cat(out)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500,
             domain: Domain = IMAGE_DOMAIN) -> float:
    """Clean accuracy in [0, 1] (the one accuracy helper: images, noisy images with ``domain=None``, 2-D points)."""
    return correct(model, x, y, None, batch_size, desc=None, domain=domain).float().mean().item()


def standard_error(p, n: int):
    """Binomial standard error ``sqrt(p (1 - p) / n)`` of an accuracy ``p`` (a float or an array of them) measured
    on ``n`` independent images or trials: the unit of the noise margins of every chapter's checks. Two independent
    accuracies differ with standard error ``hypot(standard_error(p, n), standard_error(q, m))``."""
    n = check_count(n, "n")
    values = np.asarray(p, dtype=float)
    if np.any((values < 0) | (values > 1)):
        raise ValueError(f"an accuracy must lie in [0, 1], got {p}")
    return np.sqrt(values * (1 - values) / n) if values.ndim else float(np.sqrt(values * (1 - values) / n))


def paired_standard_error(differences) -> float:
    """Standard error ``std(d) / sqrt(n)`` (sample std, ddof = 1) of the mean of per-image differences ``d_i``
    between two models measured on the SAME n images (e.g. certified radius, or correct-at-r as 0/1). Pairing
    removes the between-image variance that two independent standard errors would count twice."""
    d = np.asarray(differences, dtype=float).ravel()
    if d.size < 2 or not np.all(np.isfinite(d)):
        raise ValueError(f"need at least two finite differences, got {d.size} values")
    return float(d.std(ddof=1) / np.sqrt(d.size))


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Attack,
                    batch_size: int = 250, desc: str | None = "attacking") -> float:
    """Accuracy under ``attack`` in [0, 1]."""
    return correct(model, x, y, attack, batch_size, desc).float().mean().item()


def worst_case_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attacks: dict[str, Attack],
                       batch_size: int = 250) -> dict[str, torch.Tensor]:
    """Per-example correctness under each attack, plus ``"worst"``: correct under *every* attack (and clean)."""
    results = {"clean": correct(model, x, y, None, batch_size, desc=None)}
    for name, attack in attacks.items():
        results[name] = correct(model, x, y, attack, batch_size, desc=name)
    results["worst"] = torch.stack(list(results.values())).all(0)
    return results


def accuracy_vs_eps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps_values: Sequence[float],
                    attack: str = "pgd", norm: str = "linf", batch_size: int = 250, **attack_kwargs) -> list[float]:
    """Accuracy under ``attack`` ("fgsm" or "pgd") at each eps; eps = 0 gives the clean accuracy."""
    check_choice(attack, ("fgsm", "pgd"), "attack")
    fn = fgsm if attack == "fgsm" else pgd
    return [robust_accuracy(model, x, y, partial(fn, eps=float(eps), norm=norm, **attack_kwargs),
                            batch_size, desc=f"{attack} eps={eps:g}")
            for eps in tqdm(eps_values, desc=f"{attack} sweep", leave=False)]


def robust_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "linf",
                   steps: int = 20, restarts: int = 2, alpha: float | None = None,
                   extra_attacks: dict[str, Attack] | None = None, autoattack: bool = False,
                   apgd_steps: int = 100, seed: int = 0, batch_size: int = 250,
                   known: dict[str, torch.Tensor] | None = None,
                   attack_model: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """Per-example correctness (boolean tensors) under each attack of :func:`robust_evaluation`, and ``worst``.

    ``known`` holds per-example correctness under attacks run elsewhere (e.g. transfer images made once for many
    models); it enters ``worst`` before the AutoAttack cascade, so APGD runs only where those attacks failed too.
    ``attack_model``, if given, is a differentiable surrogate that FGSM, PGD and APGD take their gradients from,
    while correctness is judged on ``model`` (for a model without useful gradients, e.g. one with a hard argmax
    inside; Athalye et al. 2018's BPDA idea). ``extra_attacks`` are run as given."""
    check_eps(eps)  # checked before any work is done
    check_steps(steps, restarts)
    check_steps(apgd_steps)
    extra_attacks, known = dict(extra_attacks or {}), dict(known or {})
    clash = {"clean", "fgsm", "pgd", "apgd-ce", "apgd-t", "worst"} & (set(extra_attacks) | set(known))
    if clash:
        raise ValueError(f"extra attack names {sorted(clash)} clash with the built-in ones")
    for name, hits in known.items():
        if hits.shape != (len(x),) or hits.dtype != torch.bool:
            raise ValueError(f"known[{name!r}] must be a boolean tensor of shape ({len(x)},), got "
                             f"{hits.dtype} {tuple(hits.shape)}")

    def strong_pgd(m: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        # a fresh generator per batch: the first r random starts are the same for any number of restarts >= r
        generator = torch.Generator(device=xb.device).manual_seed(seed)
        return pgd(m, xb, yb, eps, alpha=alpha, steps=int(steps), restarts=int(restarts), norm=norm,
                   generator=generator)

    def through(attack: Attack) -> Attack:
        return attack if attack_model is None else transfer(attack_model, attack)

    attacks: dict[str, Attack] = {"fgsm": through(partial(fgsm, eps=eps, norm=norm)), "pgd": through(strong_pgd),
                                  **extra_attacks}
    results = worst_case_correct(model, x, y, attacks, batch_size)
    for name, hits in known.items():
        results[name] = hits.cpu()
        results["worst"] = results["worst"] & results[name]
    if autoattack:  # AutoAttack's cascade: each attack only on the examples that every attack so far left correct
        cascade = {"apgd-ce": partial(apgd_ce, eps=eps, steps=apgd_steps, norm=norm, seed=seed),
                   "apgd-t": partial(apgd_t, eps=eps, steps=apgd_steps, norm=norm, seed=seed)}
        alive = results.pop("worst")
        for name, attack in cascade.items():
            idx = torch.nonzero(alive).flatten()
            survives = torch.zeros_like(alive)
            if len(idx):
                survives[idx] = correct(model, x[idx], y[idx], through(attack), batch_size, desc=name)
            results[name] = alive = survives
        results["worst"] = alive
    return results


def robust_evaluation(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "linf",
                      steps: int = 20, restarts: int = 2, alpha: float | None = None,
                      extra_attacks: dict[str, Attack] | None = None, autoattack: bool = False,
                      apgd_steps: int = 100, seed: int = 0, batch_size: int = 250) -> dict[str, float]:
    """An honest robustness report for one model: clean, FGSM, strong PGD, AutoAttack, and the per-example worst case.

    - ``fgsm``: one step to the boundary of the eps-ball (Goodfellow et al. 2015);
    - ``pgd``: PGD with ``steps`` steps (default step 2.5 eps / steps) and ``restarts`` random restarts -- use
      more steps and restarts than training did (Madry et al. 2018);
    - any ``extra_attacks`` (e.g. a transfer attack from another model);
    - with ``autoattack``, AutoAttack-strength attacks run as AutoAttack runs them, as a cascade on the examples that
      every attack so far left correct (Croce and Hein 2020; :mod:`course_lib.attacks.autoattack`): ``apgd-ce``
      (APGD on the cross-entropy), then ``apgd-t`` (targeted APGD on the DLR loss against every other class), both
      with ``apgd_steps`` iterations. Their entries are cumulative: correct under everything up to and including
      that attack, so ``apgd-t`` is also the worst case;
    - ``worst``: the fraction of examples that survive *every* attack (and are correct when clean),
      ``mean_i min_a 1[f(a(x_i)) = y_i]``, which is at most the minimum of the per-attack accuracies.

    A defence that is only robust to one attack is not robust: report ``worst``, an upper bound on the true
    robust accuracy (Athalye et al. 2018; Croce and Hein 2020). PGD's random starts come from a generator seeded
    with ``seed`` afresh for every batch, so the report is reproducible, and nested in ``restarts``: with more
    restarts each example keeps the starts it had with fewer, so PGD accuracy cannot rise with more restarts.
    Returns accuracies in [0, 1], keyed ``clean``, ``fgsm``, ``pgd``, the extra names, [``apgd-ce``,
    ``apgd-t``,] ``worst``.
    """
    results = robust_correct(model, x, y, eps, norm, steps, restarts, alpha, extra_attacks, autoattack, apgd_steps,
                             seed, batch_size)
    return {name: hits.float().mean().item() for name, hits in results.items()}


# ---------------------------------------------------------------------------------------- evaluation kinds
def _eval_split(data: DataSplit, profile: Profile) -> tuple[torch.Tensor, torch.Tensor]:
    n = min(profile.attack.images, len(data.x_test))
    return data.x_test[:n], data.y_test[:n]


@register_evaluation("robust")
def evaluate_robust(model: nn.Module, data: DataSplit, profile: Profile) -> dict:
    """Clean accuracy on the whole test split, and :func:`robust_correct` with AutoAttack-strength attacks at the
    profile's l_inf eps on its evaluation images: PGD with the profile's steps and restarts (seed 0, batches of up to
    500 images), then APGD-CE and APGD-T. Records the accuracies (``robust``) and the per-example results
    (``correct``, lists of booleans), so that chapters read the worst case from the cache instead of recomputing it."""
    x, y = _eval_split(data, profile)
    a = profile.attack
    hits = robust_correct(model, x, y, a.eps_linf, steps=a.steps, restarts=a.restarts, autoattack=True,
                          apgd_steps=a.apgd_steps, batch_size=min(len(x), 500))
    return {"clean_accuracy": accuracy(model, data.x_test, data.y_test), "eval_images": len(x), "eps": a.eps_linf,
            "robust": {name: h.float().mean().item() for name, h in hits.items()},
            "correct": {name: h.tolist() for name, h in hits.items()}}


@register_evaluation("pgd_curve")
def evaluate_pgd_curve(model: nn.Module, data: DataSplit, profile: Profile, eps: Sequence[float], steps: int,
                       restarts: int = 1, norm: str = "linf", seed: int = 0) -> dict:
    """PGD accuracy at each radius in ``eps`` on the profile's evaluation images: PGD with ``steps`` steps (step
    2.5 eps / steps) and ``restarts`` random starts from a generator seeded with ``seed`` afresh for every batch of
    up to 500 images, as :func:`robust_correct`'s PGD (so ``eps=[e]`` with its steps and restarts gives its ``pgd``
    number). For what a chapter recomputes on every build (a convergence check, an accuracy-versus-eps curve);
    each radius is a separate attack. Returns ``{"eps": [...], "accuracy": [...], "eval_images": n}``."""
    x, y = _eval_split(data, profile)
    check_steps(steps, restarts)
    radii = [check_eps(float(e)) for e in eps]

    def attack_at(e: float) -> Attack:
        def attack(m: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            generator = torch.Generator(device=xb.device).manual_seed(seed)
            return pgd(m, xb, yb, e, steps=int(steps), restarts=int(restarts), norm=norm, generator=generator)
        return attack

    accuracies = [robust_accuracy(model, x, y, attack_at(e), batch_size=min(len(x), 500), desc=f"pgd eps={e:g}")
                  for e in radii]
    return {"eps": radii, "accuracy": accuracies, "eval_images": len(x)}


@register_evaluation("robust_per_lambda")
def evaluate_robust_per_lambda(model: nn.Module, data: DataSplit, profile: Profile) -> dict:
    """:func:`evaluate_robust` of a lambda-conditioned model at each of its lambda choices, through
    :class:`course_lib.models.FixedLambda` (the same attacks, images and seeds as for any other model).
    Returns ``{"choices": [...], "per_lambda": {"0.1": <evaluate_robust's dict>, ...}}``."""
    choices = model.choices
    return {"choices": list(choices),
            "per_lambda": {f"{lam:g}": evaluate_robust(FixedLambda(model, lam), data, profile) for lam in choices}}


@register_evaluation("noise")
def evaluate_noise(model: nn.Module, data: DataSplit, profile: Profile, sigma: float) -> dict:
    """Clean accuracy, and accuracy on the evaluation images under one seeded draw of N(0, sigma^2 I) noise
    (not clipped to [0, 1], as the smoothed classifier samples it)."""
    x, y = _eval_split(data, profile)
    noise = sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    return {"clean_accuracy": accuracy(model, data.x_test, data.y_test), "eval_images": len(x),
            "noisy_accuracy": accuracy(model, x + noise, y, domain=None)}


# ---------------------------------------------------------------------------------------- training monitors
Monitor = Callable[[nn.Module], dict]
MONITORS: dict[str, Callable[[DataSplit, Profile], Monitor]] = {}
"""Per-epoch training monitors by the name recipes use (``Recipe.monitor``)."""


def register_monitor(name: str) -> Callable:
    """Decorator: register ``make(data, profile) -> monitor``, where ``monitor(model) -> dict`` runs after each epoch."""
    def add(make: Callable[[DataSplit, Profile], Monitor]) -> Callable[[DataSplit, Profile], Monitor]:
        if name in MONITORS:
            raise ValueError(f"a monitor named {name!r} is already registered")
        MONITORS[name] = make
        return make
    return add


@register_monitor("pgd")
def pgd_monitor(data: DataSplit, profile: Profile) -> Monitor:
    """Clean, FGSM and PGD accuracy (profile's l_inf eps and steps, one restart) on the LAST ``attack.monitor_images`` test
    images, which are disjoint from the evaluation images (the first ``attack.images``) in every profile. The curve is
    only drawn, never used to pick an epoch; a widening gap between FGSM and PGD accuracy is the signature of
    catastrophic overfitting (Wong et al. 2020). The random starts come from a generator of their own, so monitoring
    does not change the trained model."""
    n = profile.attack.monitor_images
    if n + profile.attack.images > len(data.x_test):
        raise ValueError(f"{n} monitor images and {profile.attack.images} evaluation images overlap in a test split "
                         f"of {len(data.x_test)}")
    x, y = data.x_test[-n:], data.y_test[-n:]
    eps, steps = profile.attack.eps_linf, profile.attack.steps

    def monitor(model: nn.Module) -> dict:
        generator = torch.Generator(device=model_device(model)).manual_seed(0)
        attack = partial(pgd, eps=eps, steps=steps, generator=generator)
        return {"clean": accuracy(model, x, y),
                "fgsm": robust_accuracy(model, x, y, partial(fgsm, eps=eps), desc=None),
                "pgd": robust_accuracy(model, x, y, attack, desc=None)}

    return monitor
