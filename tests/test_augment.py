"""The `augment` group: random rotation, zoom and shift, by Keras's layers or in one resampling
(and elastic distortion), inside the tf.data pipeline, training batches only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import mnist, read_metrics
from mnistcli.augment import RandomWarp, augmenter, bilinear
from mnistcli.data import load
from mnistcli.pipeline import inference, training

NOTEBOOK = {"name": "notebook", "rotation_degrees": 10, "zoom": 0.1, "keep_aspect": True,
            "shift": 0.1, "fill_mode": "constant"}  # fmt: skip
ONE_PASS = {**NOTEBOOK, "name": "one_pass", "one_pass": True, "elastic_alpha": 0,
            "elastic_sigma": 4}  # fmt: skip
ELASTIC = {**ONE_PASS, "name": "elastic", "elastic_alpha": 34}
STILL = {"rotation_degrees": 0, "zoom": 0, "shift": 0}


def sharpness(images: np.ndarray) -> float:
    """Summed steps between neighbouring pixels per unit of ink: less when blurred."""
    return float(np.abs(np.diff(images, axis=2)).sum() / images.sum())


def _first_batch(augment: object) -> tuple[np.ndarray, np.ndarray]:
    data = load()
    x, y = data.x_train[:512], data.y_train[:512]
    images, labels = next(iter(training(x, y, 256, seed=0, epochs=1, augment=augment)))
    return images.numpy(), labels.numpy()


@pytest.mark.parametrize("settings", [NOTEBOOK, ONE_PASS], ids=["notebook", "one_pass"])
def test_augmentation_moves_training_digits_and_keeps_labels(settings: dict) -> None:
    assert augmenter({"name": "none"}, 0) is None
    plain, plain_labels = _first_batch(None)
    moved, labels = _first_batch(augmenter(settings, seed=0))
    np.testing.assert_array_equal(labels, plain_labels)  # the same examples, in the same order
    assert moved.shape == plain.shape == (256, 28, 28, 1)
    assert moved.min() >= 0.0 and moved.max() <= 1.0 + 1e-6
    changed = np.abs(moved - plain).reshape(256, -1).max(axis=1) > 0.1
    assert changed.mean() > 0.9  # nearly every digit is moved
    ink = moved.reshape(256, -1).sum(axis=1) / plain.reshape(256, -1).sum(axis=1)
    assert 0.6 < np.median(ink) < 1.4  # moved and resized a little, not lost or smeared
    assert moved[:, 0, 0, 0].max() < 0.05  # constant fill: the corners stay black


def test_one_pass_blurs_less_than_three_layers_and_still_is_still() -> None:
    """Keras's three layers resample three times; one pass once, as ImageDataGenerator did."""
    plain, _ = _first_batch(None)
    layers, _ = _first_batch(augmenter(NOTEBOOK, seed=0))
    once, _ = _first_batch(augmenter(ONE_PASS, seed=0))
    assert sharpness(layers) < sharpness(once) - 0.02  # measured: 0.415 against 0.462
    assert sharpness(once) > 0.9 * sharpness(plain)  # 0.492
    unmoved, _ = _first_batch(augmenter({**ONE_PASS, **STILL}, seed=0))
    np.testing.assert_array_equal(unmoved, plain)  # no turn, zoom or shift: every pixel in place


@pytest.mark.parametrize("settings", [NOTEBOOK, ELASTIC], ids=["notebook", "elastic"])
def test_a_seed_gives_the_same_augmented_batches(settings: dict) -> None:
    """Two batches mapped at once used to read the layers' random state at once: a seed drew
    different batches from one run to the next."""
    data = load()
    x, y = data.x_train[:1920], data.y_train[:1920]

    def batches(seed: int) -> list[np.ndarray]:
        pipeline = training(x, y, 64, seed=seed, epochs=1, augment=augmenter(settings, seed))
        return [images.numpy() for images, _ in pipeline]

    first, again, other = batches(0), batches(0), batches(1)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0])


@pytest.mark.parametrize("settings", [NOTEBOOK, {**ELASTIC, "keep_aspect": False}],
                         ids=["notebook", "elastic"])  # fmt: skip
def test_a_resumed_run_draws_what_the_uninterrupted_run_drew(settings: dict) -> None:
    """Each batch's draws are keyed by its number in the run, not by how many came before in
    this process (before: a run resumed at epoch 3 drew epoch 1's transformations again)."""
    data = load()
    x, y = data.x_train[:640], data.y_train[:640]  # 5 batches of 128 an epoch

    def batches(initial_epoch: int) -> list[np.ndarray]:
        augment = augmenter(settings, seed=7)
        pipeline = training(x, y, 128, seed=7, epochs=3, initial_epoch=initial_epoch,
                            augment=augment)  # fmt: skip
        return [images.numpy() for images, _ in pipeline]

    whole, resumed = batches(0), batches(2)
    assert len(whole) == 15 and len(resumed) == 5
    assert all(np.array_equal(a, b) for a, b in zip(resumed, whole[10:], strict=True))
    unmoved = [images.numpy() for images, _ in training(x, y, 128, seed=7, epochs=3)]
    assert not np.array_equal(resumed[0], unmoved[10])  # and they are transformed


def centroids(images: np.ndarray) -> np.ndarray:
    """Each image's centre of ink, (row, column)."""
    grid = np.indices((28, 28)).reshape(2, 1, 28, 28)
    ink = images[..., 0][None]
    return ((grid * ink).sum(axis=(2, 3)) / ink.sum(axis=(2, 3))).T


def test_one_pass_turns_about_the_centre_and_shifts_up_to_a_tenth() -> None:
    plain, _ = _first_batch(None)
    shifted, _ = _first_batch(augmenter({**ONE_PASS, **STILL, "shift": 0.1}, seed=0))
    moved = centroids(shifted) - centroids(plain)
    assert np.abs(moved).max() < 2.8 + 0.3  # 10% of 28 pixels, each way (+ what the edge cuts)
    assert (np.abs(moved) > 1.5).mean() > 0.3  # spread over the range, not all near 0
    turned, _ = _first_batch(augmenter({**ONE_PASS, **STILL, "rotation_degrees": 10}, seed=0))
    assert np.median(np.abs(centroids(turned) - centroids(plain))) < 0.5  # turned in place
    assert np.abs(turned - plain).max() > 0.3  # yet turned


def spreads(images: np.ndarray) -> np.ndarray:
    """Each image's spread of ink down its rows and along its columns (standard deviations)."""
    grid = np.indices((28, 28)).reshape(2, 1, 28, 28).astype("float64")
    ink = images[..., 0][None] / images[..., 0].sum(axis=(1, 2))[None, :, None, None]
    mean = (grid * ink).sum(axis=(2, 3), keepdims=True)
    return np.sqrt((((grid - mean) ** 2) * ink).sum(axis=(2, 3))).T


@pytest.mark.parametrize("settings", [NOTEBOOK, ONE_PASS], ids=["notebook", "one_pass"])
def test_keep_aspect_false_zooms_each_axis_by_its_own_draw(settings: dict) -> None:
    """ImageDataGenerator(zoom_range=0.1) drew the height's and the width's zoom apart."""
    plain, _ = _first_batch(None)

    def stretch(keep_aspect: bool) -> np.ndarray:  # how much each image grew down and across
        zoomed = {**settings, **STILL, "zoom": 0.2, "keep_aspect": keep_aspect}
        moved, _ = _first_batch(augmenter(zoomed, seed=0))
        return np.log(spreads(moved) / spreads(plain))

    kept, apart = stretch(True), stretch(False)
    assert np.abs(kept).mean() > 0.05 and np.abs(apart).mean() > 0.05  # both zoom
    assert np.corrcoef(kept.T)[0, 1] > 0.95  # one zoom: down and across grow alike
    assert abs(np.corrcoef(apart.T)[0, 1]) < 0.3  # two: each axis its own
    kept_default, _ = _first_batch(augmenter(settings, seed=0))
    without = {k: v for k, v in settings.items() if k != "keep_aspect"}  # an older run's config
    np.testing.assert_array_equal(_first_batch(augmenter(without, seed=0))[0], kept_default)


def test_elastic_distortion_moves_each_pixel_its_own_smooth_way() -> None:
    def field(alpha: float, seed: int) -> np.ndarray:
        warp = RandomWarp(**STILL, elastic_alpha=alpha, elastic_sigma=4, seed=seed)
        return np.asarray(warp.displacement(256, 28, 28))

    simard = field(34, seed=0)
    assert simard.shape == (256, 2, 28, 28)
    inner = simard[:, :, 8:20, 8:20]  # away from the edges, where the smoothing sees only zeros
    assert 1.1 < np.sqrt((inner**2).mean()) < 1.7  # Simard's alpha 34, sigma 4: about 1.4 px
    # down and across drawn apart (Keras's RandomElasticTransform: correlation 1, diagonals only)
    assert abs(np.corrcoef(inner[:, 0].ravel(), inner[:, 1].ravel())[0, 1]) < 0.1
    # smooth: neighbouring pixels move nearly alike, pixels 10 apart nearly independently
    across = simard[:, 0, 8:20]
    assert np.corrcoef(across[..., :-1].ravel(), across[..., 1:].ravel())[0, 1] > 0.9
    assert abs(np.corrcoef(across[..., :-10].ravel(), across[..., 10:].ravel())[0, 1]) < 0.4
    assert not np.allclose(simard, field(34, seed=1))  # a different seed, a different field
    assert not field(0, seed=0).any()


def test_bilinear_reads_between_pixels_and_black_outside() -> None:
    images = np.random.default_rng(0).uniform(size=(3, 28, 28)).astype("float32")
    rows, columns = np.indices((28, 28)).astype("float32")
    rows, columns = np.broadcast_to(rows, images.shape), np.broadcast_to(columns, images.shape)
    np.testing.assert_array_equal(bilinear(images, rows, columns), images)
    right = np.asarray(bilinear(images, rows, columns + 1))  # each reads its right neighbour
    np.testing.assert_array_equal(right[..., :-1], images[..., 1:])
    assert not right[..., -1].any()  # past the right edge: black
    half = np.asarray(bilinear(images, rows + 0.5, columns))
    np.testing.assert_allclose(half[:, :-1], (images[:, :-1] + images[:, 1:]) / 2, rtol=1e-6)


def test_elastic_augmentation_moves_digits_and_keeps_them_whole() -> None:
    plain, plain_labels = _first_batch(None)
    moved, labels = _first_batch(augmenter({**ELASTIC, **STILL}, seed=0))
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


@pytest.mark.parametrize("settings", [NOTEBOOK, ELASTIC], ids=["notebook", "elastic"])
def test_augmentation_stays_float32_under_mixed_precision(settings: dict) -> None:
    """A run in mixed_bfloat16 (trainer.precision; auto on some CPUs) augments as one in
    float32: the layers are the input pipeline's, not the model's."""
    import keras

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed, _ = _first_batch(augmenter(settings, seed=0))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    plain, _ = _first_batch(augmenter(settings, seed=0))
    assert mixed.dtype == plain.dtype == np.float32
    np.testing.assert_array_equal(mixed, plain)


def test_a_run_with_augmentation(tmp_path: Path) -> None:
    proc = mnist(
        "train", "model=lenet5", "augment=elastic", "data.limit=4000", "trainer.epochs=2",
        "hydra.run.dir=run", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    m = read_metrics(tmp_path / "run")
    assert m["config"]["augment"] == ELASTIC
    assert m["status"] == "completed" and m["test"]["accuracy"] > 0.5
