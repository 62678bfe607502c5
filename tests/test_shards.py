"""trainer.shards: a batch's step split into shards (mnistcli/shards.py) is the batch's own step."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import composed, mnist, model_from, read_metrics
from mnistcli.data import load
from mnistcli.runtime import usable_cpus


def _twins(k: int, *overrides: str) -> tuple:
    """Two models (LeNet-5 with an L2 term unless `overrides` name another, so the
    regularization loss is counted once) with the same weights, compiled alike; the second's
    steps run over k shards."""
    import keras

    from mnistcli.shards import shard_steps

    models = [model_from("model=lenet5", "model.l2=0.01", *overrides) for _ in range(2)]
    models[1].set_weights(models[0].get_weights())
    for model in models:
        model.compile(
            optimizer=keras.optimizers.SGD(0.5),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    return models[0], shard_steps(models[1], k)


BN = ["model.l2=0", "model=lenet5_bn"]  # in float64 Keras's L2 term fails (a float32 loss)


@pytest.mark.parametrize(
    ("batch", "k", "dtype", "overrides"),
    [(32, 2, "float32", []), (33, 2, "float32", []), (33, 3, "float32", []),
     (1, 2, "float32", []), (64, 2, "float64", BN), (33, 3, "float64", BN),
     (1, 2, "float64", BN), (65, 2, "float64", [*BN, "model.batchnorm=keras"]),
     (64, 2, "float64", ["model.l2=0", "model=strided_cnn"])],
)  # fmt: skip
def test_a_sharded_step_is_the_batch_step(
    batch: int, k: int, dtype: str, overrides: list[str]
) -> None:
    """Same loss, accuracy, predictions and updated weights as Keras's step, for a batch that the
    shards split evenly, unevenly, and one that leaves a shard empty; with batch normalization
    (either layer), the batch's statistics: the same moving means and variances too.

    Batch-norm nets in float64 (their softmax layer stays float32): in float32, rounding alone
    moves their step by up to 10% of its size on weights whose gradient is near zero, such as a
    bias just before batch norm, whichever way the batch is summed."""
    import keras

    digits = load(None)  # the shipped copy of MNIST
    x = digits.x_train[:batch, :, :, None].astype(dtype) / 255
    y = digits.y_train[:batch]
    keras.mixed_precision.set_global_policy(dtype)
    try:
        whole, sharded = _twins(k, *overrides)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    initial = whole.get_weights()  # moving statistics included
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
     (["model=lenet5_bn"], 2), (["model=strided_cnn"], 2), (["model=ffnn"], 1),
     (["device=gpu"], 1), (["runtime.threads=1"], 1), (["runtime.logical_cpus=2"], 1),
     (["runtime.threads=4"], 4), (["trainer.shards=3"], 3), (["trainer.shards=1"], 1)],
)  # fmt: skip
def test_auto_shards_where_they_pay(monkeypatch, overrides: list[str], shards: int) -> None:
    """auto: a shard per thread on a CPU, for a model that XLA does not compile (model=lenet5
    unless named); else 1."""
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
    """The first job sets one thread per op for its shards; the XLA-compiled dense net after it
    trains whole on those pools, and the LeNet-5 after that splits again."""
    proc = mnist(
        "train", "-m", "model=lenet5,ffnn,lenet5", "data.limit=640", "trainer.epochs=1",
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


def test_splittable_where_the_split_step_normalizes_each_batch_norm_layer() -> None:
    """Shards take a batch-norm layer's statistics over the whole batch where the step walks the
    layers (a Sequential model's own) and normalizes them itself (no renorm)."""
    import keras

    from mnistcli.shards import splittable

    def sequential(*layers: keras.layers.Layer) -> keras.Sequential:
        return keras.Sequential([keras.Input((28, 28, 1)), *layers])

    assert splittable(model_from("model=lenet5_bn"))
    assert splittable(model_from("model=cnn_v2"))  # Keras's own layer
    assert splittable(sequential(keras.layers.Flatten()))  # no batch norm
    assert not splittable(sequential(sequential(keras.layers.BatchNormalization())))
    assert not splittable(sequential(keras.layers.BatchNormalization(renorm=True)))


def test_shards_are_refused_where_batch_norm_would_see_each_shard(monkeypatch) -> None:
    """trainer.shards=2 for a model whose batch norm the shards cannot take over the whole batch
    is a user error naming the fix; auto leaves such a model whole. (No shipped model is one, so
    the probe is made to build one.)"""
    import keras

    from mnistcli import shards as module
    from mnistcli.errors import UserError

    nested = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.Sequential([keras.layers.BatchNormalization()])]
    )
    monkeypatch.setattr(module, "probe", lambda model_cfg: nested)
    monkeypatch.setattr(module, "usable_cpus", lambda: CPUS)
    monkeypatch.setattr(module, "thread_pools_set", lambda: False)
    with pytest.raises(UserError, match="lenet5_bn has batch normalization.*trainer.shards=1"):
        module.wanted(composed("model=lenet5_bn", "trainer.shards=2"))
    assert module.wanted(composed("model=lenet5_bn")) == 1
