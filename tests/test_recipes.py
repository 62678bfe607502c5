"""The training-recipe knobs of the improved presets: the one-cycle schedule, label smoothing and
weight averaging (trainer.ema), the last through a real run whose checkpoint must hold exactly
the weights that were validated."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_user_error, mnist, read_metrics


def test_one_cycle_climbs_then_anneals() -> None:
    from mnistcli.optimizers import learning_rate

    schedule = {"name": "one_cycle", "warmup": 0.3, "div_factor": 25.0, "final_factor": 0.0}
    lr = learning_rate(0.01, schedule, total_steps=1000)
    at = {step: float(lr(step)) for step in (0, 150, 300, 650, 1000)}
    assert math.isclose(at[0], 0.01 / 25, rel_tol=1e-5)
    assert math.isclose(at[150], (0.01 / 25 + 0.01) / 2, rel_tol=1e-4)  # linear climb
    assert math.isclose(at[300], 0.01, rel_tol=1e-5)  # the peak
    assert math.isclose(at[650], 0.005, rel_tol=1e-4)  # half way down the cosine
    assert at[1000] < 1e-9


def test_label_smoothing_is_keras_one_hot_smoothing() -> None:
    import keras

    from mnistcli.losses import training_loss

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=8).astype("float32")
    labels = rng.integers(0, 10, size=8)
    smoothed = training_loss(0.1)(labels, probs)
    expected = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(
        np.eye(10, dtype="float32")[labels], probs
    )
    np.testing.assert_allclose(float(smoothed), float(expected), rtol=1e-6)
    plain = keras.losses.SparseCategoricalCrossentropy()(labels, probs)
    assert float(smoothed) != pytest.approx(float(plain))
    assert training_loss(0.0) == "sparse_categorical_crossentropy"


def test_averaged_weights_are_validated_checkpointed_and_tested(tmp_path: Path) -> None:
    from mnistcli.data import load, make_split
    from mnistcli.evaluate import load_checkpoint, score

    run = ["model=lenet5", "data.limit=3000", "trainer.epochs=2", "schedule=one_cycle"]
    # float32: a checkpoint is scored in float32, while a bfloat16 run validates in bfloat16
    knobs = ["trainer.ema=0.9", "trainer.label_smoothing=0.1", "trainer.precision=float32"]
    proc = mnist("train", *run, *knobs, "hydra.run.dir=run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    m = read_metrics(tmp_path / "run")
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.keras")
    split = make_split(load(None), limit=3000, name="validation_split", fraction=0.2)
    val = score(best, split.x_val, split.y_val)
    assert val["accuracy"] == pytest.approx(m["val"]["accuracy"], abs=1e-6)
    assert score(best, split.x_test, split.y_test)["accuracy"] == m["test"]["accuracy"]
    last = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.keras", with_optimizer=True)
    assert last.optimizer.use_ema and last.optimizer.ema_momentum == pytest.approx(0.9)
    assert m["test"]["accuracy"] > 0.8  # (test_resume resumes such a run mid-way, exactly)


def test_batch_norm_statistics_are_those_of_the_given_batches_with_dropout_off() -> None:
    import keras

    from mnistcli.batchnorm import recompute

    x = np.random.default_rng(0).normal(3.0, 2.0, size=(1000, 4)).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dropout(0.5), keras.layers.BatchNormalization(),
         keras.layers.Dense(3), keras.layers.BatchNormalization(momentum=0.9)]
    )  # fmt: skip
    first, second = model.layers[1], model.layers[3]
    recompute(model, [x[:400], x[400:800], x[800:]])
    # batches of 400, 400 and 200 pooled: exactly the whole set's mean and (biased) variance, of
    # the inputs as they are (dropout off), and the next layer's of its normalised inputs
    np.testing.assert_allclose(first.moving_mean.numpy(), x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(first.moving_variance.numpy(), x.var(axis=0), rtol=1e-4)
    h = model.layers[2](model.layers[1](x, training=False))
    np.testing.assert_allclose(second.moving_mean.numpy(), h.numpy().mean(axis=0), atol=1e-4)
    assert (first.momentum, second.momentum) == (0.99, 0.9)  # put back


def test_averaged_weights_get_batch_norm_statistics_of_their_own(tmp_path: Path) -> None:
    """lenet5_bn with weight averaging: the checkpoint's batch-norm statistics are those of its
    (averaged) weights over the first trainer.ema_bn_images training images, and it scores
    exactly the validation accuracy recorded; with ema_bn_images=0 they are the raw weights'."""
    from mnistcli import pipeline
    from mnistcli.batchnorm import batch_norm_layers, recompute
    from mnistcli.data import load, make_split
    from mnistcli.evaluate import load_checkpoint, score

    run = ["model=lenet5_bn", "data.limit=2000", "trainer.epochs=2", "trainer.ema=0.9"]
    split = make_split(load(None), limit=2000, name="validation_split", fraction=0.2)
    stats = {}
    for n in (500, 0):
        proc = mnist(
            "train", *run, f"trainer.ema_bn_images={n}", f"hydra.run.dir={n}", cwd=tmp_path
        )
        assert proc.returncode == 0, proc.stderr
        best = load_checkpoint(tmp_path / str(n) / "checkpoints" / "best.keras")
        val = score(best, split.x_val, split.y_val)["accuracy"]
        assert val == pytest.approx(read_metrics(tmp_path / str(n))["val"]["accuracy"], abs=1e-6)
        stats[n] = [layer.moving_mean.numpy() for layer in batch_norm_layers(best)]
        recompute(best, pipeline.inference(split.x_train[:500], split.y_train[:500], 1000))
        stats[f"recomputed {n}"] = [layer.moving_mean.numpy() for layer in batch_norm_layers(best)]
    for ours, again in zip(stats[500], stats["recomputed 500"], strict=True):
        np.testing.assert_allclose(ours, again, rtol=1e-4, atol=1e-5)
    assert not all(
        np.allclose(raw, again, rtol=1e-3)
        for raw, again in zip(stats[0], stats["recomputed 0"], strict=True)
    )


@pytest.mark.parametrize(
    "override, words",
    [
        ("trainer.ema=1.5", ["trainer.ema", "(0, 1)"]),
        ("trainer.label_smoothing=-0.1", ["trainer.label_smoothing", "[0, 1)"]),
        ("trainer.ema_bn_images=-1", ["trainer.ema_bn_images", ">= 0"]),
        ("schedule.warmup=1.0", ["schedule.warmup"]),
    ],
)
def test_recipe_mistakes_are_one_line(override: str, words: list[str], tmp_path: Path) -> None:
    extra = ["schedule=one_cycle"] if override.startswith("schedule.") else []
    proc = mnist("train", *extra, override, cwd=tmp_path)
    assert_user_error(proc, *words)
    assert not (tmp_path / "outputs").exists()
