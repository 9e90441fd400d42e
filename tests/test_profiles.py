"""Tests of course_lib.profiles: the default, selection by COURSE_PROFILE, errors, and consistent sizes."""

from __future__ import annotations

import dataclasses

import pytest

from course_lib.data import DATASETS
from course_lib.models import ARCHS
from course_lib.profiles import PROFILE_ENV, PROFILES, Profile, get_profile, with_sizes


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
    assert 0 < p.eps_linf <= 1 and 0 < p.eps_l2
    assert min(p.train_epochs, p.at_epochs, p.noise_epochs, p.eval_restarts, p.batch_size) >= 1
    assert 1 <= p.train_attack_steps < p.eval_attack_steps  # evaluation attacks harder than training
    assert 0 < p.certify_n0 < p.certify_n
    assert 0 < p.certify_images and 0 < p.eval_images


def test_profiles_grow_from_quick_to_full_mnist():
    quick, mnist = PROFILES["quick"], PROFILES["mnist"]
    assert quick.eval_attack_steps <= mnist.eval_attack_steps
    assert quick.eval_images <= mnist.eval_images
    assert quick.certify_n <= mnist.certify_n


def test_with_sizes_returns_a_changed_copy():
    quick = get_profile("quick")
    small = with_sizes(quick, train_epochs=1, eval_images=10, eps_linf=0.1)
    assert (small.train_epochs, small.eval_images, small.eps_linf) == (1, 10, 0.1)
    assert small.at_epochs == quick.at_epochs and small.dataset == quick.dataset
    assert quick.train_epochs == 15 and PROFILES["quick"] is quick  # the registered profile is untouched


def test_with_sizes_rejects_unknown_fields():
    with pytest.raises(TypeError):
        with_sizes(get_profile("quick"), epochs=1)


def test_profiles_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_profile("quick").train_epochs = 1  # type: ignore[misc]
    assert isinstance(get_profile("quick"), Profile)
