"""Tests of course_lib.profiles: the default, selection by COURSE_PROFILE, errors, and consistent sizes."""

from __future__ import annotations

import dataclasses

import pytest

from course_lib.data import DATASETS
from course_lib.models import ARCHS
from course_lib.profiles import (PROFILE_ENV, PROFILES, Profile, ProfileSize, get_profile, resolve_profile,
                                resolve_sizes, size, with_sizes)


@pytest.mark.parametrize("value", [None, "", "  "])
def test_default_profile_is_quick(monkeypatch, value):
    if value is None:
        monkeypatch.delenv(PROFILE_ENV, raising=False)
    else:
        monkeypatch.setenv(PROFILE_ENV, value)
    profile = get_profile()
    assert profile.name == "quick" and profile is PROFILES["quick"]


def test_quick_is_the_offline_cpu_profile():
    assert get_profile("quick").dataset == "mnist_subset"


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_environment_variable_selects_the_profile(monkeypatch, name):
    monkeypatch.setenv(PROFILE_ENV, f" {name} ")
    assert get_profile().name == name
    assert get_profile() is PROFILES[name]


def test_explicit_name_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv(PROFILE_ENV, "cifar10")
    assert get_profile("mnist").name == "mnist"


@pytest.mark.parametrize("name", ["Quick", "mnist_subset", "imagenet", "cifar"])
def test_unknown_profile_name_is_a_clear_error(name):
    with pytest.raises(ValueError, match=rf"unknown profile '{name}'.*cifar10.*fashion.*mnist.*quick"):
        get_profile(name)


def test_unknown_profile_from_the_environment_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(PROFILE_ENV, "fast")
    with pytest.raises(ValueError, match=rf"unknown profile 'fast' \(from {PROFILE_ENV}\)"):
        get_profile()


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profile_fields_are_consistent(name):
    p = PROFILES[name]
    assert p.name == name
    assert p.dataset in DATASETS
    assert p.arch in ARCHS
    assert 0 < p.attack.eps_linf <= 1 and 0 < p.attack.eps_l2
    t = p.training
    assert min(t.epochs, t.at_epochs, t.noise_epochs, p.attack.restarts, t.batch_size) >= 1
    assert 1 <= t.attack_steps < p.attack.steps  # evaluation attacks harder than training
    assert 0 < p.smoothing.n0 < p.smoothing.n
    assert 0 < p.smoothing.images and 0 < p.attack.images and p.attack.apgd_steps >= p.attack.steps


def test_profiles_grow_from_quick_to_full_mnist():
    quick, mnist = PROFILES["quick"], PROFILES["mnist"]
    assert quick.attack.steps <= mnist.attack.steps
    assert quick.attack.images <= mnist.attack.images
    assert quick.smoothing.n <= mnist.smoothing.n


def test_with_sizes_returns_a_changed_copy():
    quick = get_profile("quick")
    small = with_sizes(quick, name="small", training={"epochs": 1}, attack={"images": 10, "eps_linf": 0.1})
    assert (small.name, small.training.epochs, small.attack.images, small.attack.eps_linf) == ("small", 1, 10, 0.1)
    assert small.training.at_epochs == quick.training.at_epochs and small.dataset == quick.dataset
    assert quick.training.epochs == 15 and PROFILES["quick"] is quick  # the registered profile is untouched


@pytest.mark.parametrize("changes, message", [({"epochs": 1}, "unknown size group 'epochs'"),
                                              ({"training": {"epoch": 1}}, r"unknown sizes \['epoch'\]")])
def test_with_sizes_rejects_unknown_groups_and_sizes(changes, message):
    with pytest.raises(ValueError, match=message):
        with_sizes(get_profile("quick"), **changes)


def test_profiles_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_profile("quick").training.epochs = 1  # type: ignore[misc]
    assert isinstance(get_profile("quick"), Profile)


def test_resolve_profile_accepts_a_profile_a_name_or_none(monkeypatch):
    monkeypatch.setenv(PROFILE_ENV, "mnist")
    assert resolve_profile(None) is PROFILES["mnist"]
    assert resolve_profile("quick") is PROFILES["quick"] and resolve_profile(PROFILES["fashion"]) is PROFILES["fashion"]
    with pytest.raises(TypeError):
        resolve_profile(3)


def test_size_markers_resolve_per_profile_and_fail_loudly_on_a_typo():
    eps = size("attack.eps_linf")
    assert isinstance(eps, ProfileSize)
    assert eps.resolve(PROFILES["quick"]) == 0.3 and eps.resolve(PROFILES["fashion"]) == 0.1
    assert resolve_sizes({"eps": eps, "beta": 6.0}, PROFILES["cifar10"]) == {"eps": 8 / 255, "beta": 6.0}
    for typo in ("attack.eps_lin", "atack.eps_linf", "eps_linf", "attack", "name.x"):
        with pytest.raises(ValueError, match="is not a profile size"):
            size(typo)
