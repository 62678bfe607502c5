"""The `augment` group: random rotation, zoom and shift inside the tf.data pipeline, training
batches only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conftest import mnist, read_metrics
from mnistcli.augment import augmenter
from mnistcli.data import load
from mnistcli.pipeline import inference, training

NOTEBOOK = {"name": "notebook", "rotation_degrees": 10, "zoom": 0.1, "shift": 0.1,
            "fill_mode": "constant"}  # fmt: skip


def _first_batch(augment: object) -> tuple[np.ndarray, np.ndarray]:
    data = load()
    x, y = data.x_train[:512], data.y_train[:512]
    images, labels = next(iter(training(x, y, 256, seed=0, epochs=1, augment=augment)))
    return images.numpy(), labels.numpy()


def test_augmentation_moves_training_digits_and_keeps_labels() -> None:
    assert augmenter({"name": "none"}, 0) is None
    plain, plain_labels = _first_batch(None)
    moved, labels = _first_batch(augmenter(NOTEBOOK, seed=0))
    np.testing.assert_array_equal(labels, plain_labels)  # the same examples, in the same order
    assert moved.shape == plain.shape == (256, 28, 28, 1)
    assert moved.min() >= 0.0 and moved.max() <= 1.0 + 1e-6
    changed = np.abs(moved - plain).reshape(256, -1).max(axis=1) > 0.1
    assert changed.mean() > 0.9  # nearly every digit is moved
    ink = moved.reshape(256, -1).sum(axis=1) / plain.reshape(256, -1).sum(axis=1)
    assert 0.6 < np.median(ink) < 1.4  # moved and resized a little, not lost or smeared
    assert moved[:, 0, 0, 0].max() < 0.05  # constant fill: the corners stay black


def test_evaluation_batches_are_never_augmented() -> None:
    data = load()
    (images, _), *_ = inference(data.x_test[:100], data.y_test[:100], 100)
    np.testing.assert_allclose(images.numpy()[..., 0], data.x_test[:100] / 255.0, rtol=1e-6)


def test_a_run_with_augmentation(tmp_path: Path) -> None:
    proc = mnist(
        "train", "model=lenet5", "augment=notebook", "data.limit=4000", "trainer.epochs=2",
        "hydra.run.dir=run", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    m = read_metrics(tmp_path / "run")
    assert m["config"]["augment"] == NOTEBOOK
    assert m["status"] == "completed" and m["test"]["accuracy"] > 0.5
