"""trainer.shards: a batch's step split into shards (mnistcli/shards.py) is the batch's own step."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_user_error, composed, mnist, model_from, read_metrics
from mnistcli.data import load
from mnistcli.runtime import usable_cpus


def _twins(k: int) -> tuple:
    """Two LeNet-5s (with an L2 term, so the regularization loss is counted once) with the same
    weights, compiled alike; the second's steps run over k shards."""
    import keras

    from mnistcli.shards import shard_steps

    models = [model_from("model=lenet5", "model.l2=0.01") for _ in range(2)]
    models[1].set_weights(models[0].get_weights())
    for model in models:
        model.compile(
            optimizer=keras.optimizers.SGD(0.5),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    return models[0], shard_steps(models[1], k)


@pytest.mark.parametrize(("batch", "k"), [(32, 2), (33, 2), (33, 3), (1, 2)])
def test_a_sharded_step_is_the_batch_step(batch: int, k: int) -> None:
    """Same loss, accuracy, predictions and updated weights as Keras's step, for a batch that the
    shards split evenly, unevenly, and one that leaves a shard empty."""
    digits = load(None)  # the shipped copy of MNIST
    x = digits.x_train[:batch, :, :, None].astype(np.float32) / 255
    y = digits.y_train[:batch]
    whole, sharded = _twins(k)
    initial = whole.get_weights()
    assert np.allclose(sharded.predict(x, verbose=0), whole.predict(x, verbose=0), atol=1e-6)
    assert np.allclose(
        sharded.evaluate(x, y, verbose=0), whole.evaluate(x, y, verbose=0), rtol=1e-5
    )
    assert np.allclose(sharded.train_on_batch(x, y), whole.train_on_batch(x, y), rtol=1e-5)
    moved = 0.0
    for start, a, b in zip(initial, whole.get_weights(), sharded.get_weights(), strict=True):
        assert np.allclose(b, a, rtol=1e-4, atol=1e-6)
        moved = max(moved, float(np.abs(a - start).max()))
    assert moved > 1e-3  # the step did move the weights


CPUS = 2


@pytest.mark.parametrize(
    ("overrides", "shards"),
    [([], 2), (["model=lenet5_classic"], 2), (["model=ffnn", "trainer.jit_compile=false"], 2),
     (["model=lenet5_bn"], 1), (["model=strided_cnn"], 1), (["model=ffnn"], 1),
     (["device=gpu"], 1), (["runtime.threads=1"], 1), (["runtime.logical_cpus=2"], 1),
     (["runtime.threads=4"], 4), (["trainer.shards=3"], 3), (["trainer.shards=1"], 1)],
)  # fmt: skip
def test_auto_shards_where_they_pay(monkeypatch, overrides: list[str], shards: int) -> None:
    """auto: a shard per thread on a CPU, for a model with no batch norm that XLA does not
    compile (model=lenet5 unless named); else 1."""
    from mnistcli import shards as module

    monkeypatch.setattr(module, "usable_cpus", lambda: CPUS)
    monkeypatch.setattr(module, "thread_pools_set", lambda: False)
    assert module.wanted(composed("model=lenet5", *overrides)) == shards


@pytest.mark.parametrize(
    ("started", "per_op", "shards"), [(True, 0, 1), (True, 2, 1), (True, 1, 2), (False, 2, 2)]
)
def test_auto_shards_keep_to_the_thread_pools_an_earlier_job_set(
    monkeypatch, started: bool, per_op: int, shards: int
) -> None:
    """TensorFlow keeps the thread pools of a process's first job: a later job (a sweep's, in one
    process) splits its batches only where those give each op one thread."""
    import tensorflow as tf

    from mnistcli import shards as module

    monkeypatch.setattr(module, "usable_cpus", lambda: CPUS)
    monkeypatch.setattr(module, "thread_pools_set", lambda: started)
    monkeypatch.setattr(tf.config.threading, "get_intra_op_parallelism_threads", lambda: per_op)
    assert module.wanted(composed("model=lenet5")) == shards


@pytest.mark.skipif(usable_cpus() < 2, reason="auto splits nothing on one core")
def test_a_sweep_in_one_process_splits_where_its_thread_pools_allow(tmp_path: Path) -> None:
    """The first job sets one thread per op for its shards; the batch-norm job after it trains
    whole on those pools, and the LeNet-5 after that splits again."""
    proc = mnist(
        "train", "-m", "model=lenet5,lenet5_bn,lenet5", "data.limit=640", "trainer.epochs=1",
        "hydra.sweep.dir=sweep", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    devices = [read_metrics(tmp_path / "sweep" / str(job))["device"] for job in range(3)]
    cores = usable_cpus()
    assert [d["shards"] for d in devices] == [cores, 1, cores]
    assert [d["threads"] for d in devices] == [cores] * 3


def test_looking_at_the_model_leaves_tensorflow_unstarted_and_names_alone() -> None:
    """The probe builds the model aside: TensorFlow's thread pools can still be set after it, and
    the run's own model gets the usual layer names."""
    script = (
        "import tensorflow as tf; from omegaconf import OmegaConf; "
        "from mnistcli.models import build_model, probe; "
        "probe(OmegaConf.create({'name': 'lenet5', 'l2': 0.0})); "
        "tf.config.threading.set_intra_op_parallelism_threads(1); "
        "print([layer.name for layer in build_model('lenet5').layers][0])"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["conv2d"]


def test_shards_are_refused_for_a_model_with_batch_norm(tmp_path: Path) -> None:
    """Its statistics would be each shard's: one line, exit code 2, the run recorded as failed."""
    proc = mnist("train", "model=lenet5_bn", "trainer.shards=2", "hydra.run.dir=run", cwd=tmp_path)
    assert_user_error(proc, "lenet5_bn has batch normalization", "trainer.shards=1")
    assert read_metrics(tmp_path / "run")["status"] == "failed"
