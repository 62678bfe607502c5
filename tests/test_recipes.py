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
    import keras

    from mnistcli.data import load, make_split
    from mnistcli.evaluate import score

    run = ["model=lenet5", "data.limit=3000", "trainer.epochs=2", "schedule=one_cycle"]
    knobs = ["trainer.ema=0.9", "trainer.label_smoothing=0.1"]
    proc = mnist("train", *run, *knobs, "hydra.run.dir=run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    m = read_metrics(tmp_path / "run")
    best = keras.models.load_model(tmp_path / "run" / "checkpoints" / "best.keras", compile=False)
    split = make_split(load(None), limit=3000, name="validation_split", fraction=0.2)
    val = score(best, split.x_val, split.y_val)
    assert val["accuracy"] == pytest.approx(m["val"]["accuracy"], abs=1e-6)
    assert score(best, split.x_test, split.y_test)["accuracy"] == m["test"]["accuracy"]
    last = keras.models.load_model(tmp_path / "run" / "checkpoints" / "last.keras")
    assert last.optimizer.use_ema and last.optimizer.ema_momentum == pytest.approx(0.9)
    assert m["test"]["accuracy"] > 0.8  # (test_resume resumes such a run mid-way, exactly)


@pytest.mark.parametrize(
    "override, words",
    [
        ("trainer.ema=1.5", ["trainer.ema", "(0, 1)"]),
        ("trainer.label_smoothing=-0.1", ["trainer.label_smoothing", "[0, 1)"]),
        ("schedule.warmup=1.0", ["schedule.warmup"]),
    ],
)
def test_recipe_mistakes_are_one_line(override: str, words: list[str], tmp_path: Path) -> None:
    extra = ["schedule=one_cycle"] if override.startswith("schedule.") else []
    proc = mnist("train", *extra, override, cwd=tmp_path)
    assert_user_error(proc, *words)
    assert not (tmp_path / "outputs").exists()
