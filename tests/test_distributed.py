"""Tests of course_lib.distributed: data-parallel training (DDP), the model cache under torchrun, sharded CERTIFY.

Two real processes on this CPU (gloo), launched by torchrun exactly as a user launches them: this file is also the
script they run (``python -m torch.distributed.run --standalone --nproc_per_node=2 tests/test_distributed.py
SCENARIO OUT``, see :func:`_worker` at the bottom). One launch, ``main``, trains, certifies and fills a cache, each
rank saving what it got in OUT; a second, ``crash``, makes rank 1 fail just before rank 0 would write the cache. The
single-process references are computed here, in the pytest process, from the same data, seeds and arguments. A
launch costs a few seconds (three interpreters import torch), hence two launches for the whole file, shared by the
tests through module fixtures. The helpers without a process group are tested in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from course_lib import distributed, zoo
from course_lib.data import MNIST_CLASSES, DataSplit
from course_lib.evaluation import EVALUATIONS, accuracy
from course_lib.models import build_model
from course_lib.profiles import get_profile, with_sizes
from course_lib.recipes import RECIPES, Recipe
from course_lib.smoothing import Smooth
from course_lib.smoothing.distributed import certify_sharded
from course_lib.training import oat_loss, pgd_at_loss, standard_loss, train

ROOT = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------ what both sides compute
STANDARD = {"epochs": 2, "batch_size": 16, "optimizer": "sgd", "lr": 0.05, "seed": 3, "desc": None}
# the sharded certification: 5 images (3 on rank 0, 2 on rank 1), noise seeded per image
CERTIFY = {"n0": 16, "n": 64, "alpha": 0.001, "batch_size": 40, "seed": 7}
SIGMA, CERT_IMAGES = 0.5, 5


def tiny_data() -> DataSplit:
    """133 random 1 x 8 x 8 images labelled by a fixed linear rule (learnable), the same in every process: 101 to
    train (batches of 16: six full ones and a last one of 5, cut 3 + 2 over two ranks), 32 to test."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(133, 1, 8, 8, generator=g)
    y = (x.flatten(1) @ torch.randn(64, 10, generator=g)).argmax(1)
    return DataSplit("tiny", x[:101], y[:101], x[101:], y[101:], MNIST_CLASSES)


def tiny_model(data: DataSplit, arch: str = "tiny_cnn") -> torch.nn.Module:
    torch.manual_seed(1)
    return build_model(arch, 1, 8, 10, data.mean, data.std)


def noisy_classifier() -> torch.nn.Module:
    """A seeded linear classifier whose predictions under noise sigma = 0.5 spread over many classes (the trained
    tiny CNN predicts one class for every noisy input: equal counts would then prove little)."""
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    with torch.no_grad():
        model[1].weight.mul_(3)
    return model.eval()


PROFILE = with_sizes(get_profile("quick"), name="ddp_tiny", arch="tiny_cnn",
                     training={"epochs": 1, "at_epochs": 1, "noise_epochs": 1, "attack_steps": 1, "batch_size": 16},
                     attack={"steps": 2, "images": 16}, smoothing={"n0": 16, "n": 64, "images": CERT_IMAGES})


def clean_evaluation(model, data, profile) -> dict:
    return {"clean_accuracy": accuracy(model, data.x_test, data.y_test)}


def crashing_evaluation(model, data, profile) -> dict:
    """Rank 1 fails after training, at the last moment before rank 0 would write the checkpoint."""
    if distributed.rank() == 1:
        raise RuntimeError("injected failure on rank 1")
    return clean_evaluation(model, data, profile)


TEST_RECIPES = {"ddp_standard": Recipe("ddp_standard", "standard training, SGD (distributed tests)", optimizer="sgd",
                                       lr=0.05, eval="ddp_clean"),
                "ddp_crash": Recipe("ddp_crash", "rank 1 fails in the evaluation (distributed tests)",
                                    eval="ddp_crash")}
TEST_EVALUATIONS = {"ddp_clean": clean_evaluation, "ddp_crash": crashing_evaluation}


def leftovers(folder: Path) -> list[str]:
    """Files of a cache folder other than lock files (checkpoints, evaluations, temporary files)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) if folder.exists() else []


# ------------------------------------------------------------------------------ the launches
def torchrun(scenario: str, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COURSE_DEVICE": "cpu", zoo.CACHE_ENV: str(out / "cache")}
    if sys.platform.startswith("linux") and Path("/sys/class/net/lo").exists():
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # one machine: gloo over the loopback interface
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               __file__, scenario, str(out)]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def main_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp-main")
    run = torchrun("main", out)
    assert run.returncode == 0, f"the 2-process run failed:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"
    return out


@pytest.fixture(scope="module")
def crash_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("ddp-crash")
    return torchrun("crash", out), out


@pytest.fixture
def tiny_zoo(monkeypatch, tmp_path):
    """The test recipes and evaluations registered, tiny data, a temporary cache (all undone after the test)."""
    for name, recipe in TEST_RECIPES.items():
        monkeypatch.setitem(RECIPES, name, recipe)
    for name, evaluation in TEST_EVALUATIONS.items():
        monkeypatch.setitem(EVALUATIONS, name, evaluation)
    monkeypatch.setattr(zoo, "load_data", lambda profile=None: tiny_data())
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "cache"


def states_close(a: dict, b: dict, atol: float = 1e-5) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k].float(), b[k].float(), rtol=1e-4, atol=atol) for k in a)


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def load(out: Path, name: str) -> dict:
    return torch.load(out / name, weights_only=True)


# ------------------------------------------------------------------------------ data-parallel training
@pytest.mark.usefixtures("single_thread")
def test_ddp_training_equals_one_process_on_the_same_global_batches(main_run):
    """Two epochs of SGD over 101 examples in batches of 16 (the last one cut 3 + 2): the weights and the epoch
    losses of the 2-process run equal those of one process, to float tolerance, and the two ranks hold the same
    bytes (DDP applies one averaged gradient everywhere)."""
    data = tiny_data()
    reference = tiny_model(data)
    history = train(reference, data.x_train, data.y_train, standard_loss, **STANDARD)
    ranks = [load(main_run, f"standard-{r}.pt") for r in (0, 1)]
    assert states_equal(ranks[0]["state"], ranks[1]["state"])
    assert not states_equal(ranks[0]["state"], tiny_model(data).state_dict())  # it did train
    assert states_close(ranks[0]["state"], reference.state_dict())
    np.testing.assert_allclose(ranks[0]["loss"], history.loss, rtol=1e-5)
    assert ranks[0]["loss"] == ranks[1]["loss"]  # all-reduced: the same history on every rank


def test_ddp_adversarial_and_batch_norm_training_keep_the_ranks_identical(main_run):
    """PGD-AT with a clean term (two DDP forwards per step, attacks on the unwrapped module) and OAT (``model(x,
    lam)``, attacks through FixedLambda, dual batch norm): the ranks end with the same parameters AND buffers."""
    for name in ("pgd_at", "oat"):
        ranks = [load(main_run, f"{name}-{r}.pt") for r in (0, 1)]
        assert states_equal(ranks[0]["state"], ranks[1]["state"]), name
        assert ranks[0]["loss"] == ranks[1]["loss"] and np.all(np.isfinite(ranks[0]["loss"])), name
    assert any("running_mean" in key for key in ranks[0]["state"])  # the OAT model has batch norm


def test_a_batch_size_that_does_not_split_is_a_clear_error_on_every_rank(main_run):
    for r in (0, 1):
        message = json.loads((main_run / f"errors-{r}.json").read_text())["batch_size"]
        assert "batch size 15 is not divisible by the 2 processes" in message


# ------------------------------------------------------------------------------ sharded certification
@pytest.mark.usefixtures("single_thread")
def test_distributed_certify_equals_the_single_process_certify(main_run):
    single = certify_sharded(Smooth(noisy_classifier(), 10, SIGMA, progress=False), tiny_data().x_test[:CERT_IMAGES],
                             **CERTIFY)
    assert (np.count_nonzero(single.counts, axis=1) > 3).all()  # the noise reaches many classes
    for r in (0, 1):  # every rank got every image's counts, equal to one process's, count for count
        ranks = load(main_run, f"certify-{r}.pt")
        assert np.array_equal(ranks["counts0"].numpy(), single.counts0)
        assert np.array_equal(ranks["counts"].numpy(), single.counts)
    assert (single.counts0.sum(1) == CERTIFY["n0"]).all() and (single.counts.sum(1) == CERTIFY["n"]).all()


@pytest.mark.usefixtures("single_thread")
def test_the_noise_of_an_image_does_not_depend_on_the_other_images():
    """What makes sharding exact: certifying images 3 and 1 alone (with their indices) gives rows 3 and 1 of
    certifying all five, and each row is Smooth.certify_batch of that image with its own seeded generator."""
    data = tiny_data()
    smooth = Smooth(noisy_classifier(), 10, SIGMA, progress=False)
    x = data.x_test[:CERT_IMAGES]
    every = certify_sharded(smooth, x, **CERTIFY)
    part = certify_sharded(smooth, x[[3, 1]], **CERTIFY, indices=[3, 1])
    assert np.array_equal(part.counts, every.counts[[3, 1]]) and np.array_equal(part.counts0, every.counts0[[3, 1]])
    n0, n, alpha, batch_size, seed = (CERTIFY[k] for k in ("n0", "n", "alpha", "batch_size", "seed"))
    one = smooth.certify_batch(x[2:3], n0, n, alpha, batch_size,
                               torch.Generator().manual_seed(distributed.derived_seed(seed, 2)))
    assert np.array_equal(one.counts[0], every.counts[2]) and np.array_equal(one.counts0[0], every.counts0[2])
    with pytest.raises(ValueError, match="distinct image indices"):
        certify_sharded(smooth, x[:2], **CERTIFY, indices=[1, 1])


# ------------------------------------------------------------------------------ the model cache under torchrun
@pytest.mark.usefixtures("single_thread")
def test_zoo_under_torchrun_rank0_writes_once_and_every_rank_gets_the_entry(main_run, tiny_zoo):
    """``zoo.main(["train", ...])`` in two processes: one checkpoint, written by rank 0, equal (to float tolerance)
    to a single-process training of the same recipe; both ranks return rank 0's weights and metadata, also when
    loading it back; the ``certify`` command caches a sharded certification equal to one process's."""
    cache = main_run / "cache"
    key = zoo.recipe_key(TEST_RECIPES["ddp_standard"], PROFILE)
    files = leftovers(cache)
    assert f"ddp_standard--ddp_tiny--{key}.pt" in files and not [f for f in files if f.endswith(".tmp")]
    assert len(files) == 2  # the checkpoint and the cached certification, nothing else
    written = torch.load(cache / f"ddp_standard--ddp_tiny--{key}.pt", weights_only=True)
    ranks = [load(main_run, f"zoo-{r}.pt") for r in (0, 1)]
    for rank in ranks:
        assert states_equal(rank["state"], written["state_dict"]) and rank["meta"] == written["meta"]
    model, meta = zoo.load_with_meta("ddp_standard", PROFILE)  # one process, its own cache: trains
    assert states_close(written["state_dict"], model.state_dict())
    np.testing.assert_allclose(written["meta"]["loss_history"], meta["loss_history"], rtol=1e-5)
    single = zoo.evaluate("ddp_standard", "certify_sharded", PROFILE, sigma=SIGMA, n0=16, n=64, images=CERT_IMAGES)
    model.load_state_dict(written["state_dict"])  # the same weights: the same counts
    same = certify_sharded(Smooth(model, 10, SIGMA, progress=False), tiny_data().x_test[:CERT_IMAGES], 16, 64,
                           0.001, seed=0)
    for r in (0, 1):
        metrics = load(main_run, f"zoo-certify-{r}.pt")
        assert metrics["processes"] == 2 and single["processes"] == 1
        assert metrics["counts"] == same.counts.tolist() and metrics["counts0"] == same.counts0.tolist()
        assert metrics["labels"] == single["labels"]


def test_a_crashed_rank_fails_the_run_with_a_clear_error_and_writes_nothing(crash_run):
    run, out = crash_run
    log = run.stdout + run.stderr
    assert run.returncode != 0
    assert "injected failure on rank 1" in log and "rank 1 of 2: training 'ddp_crash' failed" in log
    assert leftovers(out / "cache") == []  # no checkpoint, no temporary file


# ------------------------------------------------------------------------------ helpers in one process
def test_without_a_process_group_every_helper_is_the_identity(monkeypatch):
    for variable in distributed.TORCHRUN_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert not distributed.launched() and distributed.init_from_env() == torch.device("cpu")
    assert not distributed.is_initialized()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    distributed.barrier()
    assert torch.equal(distributed.all_reduce_sum([1, 2]), torch.tensor([1, 2]))
    assert torch.equal(distributed.all_reduce_mean([1.0, 3.0]), torch.tensor([1.0, 3.0], dtype=torch.float64))
    obj = {"a": 1}
    assert distributed.broadcast_object(obj) is obj and distributed.shard(7) == range(7)
    distributed.teardown()


def test_shards_partition_the_items_into_near_equal_contiguous_blocks():
    for n in range(13):
        for world in range(1, 6):
            blocks = [distributed.shard(n, r, world) for r in range(world)]
            assert [i for b in blocks for i in b] == list(range(n))
            assert max(map(len, blocks)) - min(map(len, blocks)) <= 1
            assert distributed.split_sizes(n, world) == [len(b) for b in blocks]
    with pytest.raises(ValueError, match="rank 2 is not in 0..1"):
        distributed.shard(5, 2, 2)


def test_local_batch_size_splits_the_global_batch_or_says_why_not():
    assert distributed.local_batch_size(128, 4000, 2) == 64  # 4000 = 31 x 128 + 32, 16 of the last per rank
    assert distributed.local_batch_size(16, 8, 2) == 8  # fewer examples than a batch: one short batch
    with pytest.raises(ValueError, match="batch size 15 is not divisible by the 2 processes"):
        distributed.local_batch_size(15, 100, 2)
    with pytest.raises(ValueError, match="last batch of 1 of the 17 examples"):
        distributed.local_batch_size(16, 17, 2)


def test_derived_seeds_are_distinct_32_bit_and_reproducible():
    seeds = [distributed.derived_seed(7, i) for i in range(20_000)]
    assert len(set(seeds)) == len(seeds) and all(0 <= s < 2**32 for s in seeds)
    assert seeds[:5] == [distributed.derived_seed(7, i) for i in range(5)]
    assert distributed.derived_seed(8, 0) != seeds[0] and abs(seeds[1] - seeds[0]) > 1


# ------------------------------------------------------------------------------ the processes' side
def _scenario_main(out: Path) -> None:
    r = distributed.rank()
    data = tiny_data()
    model = tiny_model(data)
    history = train(model, data.x_train, data.y_train, standard_loss, **STANDARD)
    torch.save({"state": model.state_dict(), "loss": history.loss}, out / f"standard-{r}.pt")

    adversarial = {"pgd_at": ("tiny_cnn", pgd_at_loss(eps=0.3, steps=2, ramp_epochs=0, clean_weight=0.5)),
                   "oat": ("oat_tiny_cnn", oat_loss(eps=0.3, steps=1, ramp_epochs=0))}
    for name, (arch, loss) in adversarial.items():
        other = tiny_model(data, arch)
        h = train(other, data.x_train, data.y_train, loss, epochs=1, batch_size=16, seed=5, desc=None)
        torch.save({"state": other.state_dict(), "loss": h.loss}, out / f"{name}-{r}.pt")

    errors = {}
    try:
        train(tiny_model(data), data.x_train, data.y_train, standard_loss, epochs=1, batch_size=15, desc=None)
    except ValueError as err:
        errors["batch_size"] = str(err)
    (out / f"errors-{r}.json").write_text(json.dumps(errors))

    result = certify_sharded(Smooth(noisy_classifier(), 10, SIGMA, progress=False), data.x_test[:CERT_IMAGES],
                             **CERTIFY)
    torch.save({"counts0": torch.from_numpy(result.counts0), "counts": torch.from_numpy(result.counts)},
               out / f"certify-{r}.pt")

    zoo.main(["train", "ddp_standard"])
    model, meta = zoo.load_with_meta("ddp_standard", PROFILE)  # cached now: rank 0 reads, every rank receives
    torch.save({"state": model.state_dict(), "meta": meta}, out / f"zoo-{r}.pt")
    zoo.main(["certify", "ddp_standard", "--sigma", str(SIGMA), "--n0", "16", "--samples", "64",
              "--images", str(CERT_IMAGES)])
    metrics = zoo.evaluate("ddp_standard", "certify_sharded", PROFILE, sigma=SIGMA, n0=16, n=64, images=CERT_IMAGES)
    torch.save(metrics, out / f"zoo-certify-{r}.pt")


def _worker(scenario: str, out: Path) -> None:
    """One rank of a torchrun launch: the test recipes and data as in :func:`tiny_zoo`, then the scenario."""
    torch.set_num_threads(1)
    distributed.init_from_env()
    RECIPES.update(TEST_RECIPES)
    EVALUATIONS.update(TEST_EVALUATIONS)
    zoo.load_data = lambda profile=None: tiny_data()
    zoo.get_profile = lambda name=None: PROFILE
    try:
        if scenario == "main":
            _scenario_main(out)
        else:
            zoo.main(["train", "ddp_crash"])
    finally:
        distributed.teardown()


if __name__ == "__main__":
    _worker(sys.argv[1], Path(sys.argv[2]))
