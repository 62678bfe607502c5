"""The `augment` group: random rotation, zoom and shift (and elastic distortion) inside the
tf.data pipeline, training batches only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conftest import mnist, read_metrics
from mnistcli.augment import ElasticDistortion, _bilinear, augmenter
from mnistcli.data import load
from mnistcli.pipeline import inference, training

NOTEBOOK = {"name": "notebook", "rotation_degrees": 10, "zoom": 0.1, "shift": 0.1,
            "fill_mode": "constant"}  # fmt: skip
ELASTIC = {**NOTEBOOK, "name": "elastic", "elastic_alpha": 34, "elastic_sigma": 4}


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


def test_elastic_distortion_moves_each_pixel_its_own_smooth_way() -> None:
    field = np.asarray(ElasticDistortion(34, 4, seed=0).displacement(256, 28, 28))
    assert field.shape == (256, 2, 28, 28)
    inner = field[:, :, 8:20, 8:20]  # away from the edges, where the smoothing sees only zeros
    assert 1.1 < np.sqrt((inner**2).mean()) < 1.7  # Simard's alpha 34, sigma 4: about 1.4 px
    # down and across drawn apart (Keras's RandomElasticTransform: correlation 1, diagonals only)
    assert abs(np.corrcoef(inner[:, 0].ravel(), inner[:, 1].ravel())[0, 1]) < 0.1
    # smooth: neighbouring pixels move nearly alike, pixels 10 apart nearly independently
    across = field[:, 0, 8:20]
    assert np.corrcoef(across[..., :-1].ravel(), across[..., 1:].ravel())[0, 1] > 0.9
    assert abs(np.corrcoef(across[..., :-10].ravel(), across[..., 10:].ravel())[0, 1]) < 0.4
    # a different seed, a different field; alpha 0, none at all
    assert not np.allclose(field, np.asarray(ElasticDistortion(34, 4, 1).displacement(256, 28, 28)))
    assert not np.asarray(ElasticDistortion(0, 4, seed=0).displacement(2, 28, 28)).any()


def test_bilinear_reads_between_pixels_and_black_outside() -> None:
    images = np.random.default_rng(0).uniform(size=(3, 28, 28)).astype("float32")
    rows, columns = np.indices((28, 28)).astype("float32")
    rows, columns = np.broadcast_to(rows, images.shape), np.broadcast_to(columns, images.shape)
    np.testing.assert_array_equal(_bilinear(images, rows, columns), images)
    right = np.asarray(_bilinear(images, rows, columns + 1))  # each reads its right neighbour
    np.testing.assert_array_equal(right[..., :-1], images[..., 1:])
    assert not right[..., -1].any()  # past the right edge: black
    half = np.asarray(_bilinear(images, rows + 0.5, columns))
    np.testing.assert_allclose(half[:, :-1], (images[:, :-1] + images[:, 1:]) / 2, rtol=1e-6)


def test_elastic_augmentation_moves_digits_and_keeps_them_whole() -> None:
    plain, plain_labels = _first_batch(None)
    moved, labels = _first_batch(augmenter({**ELASTIC, "rotation_degrees": 0, "zoom": 0,
                                            "shift": 0}, seed=0))  # fmt: skip
    np.testing.assert_array_equal(labels, plain_labels)
    changed = np.abs(moved - plain).reshape(256, -1).max(axis=1) > 0.1
    assert changed.mean() > 0.9
    ink = moved.reshape(256, -1).sum(axis=1) / plain.reshape(256, -1).sum(axis=1)
    assert 0.9 < np.median(ink) < 1.1  # bent, not shrunk, grown or cut off
    assert moved.min() >= 0.0 and moved.max() <= 1.0 + 1e-6
    assert moved[:, 0, 0, 0].max() < 0.05


def test_evaluation_batches_are_never_augmented() -> None:
    data = load()
    (images, _), *_ = inference(data.x_test[:100], data.y_test[:100], 100)
    np.testing.assert_allclose(images.numpy()[..., 0], data.x_test[:100] / 255.0, rtol=1e-6)


def test_a_run_with_augmentation(tmp_path: Path) -> None:
    proc = mnist(
        "train", "model=lenet5", "augment=elastic", "data.limit=4000", "trainer.epochs=2",
        "hydra.run.dir=run", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    m = read_metrics(tmp_path / "run")
    assert m["config"]["augment"] == ELASTIC  # the notebook's layers and the elastic one
    assert m["status"] == "completed" and m["test"]["accuracy"] > 0.5
