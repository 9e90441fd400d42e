"""Tests of the full-size (cifar10 profile) recipes, issue 14: PreAct ResNet-18, SGD with weight decay and a schedule,
crop-and-flip augmentation, the best epoch by held-out PGD accuracy (Rice et al. 2020), mixed precision.

- The quick profile trains exactly as before (Adam at 1e-3, constant rate, no augmentation, final weights).
- Every recipe of :data:`course_lib.recipes.FULL_SIZE_RECIPES` is trained end to end by the model cache on the
  cifar10 profile shrunk to one epoch and tiny sizes (:func:`tiny_cifar10`, ``with_sizes`` on the real profile, so
  the data path, architecture, optimizer, schedule and augmentation are the real ones), on a tiny CIFAR-10 written
  by the test in torchvision's on-disk format (``cifar-10-batches-py`` pickles) into a temporary ``COURSE_DATA_DIR``,
  with every network connection blocked.
- Precision: evaluation attacks run in float32 (:func:`course_lib.device.full_precision` even inside an autocast
  region), and a PGD attack whose gradients are computed in bfloat16 autocast finds the same robust accuracy within
  noise (checked on the CPU, where bfloat16 autocast exists too).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from helpers import write_cifar10_files

from course_lib import data as course_data
from course_lib import device as course_device
from course_lib import zoo
from course_lib.attacks import pgd
from course_lib.data import DATA_ENV, load_dataset
from course_lib.evaluation import correct, paired_standard_error
from course_lib.models import ConditionedSequential, PreActResNet, build_model, count_parameters
from course_lib.profiles import PROFILES, get_profile, with_sizes
from course_lib.recipes import FULL_SIZE_RECIPES, RECIPES
from course_lib.training import standard_loss, train
from course_lib.training.augment import AUGMENTS, RandomCropFlip, make_augment
from course_lib.training.best import KeepBest

# One torch thread: on two shared cores the small batches of these tests run several times faster (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("single_thread")

TRAIN_PER_FILE, TEST_IMAGES = (2, 2, 2, 1, 1), 8  # 8 training images in the 5 files, a test file of 8


def tiny_cifar10():
    """The cifar10 profile with every size shrunk for a CPU test: one epoch, one PGD step, tiny evaluations."""
    return with_sizes(get_profile("cifar10"), name="cifar10_tiny",
                      training={"epochs": 1, "at_epochs": 1, "noise_epochs": 1, "attack_steps": 1, "batch_size": 4,
                                "noise_batch_size": 4, "smoothmix_steps": (1, 1, 1)},
                      attack={"steps": 2, "restarts": 1, "images": 4, "monitor_images": 4, "apgd_steps": 2},
                      smoothing={"n0": 10, "n": 20, "images": 2})


def write_cifar10(root: Path, monkeypatch) -> dict[str, np.ndarray]:
    """A tiny CIFAR-10 in torchvision's format under ``root/cifar-10-batches-py`` (see tests/test_data.py: the
    integrity check runs against the md5 digests of these files)."""
    rng = np.random.default_rng(14)
    n_train = sum(TRAIN_PER_FILE)
    arrays = {"train_x": rng.integers(0, 256, (n_train, 3072), dtype=np.uint8),
              "train_y": np.arange(n_train) % 10,
              "test_x": rng.integers(0, 256, (TEST_IMAGES, 3072), dtype=np.uint8),
              "test_y": np.arange(TEST_IMAGES) % 10}
    write_cifar10_files(root / "cifar-10-batches-py", arrays, TRAIN_PER_FILE, monkeypatch)
    return arrays


@pytest.fixture
def cifar10_env(tmp_path, monkeypatch, no_network):
    """A tiny on-disk CIFAR-10 in COURSE_DATA_DIR and an empty model cache. ``load_dataset`` runs uncached for the
    test (its ``lru_cache`` neither serves a real CIFAR-10 nor keeps the tiny one for later tests)."""
    arrays = write_cifar10(tmp_path / "data", monkeypatch)
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "data"))
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(course_data, "load_dataset", course_data.load_dataset.__wrapped__)
    return arrays


# ------------------------------------------------------------------------------------------ the recipes' settings
QUICK_TODAY = {"optimizer": "adam", "lr": 1e-3, "schedule": "constant", "weight_decay": 0.0, "augment": "none",
               "batch_size": 128, "keep_best": None}


@pytest.mark.parametrize("profile", ["quick", "mnist", "fashion"])
def test_the_small_profiles_train_every_recipe_as_before(profile):
    """Bit-identity guard: the settings and loss arguments the quick, mnist and fashion recipes resolve to are the
    constants the loop and the losses used before issue 14 (SGD, schedules and augmentation are cifar10's only)."""
    p = PROFILES[profile]
    for name, recipe in RECIPES.items():
        trained = recipe.resolved(p)
        expected = dict(QUICK_TODAY, schedule="cosine") if name == "oat_preact_resnet18" else QUICK_TODAY
        assert {k: getattr(trained, k) for k in QUICK_TODAY} == expected, name
        kwargs = trained.loss_kwargs
        if recipe.loss in ("pgd_at", "trades", "oat"):
            assert kwargs["steps"] == p.training.attack_steps and kwargs["step_ratio"] == 1 / 6, name
        if recipe.loss in ("pgd_at", "fgsm_at", "trades", "oat"):
            assert kwargs["ramp_epochs"] == 3.0, name
        if recipe.loss == "smoothmix":
            steps = {0.25: 2, 0.50: 4, 1.00: 8}[kwargs["sigma"]]
            assert (kwargs["steps"], kwargs["step_size"], kwargs["warmup_epochs"]) == (steps, 1.0, 3), name
            assert type(kwargs["steps"]) is int and type(kwargs["step_size"]) is float


def test_the_cifar10_recipes_are_the_published_ones():
    cifar = PROFILES["cifar10"]
    assert cifar.arch == "preact_resnet18" and cifar.attack.eps_linf == 8 / 255
    pgd_at = RECIPES["pgd_at"].resolved(cifar)  # Rice et al. 2020
    assert (pgd_at.optimizer, pgd_at.lr, pgd_at.weight_decay, pgd_at.schedule, pgd_at.augment, pgd_at.batch_size,
            pgd_at.epochs, pgd_at.keep_best) == ("sgd", 0.1, 5e-4, "multistep", "crop_flip", 128, 200, "pgd")
    kwargs = pgd_at.loss_kwargs
    assert kwargs["steps"] == 10 and kwargs["eps"] * kwargs["step_ratio"] == pytest.approx(2 / 255)
    assert kwargs["ramp_epochs"] == 0
    trades = RECIPES["trades_6"].resolved(cifar)
    assert trades.loss_kwargs["beta"] == 6.0 and trades.keep_best == "pgd" and trades.arch is None
    for sigma, step in ((0.25, 0.5), (0.50, 1.0)):  # Jeong et al. 2021's CIFAR-10 settings
        gauss, mix = (RECIPES[f"{kind}_{sigma:.2f}"].resolved(cifar) for kind in ("gaussian", "smoothmix"))
        assert (gauss.epochs, gauss.batch_size, gauss.weight_decay) == (mix.epochs, mix.batch_size,
                                                                       mix.weight_decay) == (150, 256, 1e-4)
        assert (mix.loss_kwargs["steps"], mix.loss_kwargs["step_size"], mix.loss_kwargs["m"]) == (4, step, 2)
        assert mix.loss_kwargs["warmup_epochs"] == 10
        assert gauss.schedule == mix.schedule == "thirds"  # /10 at epochs 50 and 100
    oat = RECIPES["oat_preact_resnet18"].resolved(cifar)
    assert (oat.arch, oat.schedule, oat.optimizer, oat.loss_kwargs["choices"]) == (
        "oat_preact_resnet18", "cosine", "sgd", (0.0, 0.1, 0.2, 0.3, 0.4, 1.0))
    assert set(FULL_SIZE_RECIPES) <= set(RECIPES)


def test_preact_resnet18_has_the_published_size():
    model = build_model("preact_resnet18", 3, 32, 10, [0.5] * 3, [0.25] * 3)
    assert isinstance(model[1], PreActResNet)
    assert round(count_parameters(model) / 1e5) == 112  # 11.17 million, as Rice et al.'s PreAct ResNet-18
    oat = build_model("oat_preact_resnet18", 3, 32, 10, [0.5] * 3, [0.25] * 3)
    assert isinstance(oat, ConditionedSequential) and oat.choices == (0.0, 0.1, 0.2, 0.3, 0.4, 1.0)


# ------------------------------------------------------------------------------------------ end to end
@pytest.mark.parametrize("name", FULL_SIZE_RECIPES)
def test_every_full_size_recipe_trains_end_to_end_on_the_cifar10_format(cifar10_env, name):
    profile = tiny_cifar10()
    model, meta = zoo.load_with_meta(name, profile)
    assert zoo.checkpoint_path(name, profile).is_file()
    recipe = json.loads(meta["recipe"])
    assert (recipe["optimizer"], recipe["augment"], recipe["batch_size"]) == ("sgd", "crop_flip", 4)
    assert meta["epoch"] == 1 and len(meta["loss_history"]) == 1 and np.isfinite(meta["final_loss"])
    if RECIPES[name].keep_best is not None:  # the AT recipes: best epoch by the monitor's held-out PGD accuracy
        assert meta["best_by"] == "pgd" and [r["epoch"] for r in meta["monitor"]] == [1]
    else:
        assert meta["best_by"] is None
    per_model = meta["metrics"]["per_lambda"].values() if name.startswith("oat") else [meta["metrics"]]
    assert all(0 <= m["clean_accuracy"] <= 1 for m in per_model) and not model.training
    body = model[1]
    assert type(body).__name__ == ("ConditionedPreActResNet" if name.startswith("oat") else "PreActResNet")
    x = torch.as_tensor(cifar10_env["test_x"][:2].reshape(-1, 3, 32, 32) / 255, dtype=torch.float32)
    loaded, _ = zoo.load_with_meta(name, profile)  # from the cache, same weights
    args = (x, torch.zeros(2)) if name.startswith("oat") else (x,)
    assert torch.equal(loaded(*args), model(*args))


# ------------------------------------------------------------------------------------------ best checkpoint
def test_keep_best_restores_the_epoch_with_the_best_monitor_value():
    torch.manual_seed(0)
    x, y = torch.rand(64, 1, 8, 8), torch.arange(64) % 10
    model = build_model("tiny_cnn", 1, 8, 10, [0.5], [0.25])
    scores, states = iter([0.2, 0.5, 0.5, 0.3]), []

    def monitor(m: nn.Module) -> dict:
        states.append({k: v.clone() for k, v in m.state_dict().items()})
        return {"pgd": next(scores)}

    best = KeepBest(monitor, "pgd")
    history = train(model, x, y, standard_loss, epochs=4, batch_size=16, monitor=best, desc=None)
    assert [r["pgd"] for r in history.monitor] == [0.2, 0.5, 0.5, 0.3]
    assert best.restore(model) == 2  # the first of the tied best epochs
    assert all(torch.equal(v, states[1][k]) for k, v in model.state_dict().items())
    assert not all(torch.equal(v, states[3][k]) for k, v in model.state_dict().items())
    with pytest.raises(KeyError, match="not 'fgsm'"):
        KeepBest(lambda m: {"pgd": 0.1}, "fgsm")(model)


# ------------------------------------------------------------------------------------------ augmentation
def _candidates(image: torch.Tensor, padding: int) -> list[torch.Tensor]:
    padded = torch.nn.functional.pad(image, (padding,) * 4)
    h, w = image.shape[-2:]
    crops = [padded[:, i:i + h, j:j + w] for i in range(2 * padding + 1) for j in range(2 * padding + 1)]
    return crops + [c.flip(-1) for c in crops]


def test_crop_flip_draws_padded_crops_and_flips_reproducibly_without_the_global_stream():
    x = torch.rand(16, 3, 6, 6).contiguous(memory_format=torch.channels_last)
    y = torch.arange(16)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    out, out_y = RandomCropFlip(padding=2, seed=5)(x, y)
    assert torch.equal(torch.random.get_rng_state(), before)  # its own generator
    assert out.shape == x.shape and out.dtype == x.dtype and out.is_contiguous(memory_format=torch.channels_last)
    assert out_y is y
    for image, result in zip(x, out):
        assert any(torch.equal(result, c) for c in _candidates(image, 2))
    again, _ = RandomCropFlip(padding=2, seed=5)(x, y)
    other, _ = RandomCropFlip(padding=2, seed=6)(x, y)
    assert torch.equal(again, out) and not torch.equal(other, out)
    flipped = sum(torch.equal(r, i.flip(-1)) and not torch.equal(r, i) for i, r in
                  zip(x, RandomCropFlip(padding=0, seed=0)(x, y)[0]))
    assert 2 <= flipped <= 14  # about half of 16 (binomial, p = 1/2: outside [2, 14] with probability 0.0005)
    unchanged, _ = RandomCropFlip(padding=0, flip=False)(x, y)
    assert torch.equal(unchanged, x)


def test_augmentations_by_name():
    assert set(AUGMENTS) == {"none", "crop_flip"} and make_augment("none") is None
    assert isinstance(make_augment("crop_flip", seed=3), RandomCropFlip) and make_augment("crop_flip", 3).seed == 3
    with pytest.raises(ValueError, match="unknown augmentation 'flip'"):
        make_augment("flip")


# ------------------------------------------------------------------------------------------ precision
def test_autocast_and_grad_scaler_are_no_ops_off_cuda(monkeypatch):
    model = build_model("tiny_cnn", 1, 8, 10, [0.5], [0.25]).eval()
    x = torch.rand(4, 1, 8, 8)
    for name in ("cpu", torch.device("cpu"), "mps", "meta"):
        assert course_device.amp_dtype(name) is None and course_device.grad_scaler(name) is None
    with course_device.autocast("cpu"):
        out = model(x)
    assert out.dtype == torch.float32 and torch.equal(out, model(x))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert course_device.amp_dtype("cuda") == torch.bfloat16 and course_device.grad_scaler("cuda") is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert course_device.amp_dtype("cuda:0") == torch.float16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDA is not available. Disabling" on this CPU-only machine
        assert isinstance(course_device.grad_scaler("cuda"), torch.amp.GradScaler)
    monkeypatch.setenv(course_device.AMP_ENV, "off")
    assert course_device.amp_dtype("cuda") is None
    assert course_device.memory_format("cuda") == course_device.memory_format("cpu") == torch.channels_last
    assert course_device.memory_format("mps") == torch.contiguous_format


@pytest.fixture(scope="module")
def digit_model():
    """A tiny CNN trained for two epochs on 2,000 quick-profile digits (about a second), and 500 test digits."""
    quick = load_dataset("mnist_subset")
    torch.manual_seed(0)
    model = build_model("tiny_cnn", 1, 28, 10, quick.mean, quick.std)
    train(model, quick.x_train[:2000], quick.y_train[:2000], standard_loss, epochs=2, lr=3e-3, batch_size=64,
          desc=None)
    return model.eval(), quick.x_test[:500], quick.y_test[:500]


def test_evaluation_attacks_run_in_float32_inside_an_autocast_region_and_bfloat16_does_not_weaken_pgd(digit_model):
    """The precision choice: evaluation attacks and certification in float32. ``full_precision`` makes PGD inside a
    bfloat16 autocast region bit-identical to PGD in float32; and PGD whose gradients are computed in bfloat16 (as a
    training step's inner attack may be) finds the same robust accuracy within noise on 500 images."""
    (model, x, y), eps = digit_model, 0.1

    def attack(m, xb, yb):
        return pgd(m, xb, yb, eps, steps=10, generator=torch.Generator().manual_seed(0))

    with course_device.full_precision("cpu"):
        assert model(x[:4]).dtype == torch.float32
    fp32 = attack(model, x, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(x[:4]).dtype == torch.bfloat16  # autocast is really on here
        with course_device.full_precision("cpu"):
            assert torch.equal(attack(model, x, y), fp32)
        bf16 = attack(model, x, y)
    assert (bf16 != fp32).flatten(1).any(1).float().mean() > 0.5  # bfloat16 really changed the attack's path
    hits32, hits16 = (correct(model, adv, y, desc=None).float().numpy() for adv in (fp32, bf16))
    acc32, acc16 = hits32.mean(), hits16.mean()
    assert 0.2 < acc32 < 0.8, acc32  # an informative operating point, far from 0 and 1 (measured: 0.386)
    # the same 500 images attacked twice: the accuracies agree within 3 paired standard errors of the per-image
    # differences (measured: 0.386 and 0.384, one image of 500 differs); 3 independent-run errors would be 0.09
    margin = 3 * paired_standard_error(hits32 - hits16)
    assert abs(acc16 - acc32) <= margin, (acc32, acc16, margin)
