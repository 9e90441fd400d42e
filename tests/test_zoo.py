"""Tests of course_lib.zoo (and the recipes it trains): round trip, recovery, safety, atomicity, locking, CLI.

Every test runs against a temporary COURSE_CACHE_DIR (and a temporary XDG_CACHE_HOME, so even the default cache
location is a temporary folder): the user's model cache is never touched. Recipes are trained for real, but on a
"tiny" profile (one epoch, tiny_cnn, a two-step PGD evaluation on 16 images) and on 96 random 8 x 8 images that
replace the profile's data set, so a training run takes a fraction of a second.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import multiprocessing
import os
import re
import runpy
import shutil
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from course_lib import zoo
from course_lib.data import MNIST_CLASSES, DataSplit
from course_lib.evaluation import EVALUATIONS
from course_lib.models import ARCHS
from course_lib.profiles import PROFILES, get_profile, with_sizes
from course_lib.profiles import resolve_sizes
from course_lib.recipes import RECIPES, Recipe, register
from course_lib.training import LOSSES
from course_lib.zoo import PAIRS, load_pair

pytestmark = pytest.mark.usefixtures("single_thread")


def tiny_profile():
    return with_sizes(get_profile("quick"), name="tiny", arch="tiny_cnn",
                      training={"epochs": 1, "at_epochs": 1, "noise_epochs": 1, "attack_steps": 1, "batch_size": 32},
                      attack={"steps": 2, "images": 16})


def tiny_split(profile=None) -> DataSplit:
    """96 random 1 x 8 x 8 images with labels 0..9 (64 train, 32 test); the same in every process."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(96, 1, 8, 8, generator=g)
    y = torch.arange(96) % 10
    return DataSplit("tiny", x[:64], y[:64], x[64:], y[64:], MNIST_CLASSES)


@pytest.fixture(autouse=True)
def zoo_env(monkeypatch, tmp_path):
    """Temporary caches, tiny data, and a record of every training run."""
    cache = tmp_path / "cache"
    monkeypatch.setenv(zoo.CACHE_ENV, str(cache))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(zoo, "load_data", tiny_split)
    trained: list[str] = []
    original = zoo.train_recipe

    def counting_train_recipe(recipe, profile):
        trained.append(recipe.name)
        return original(recipe, profile)

    monkeypatch.setattr(zoo, "train_recipe", counting_train_recipe)
    return SimpleNamespace(cache=cache, profile=tiny_profile(), trained=trained)


def state_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)


def weights_digest(state: dict) -> str:
    return hashlib.sha256(b"".join(k.encode() + v.cpu().contiguous().numpy().tobytes()
                                   for k, v in sorted(state.items()))).hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Files that are neither checkpoints nor lock files (e.g. temporary files of an interrupted save)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith((".pt", ".lock")))


# ------------------------------------------------------------------------------------------ round trip
def test_train_save_load_round_trip(zoo_env):
    profile = zoo_env.profile
    model, meta = zoo.load_with_meta("standard", profile)
    assert zoo_env.trained == ["standard"]
    key = zoo.recipe_key(RECIPES["standard"], profile)
    path = zoo.checkpoint_path("standard", profile)
    assert re.fullmatch(r"[0-9a-f]{16}", key)
    assert path == zoo_env.cache / f"standard--tiny--{key}.pt" and path.is_file()
    assert (meta["name"], meta["key"], meta["profile"]) == ("standard", key, "tiny")
    assert 0 <= meta["metrics"]["clean_accuracy"] <= 1
    robust, correct = meta["metrics"]["robust"], meta["metrics"]["correct"]
    assert meta["metrics"]["eval_images"] == 16 and meta["metrics"]["eps"] == profile.attack.eps_linf
    assert list(robust) == ["clean", "fgsm", "pgd", "apgd-ce", "apgd-t", "worst"]
    for name, hits in correct.items():  # the per-example record and the accuracies agree
        assert len(hits) == 16 and robust[name] == sum(hits) / 16
    assert correct["worst"] == correct["apgd-t"]  # the cascade's last entry is the worst case
    assert all(not w or (c and f and p) for w, c, f, p in
               zip(correct["worst"], correct["clean"], correct["fgsm"], correct["pgd"]))
    assert not model.training

    loaded, loaded_meta = zoo.load_with_meta("standard", profile)
    assert zoo_env.trained == ["standard"]  # loaded from the cache, not trained again
    assert loaded is not model and not loaded.training
    assert state_equal(loaded, model) and loaded_meta == meta
    x = tiny_split().x_test
    assert torch.equal(loaded(x), model(x))
    assert zoo.metrics("standard", profile) == meta["metrics"]
    assert zoo_env.trained == ["standard"]
    assert leftovers(zoo_env.cache) == []


def test_retrain_trains_again_and_seeded_training_reproduces_the_weights(zoo_env):
    first = zoo.load("standard", zoo_env.profile)
    again = zoo.load("standard", zoo_env.profile, retrain=True)
    assert zoo_env.trained == ["standard", "standard"]
    assert state_equal(first, again)


def test_noise_recipes_record_noisy_accuracy(zoo_env):
    metrics = zoo.metrics("gaussian_0.25", zoo_env.profile)
    assert set(metrics) == {"clean_accuracy", "eval_images", "noisy_accuracy"}
    assert 0 <= metrics["noisy_accuracy"] <= 1


def test_the_key_changes_with_everything_that_determines_the_weights():
    profile, recipe = tiny_profile(), RECIPES["standard"]
    key = zoo.recipe_key(recipe, profile)
    assert key == zoo.recipe_key(recipe, tiny_profile())  # stable
    assert key != zoo.recipe_key(recipe, with_sizes(profile, training={"epochs": 2}))
    assert key != zoo.recipe_key(recipe, with_sizes(profile, name="other"))
    assert key != zoo.recipe_key(dataclasses.replace(recipe, lr=2e-3), profile)
    assert key != zoo.recipe_key(dataclasses.replace(recipe, seed=1), profile)
    assert key != zoo.recipe_key(RECIPES["pgd_at"], profile)
    # the prose description does not determine the weights: rewording it must not retrain
    assert key == zoo.recipe_key(dataclasses.replace(recipe, description="reworded"), profile)
    assert zoo.checkpoint_path("standard", profile) != zoo.checkpoint_path("standard",
                                                                         with_sizes(profile, attack={"images": 8}))


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_load_pair_returns_the_cached_models_of_the_pair(zoo_env, pair):
    models = load_pair(pair, zoo_env.profile)
    assert zoo_env.trained == list(PAIRS[pair])
    assert len(models) == 2 and not any(m.training for m in models)
    for model, name in zip(models, PAIRS[pair]):
        assert state_equal(model, zoo.load(name, zoo_env.profile))
    assert zoo_env.trained == list(PAIRS[pair])  # the second time, both came from the cache


def test_unknown_pair_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown pair 'nope'"):
        load_pair("nope")
    with pytest.raises(ValueError, match="unknown pair 'nope'"):
        zoo.pair_names("nope", "cifar10")


def test_the_mixing_pair_depends_on_the_profile():
    """Quick: the tiny CNN stand-in; full size: the PreAct ResNet-18 TRADES model, both recipes that exist."""
    assert zoo.pair_names("mixing", "quick") == PAIRS["mixing"] == ("standard", "tiny_trades_6")
    assert zoo.pair_names("mixing", "cifar10") == ("standard", "trades_6")
    for names in [PAIRS[p] for p in PAIRS] + [pair for table in zoo.PROFILE_PAIRS.values() for pair in table.values()]:
        assert all(name in zoo.RECIPES for name in names)


# ------------------------------------------------------------------------------------------ recovery
@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_corrupt_checkpoint_is_retrained_with_a_message(zoo_env, capsys, damage):
    profile = zoo_env.profile
    reference = zoo.load("standard", profile)
    path = zoo.checkpoint_path("standard", profile)
    content = path.read_bytes()
    path.write_bytes({"truncated": content[: len(content) // 2], "garbage": bytes(range(256)) * 40,
                      "empty": b""}[damage])
    capsys.readouterr()
    model = zoo.load("standard", profile)
    out = capsys.readouterr().out
    assert f"[zoo] ignoring unusable checkpoint {path.name}" in out
    assert zoo_env.trained == ["standard", "standard"]
    assert state_equal(model, reference)
    assert torch.load(path, weights_only=True)["meta"]["key"] == zoo.recipe_key(RECIPES["standard"], profile)
    zoo.load("standard", profile)  # the rewritten file is good again
    assert zoo_env.trained == ["standard", "standard"]


def test_a_checkpoint_of_another_recipe_is_retrained(zoo_env, capsys):
    profile = zoo_env.profile
    zoo.load("gaussian_0.25", profile)
    target = zoo.checkpoint_path("standard", profile)
    shutil.copy(zoo.checkpoint_path("gaussian_0.25", profile), target)  # same architecture, another recipe
    capsys.readouterr()
    _, meta = zoo.load_with_meta("standard", profile)
    assert "belongs to another recipe" in capsys.readouterr().out
    assert zoo_env.trained == ["gaussian_0.25", "standard"]
    assert meta["name"] == "standard"
    assert torch.load(target, weights_only=True)["meta"]["name"] == "standard"


FOREIGN = {
    "not a dict": lambda key: [1, 2, 3],
    "no metadata": lambda key: {"state_dict": {}},
    "metadata not a dict": lambda key: {"state_dict": {}, "meta": "standard"},
    "no weights": lambda key: {"meta": {"key": key}},
    "weights of another model": lambda key: {"meta": {"key": key}, "state_dict": {"0.mean": torch.zeros(3)}},
}


@pytest.mark.parametrize("content", sorted(FOREIGN))
def test_a_foreign_file_is_retrained(zoo_env, capsys, content):
    profile = zoo_env.profile
    path = zoo.checkpoint_path("standard", profile)
    path.parent.mkdir(parents=True)
    torch.save(FOREIGN[content](zoo.recipe_key(RECIPES["standard"], profile)), path)
    model = zoo.load("standard", profile)
    assert "[zoo] ignoring unusable checkpoint" in capsys.readouterr().out
    assert zoo_env.trained == ["standard"]
    assert isinstance(model, nn.Module)


class Payload:
    """Unpickling this calls ``open(marker, "w")``: a harmless stand-in for arbitrary code in a checkpoint."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_with_a_pickled_object_is_refused_not_executed(zoo_env, capsys, tmp_path):
    profile = zoo_env.profile
    marker = tmp_path / "payload-ran"
    path = zoo.checkpoint_path("standard", profile)
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": Payload(marker), "meta": {"key": zoo.recipe_key(RECIPES["standard"], profile)}}, path)

    zoo.load("standard", profile)
    assert not marker.exists()  # weights_only=True refused to run the pickled call
    assert "[zoo] ignoring unusable checkpoint" in capsys.readouterr().out
    assert zoo_env.trained == ["standard"]

    # The payload is live: a full unpickle (what weights_only=True prevents) runs it.
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": Payload(marker)}, evil)
    torch.load(evil, weights_only=False)["state_dict"].close()
    assert marker.exists()


# ------------------------------------------------------------------------------------------ atomic writes
def test_a_successful_save_leaves_only_the_checkpoint(tmp_path):
    path = tmp_path / "cache" / "model.pt"
    zoo._atomic_save({"w": torch.arange(5)}, path)
    assert os.listdir(path.parent) == ["model.pt"]
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(5))


@pytest.mark.parametrize("existing", [False, True])
def test_a_failed_save_leaves_no_partial_file(tmp_path, existing):
    path = tmp_path / "cache" / "model.pt"
    if existing:
        zoo._atomic_save({"w": torch.arange(5)}, path)
    before = path.read_bytes() if existing else None
    with pytest.raises(Exception):
        zoo._atomic_save({"w": torch.zeros(1000), "unpicklable": lambda: 0}, path)  # fails while writing
    assert os.listdir(path.parent) == (["model.pt"] if existing else [])
    assert (path.read_bytes() if existing else None) == before


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_an_interrupted_save_leaves_no_partial_file(tmp_path, monkeypatch, error):
    path = tmp_path / "cache" / "model.pt"
    written = []

    def crash_halfway(obj, f):
        f.write(b"half a checkpoint")
        f.flush()
        written.extend(os.listdir(path.parent))
        raise error

    monkeypatch.setattr(torch, "save", crash_halfway)
    with pytest.raises(type(error)):
        zoo._atomic_save({"w": torch.zeros(3)}, path)
    assert len(written) == 1 and written[0] != path.name  # the half-written bytes went to a temporary file
    assert os.listdir(path.parent) == []


def test_a_failed_training_writes_nothing(zoo_env, monkeypatch):
    def broken(recipe, profile):
        raise RuntimeError("training diverged")

    monkeypatch.setattr(zoo, "train_recipe", broken)
    with pytest.raises(RuntimeError, match="training diverged"):
        zoo.load("standard", zoo_env.profile)
    assert not zoo.checkpoint_path("standard", zoo_env.profile).exists()
    assert leftovers(zoo_env.cache) == []


# ------------------------------------------------------------------------------------------ concurrency
def _load_concurrently(cache_dir: str, log: str, barrier, results) -> None:
    """One of two processes that load the same missing recipe at the same moment."""
    torch.set_num_threads(1)  # first thing after the fork: no OpenMP thread pool is ever used in the child
    os.environ[zoo.CACHE_ENV] = cache_dir
    zoo.load_data = tiny_split
    original = zoo.train_recipe

    def logged_slow_train(recipe, profile):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(1.0)  # keep the race window open: the other process arrives while this one trains
        return original(recipe, profile)

    zoo.train_recipe = logged_slow_train
    barrier.wait(timeout=120)
    model = zoo.load("standard", tiny_profile())
    results.put(weights_digest(model.state_dict()))


def test_two_processes_loading_a_missing_recipe_train_it_once(tmp_path):
    """Two processes start loading the same uncached recipe together: one trains, the other waits and loads.

    The processes are forked (Linux): a spawned interpreter would first spend seconds importing torch. Forking
    after torch has run multi-threaded is safe here because each child switches to one thread before any work
    (as DataLoader workers do). Without the file lock both would train, and the log would have two lines.
    """
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    cache, log = tmp_path / "shared-cache", tmp_path / "trainings.log"
    barrier, results = ctx.Barrier(2), ctx.Queue()
    workers = [ctx.Process(target=_load_concurrently, args=(str(cache), str(log), barrier, results))
               for _ in range(2)]
    for w in workers:
        w.start()
    try:
        digests = [results.get(timeout=180) for _ in workers]
        for w in workers:
            w.join(timeout=60)
            assert w.exitcode == 0
    finally:
        for w in workers:
            if w.is_alive():
                w.kill()
    assert len(log.read_text().split()) == 1  # trained by one process; the other waited and loaded
    checkpoint = next(cache.glob("standard--tiny--*.pt"))
    blob = torch.load(checkpoint, weights_only=True)  # a complete, valid file
    assert digests[0] == digests[1] == weights_digest(blob["state_dict"])
    assert leftovers(cache) == []


# ------------------------------------------------------------------------------------------ errors
def test_unknown_recipe_is_a_clear_error(zoo_env):
    for call in (lambda: zoo.get_recipe("nope"), lambda: zoo.checkpoint_path("nope", zoo_env.profile),
                 lambda: zoo.load("nope", zoo_env.profile), lambda: zoo.metrics("nope", zoo_env.profile)):
        with pytest.raises(ValueError, match=r"unknown recipe 'nope'; known recipes: \[.*'standard'"):
            call()
    assert zoo_env.trained == [] and not zoo_env.cache.exists()


def test_unknown_profile_is_a_clear_error(zoo_env):
    with pytest.raises(ValueError, match="unknown profile 'nope'"):
        zoo.load("standard", "nope")


def test_unknown_architecture_in_a_recipe_is_a_clear_error(zoo_env, monkeypatch):
    monkeypatch.setitem(RECIPES, "bad_arch", Recipe("bad_arch", "a recipe with a typo", arch="resnet9000"))
    with pytest.raises(ValueError, match="unknown architecture 'resnet9000'"):
        zoo.load("bad_arch", zoo_env.profile)
    assert not zoo.checkpoint_path("bad_arch", zoo_env.profile).exists()


def test_recipe_names_are_unique():
    with pytest.raises(ValueError, match="'standard' is already registered"):
        register(Recipe("standard", "a second recipe with the same name"))


@pytest.mark.parametrize("profile_name", sorted(PROFILES))
def test_every_recipe_resolves_for_every_profile(profile_name):
    profile = PROFILES[profile_name]
    for name, recipe in RECIPES.items():
        assert recipe.name == name and recipe.loss in LOSSES and recipe.eval in EVALUATIONS
        assert (recipe.arch or profile.arch) in ARCHS
        epochs = resolve_sizes(recipe.epochs, profile)
        assert isinstance(epochs, int) and epochs >= 1
        kwargs = resolve_sizes(recipe.loss_kwargs, profile)
        numbers = [w for v in kwargs.values() for w in (v if isinstance(v, tuple) else (v,))]
        assert all(isinstance(v, (int, float)) for v in numbers)  # numbers, or tuples of them (OAT's choices)
        assert callable(LOSSES[recipe.loss](**kwargs))


def test_an_unknown_loss_or_evaluation_in_a_recipe_is_a_clear_error(zoo_env, monkeypatch):
    monkeypatch.setitem(RECIPES, "bad_loss", Recipe("bad_loss", "a typo in the loss", loss="pgdat"))
    monkeypatch.setitem(RECIPES, "bad_eval", Recipe("bad_eval", "a typo in the evaluation", eval="robst"))
    with pytest.raises(ValueError, match="unknown loss 'pgdat'"):
        zoo.load("bad_loss", zoo_env.profile)
    with pytest.raises(ValueError, match="unknown evaluation 'robst'"):
        zoo.load("bad_eval", zoo_env.profile)
    assert zoo_env.trained == ["bad_loss", "bad_eval"] and not list(zoo_env.cache.glob("*.pt"))


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "models"))
    assert zoo.cache_dir() == tmp_path / "models"
    monkeypatch.delenv(zoo.CACHE_ENV)
    assert zoo.cache_dir() == tmp_path / "xdg" / "accuracy-vs-robustness"  # XDG_CACHE_HOME from zoo_env


# ------------------------------------------------------------------------------------------ command line
@pytest.fixture
def tiny_cli(zoo_env, monkeypatch):
    monkeypatch.setattr(zoo, "get_profile", lambda name=None: zoo_env.profile)
    return zoo_env


def _recipe_lines(out: str) -> dict[str, str]:
    return {line.split()[0]: line for line in out.splitlines()[1:]}


def test_cli_list_and_train(tiny_cli, capsys):
    zoo.main(["list"])
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"profile tiny, cache {tiny_cli.cache}"
    lines = _recipe_lines(out)
    assert set(lines) == set(RECIPES) and not any("cached" in line for line in lines.values())

    zoo.main(["train", "standard"])
    out = capsys.readouterr().out
    assert re.fullmatch(r"standard: \{.*\"clean_accuracy\": .*\} \(\d+\.\d s to train\)\n", out)
    assert tiny_cli.trained == ["standard"]

    zoo.main(["list"])
    lines = _recipe_lines(capsys.readouterr().out)
    assert lines["standard"].split()[1] == "cached"
    assert all(line.split()[1] == "-" for name, line in lines.items() if name != "standard")

    zoo.main(["train", "standard"])  # cached: loaded, not trained
    zoo.main(["train", "--retrain", "standard"])
    assert tiny_cli.trained == ["standard", "standard"]


def test_cli_unknown_recipe_fails_before_training_anything(tiny_cli):
    with pytest.raises(ValueError, match="unknown recipe 'nope'"):
        zoo.main(["train", "standard", "nope"])
    assert tiny_cli.trained == []


@pytest.mark.parametrize("argv, message", [([], "required"), (["train"], "name recipes to train, or pass --all"),
                                           (["fly"], "invalid choice")])
def test_cli_usage_errors(tiny_cli, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        zoo.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_cli_module_entry_point(tmp_path, monkeypatch, capsys):
    """``python -m course_lib.zoo list``, run in this interpreter (a subprocess would spend seconds importing torch).

    runpy executes the module as ``__main__`` with ``sys.argv``, exactly as ``python -m`` does.
    """
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("COURSE_PROFILE", "quick")
    monkeypatch.setattr(sys, "argv", ["course_lib.zoo", "list"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "found in sys.modules ... prior to execution"
        runpy.run_module("course_lib.zoo", run_name="__main__", alter_sys=True)
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"profile quick, cache {tmp_path / 'cache'}"
    assert set(_recipe_lines(out)) == set(RECIPES)
    assert not (tmp_path / "cache").exists()  # listing writes nothing


def test_console_script_points_at_main():
    scripts = {ep.name: ep for ep in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts["course-zoo"].value == "course_lib.zoo:main"
    assert scripts["course-zoo"].load() is zoo.main


# --- cached evaluations (zoo.evaluate): CERTIFY at a large n read back from the cache -----------------------------
def test_a_cached_evaluation_is_computed_once_and_equals_a_direct_certify(zoo_env, monkeypatch):
    from course_lib.smoothing import Smooth, certificate
    calls = []
    original = EVALUATIONS["certify"]
    monkeypatch.setitem(EVALUATIONS, "certify", lambda *a, **k: calls.append(k) or original(*a, **k))
    args = {"sigma": 0.25, "n": 50, "n0": 10, "alpha": 0.01, "images": 5, "seed": 3}
    first = zoo.evaluate("gaussian_0.25", "certify", zoo_env.profile, **args)
    again = zoo.evaluate("gaussian_0.25", "certify", zoo_env.profile, **args)
    assert first == again and len(calls) == 1
    model = zoo.load("gaussian_0.25", zoo_env.profile)
    x = tiny_split().x_test[:5]
    direct = Smooth(model, 10, 0.25).certify_batch(x, 10, 50, 0.01, generator=torch.Generator().manual_seed(3))
    rebuilt = certificate(np.array(first["counts0"]), np.array(first["counts"]), 0.25, 10, 50, 0.01)
    assert np.array_equal(rebuilt.prediction, direct.prediction) and np.allclose(rebuilt.radius, direct.radius)
    # another argument is another entry; an entry of another model (key) is recomputed
    zoo.evaluate("gaussian_0.25", "certify", zoo_env.profile, **{**args, "seed": 4})
    assert len(calls) == 2
    path = zoo.evaluation_path("gaussian_0.25", "certify", args, zoo_env.profile)
    blob = torch.load(path, weights_only=True)
    blob["model_key"] = "another model"
    torch.save(blob, path)
    zoo.evaluate("gaussian_0.25", "certify", zoo_env.profile, **args)
    assert len(calls) == 3
    assert not list(zoo_env.cache.glob("*.tmp"))  # atomic writes leave no temporary files


def test_a_corrupt_cached_evaluation_is_recomputed_with_a_message(zoo_env, capsys):
    args = {"sigma": 0.25, "n": 20, "n0": 5, "images": 3}
    first = zoo.evaluate("gaussian_0.25", "certify", zoo_env.profile, **args)
    zoo.evaluation_path("gaussian_0.25", "certify", args, zoo_env.profile).write_bytes(b"garbage")
    again = zoo.evaluate("gaussian_0.25", "certify", zoo_env.profile, **args)
    assert {k: v for k, v in again.items() if k != "seconds"} == {k: v for k, v in first.items() if k != "seconds"}
    assert "ignoring unusable evaluation" in capsys.readouterr().out


def test_cached_evaluation_errors(zoo_env):
    with pytest.raises(ValueError, match="unknown evaluation"):
        zoo.evaluate("gaussian_0.25", "certfy", zoo_env.profile, sigma=0.25)
    with pytest.raises(TypeError, match="must be a number"):
        zoo.evaluate("gaussian_0.25", "certify", zoo_env.profile, sigma={"s": 0.25})
    with pytest.raises(ValueError, match="unknown recipe"):
        zoo.evaluate("gausian_0.25", "certify", zoo_env.profile, sigma=0.25)


def test_a_pair_evaluation_is_cached_under_both_models_keys(zoo_env, monkeypatch):
    calls = []
    monkeypatch.setitem(EVALUATIONS, "pair_probe", lambda pair, data, profile, alphas: calls.append(pair) or
                        {"alphas": list(alphas), "classes": [m(data.x_test[:2]).shape[1] for m in pair]})
    first = zoo.evaluate_pair("mixing", "pair_probe", zoo_env.profile, alphas=(0.5, 1.0))
    again = zoo.evaluate_pair("mixing", "pair_probe", zoo_env.profile, alphas=[0.5, 1.0])  # tuple == list
    assert first == again == {"alphas": [0.5, 1.0], "classes": [10, 10]} and len(calls) == 1
    accurate, robust = calls[0]
    assert state_equal(accurate, zoo.load(PAIRS["mixing"][0], zoo_env.profile))
    assert state_equal(robust, zoo.load(PAIRS["mixing"][1], zoo_env.profile))
    # the stored key names both models: an entry whose accurate model's key differs is recomputed
    path = zoo.evaluation_path("+".join(PAIRS["mixing"][::-1]), "pair_probe", {"alphas": [0.5, 1.0]}, zoo_env.profile)
    blob = torch.load(path, weights_only=True)
    assert len(blob["model_key"]) == 2
    blob["model_key"] = ["retrained", blob["model_key"][1]]
    torch.save(blob, path)
    zoo.evaluate_pair("mixing", "pair_probe", zoo_env.profile, alphas=[0.5, 1.0])
    assert len(calls) == 2
    with pytest.raises(ValueError, match="unknown pair"):
        zoo.evaluate_pair("nope", "pair_probe", zoo_env.profile, alphas=[0.5])


@pytest.mark.parametrize("fmt", [torch.channels_last, torch.contiguous_format])
def test_build_for_takes_the_memory_format_from_the_device_module(monkeypatch, quick_data, fmt):
    """channels_last or not is the device module's decision (course_lib.device.memory_format), not the cache's."""
    monkeypatch.setattr(zoo, "memory_format", lambda device: fmt)
    model = zoo.build_for(zoo.get_recipe("standard"), zoo.get_profile("quick"), quick_data)
    convs = [p for p in model.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=fmt) for p in convs)
    assert any(not p.is_contiguous() for p in convs) == (fmt == torch.channels_last)
