"""mnistcli.layers.BatchNormalization computes what Keras's layer computes (outputs, gradients,
moving statistics), builds from the configs, and round-trips through a safe-mode checkpoint;
mnistcli.layers.Dropout drops what Keras's drops outside XLA, and drops at its rate under XLA."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import model_from
from mnistcli import checks
from mnistcli.layers import BatchNormalization, Dropout, positions_per_row
from mnistcli.models import BATCHNORMS, BUILDERS


@pytest.mark.parametrize(
    "positions, channels, k",
    [(576, 6, 36), (144, 6, 36), (64, 16, 16), (16, 16, 16), (784, 32, 8), (1, 120, 1),
     (49, 32, 7), (25, 300, 1), (7, 1, 7)],
)  # fmt: skip
def test_positions_per_row_divide_the_image_and_fit_a_row(positions, channels, k) -> None:
    assert positions_per_row(positions, channels) == k


def _train_step(layer: keras.layers.Layer, x: tf.Tensor, weights: tf.Tensor) -> list[np.ndarray]:
    """The layer's training output, the gradients of a weighted sum of it with respect to the
    input, gamma and beta, its moving statistics after the step, and its inference output."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        total = tf.reduce_sum(tf.cast(y, "float32") * weights)
    grads = tape.gradient(total, [x, layer.gamma, layer.beta])
    inference = layer(x, training=False)
    return [np.asarray(t, "float32") for t in (y, *grads, layer.moving_mean,
                                               layer.moving_variance, inference)]  # fmt: skip


@pytest.mark.parametrize("shape", [(64, 24, 24, 6), (64, 8, 8, 16), (64, 120), (7, 5, 5, 3)])
def test_the_same_numbers_as_kerass_layer(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(1.0, 3.0, shape), "float32")
    weights = tf.constant(rng.normal(size=shape), "float32")
    gamma, beta = rng.uniform(0.5, 1.5, shape[-1]), rng.uniform(-1, 1, shape[-1])
    results = []
    for cls in (keras.layers.BatchNormalization, BatchNormalization):
        layer = cls(momentum=0.9)
        layer.build(shape)
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
        results.append(_train_step(layer, x, weights))
    names = ["output", "input grad", "gamma grad", "beta grad", "moving mean", "moving var",
             "inference output"]  # fmt: skip
    for name, keras_own, ours in zip(names, *results, strict=True):
        np.testing.assert_allclose(ours, keras_own, rtol=2e-5, atol=2e-5 * np.abs(keras_own).max(),
                                   err_msg=name)  # fmt: skip
    assert not np.allclose(results[1][4], 0.0)  # the moving mean did move


def test_mixed_precision_keeps_float32_statistics() -> None:
    x = tf.random.stateless_normal((8, 6, 6, 4), seed=[1, 2]) * 2 + 3
    weights = tf.random.stateless_normal(x.shape, seed=[3, 4])
    keras_own, ours = (
        _train_step(cls(dtype="mixed_bfloat16"), x, weights)
        for cls in (keras.layers.BatchNormalization, BatchNormalization)
    )
    assert BatchNormalization(dtype="mixed_bfloat16")(x, training=True).dtype == "bfloat16"
    for a, b in zip(keras_own, ours, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-2, atol=2e-2 * np.abs(a).max())


@pytest.mark.parametrize(
    "name, default", [("lenet5_bn", "fast"), ("strided_cnn", "fast"), ("cnn_v2", "keras"),
                      ("cnn_v3", "keras")],
)  # fmt: skip
def test_the_configs_choose_the_layer_and_the_builders_build_kerass(name, default) -> None:
    """The model configs pick the layer that trained each model faster (BENCHMARKS.md); either
    can be chosen; the builders alone (the notebooks' way in bench/) build Keras's."""
    built = {"fast": BatchNormalization, "keras": keras.layers.BatchNormalization}

    def norms(model: keras.Model) -> set[type]:
        return {type(layer) for layer in model.layers if "Normalization" in type(layer).__name__}

    assert norms(model_from(f"model={name}")) == {built[default]}
    for kind, cls in built.items():
        assert norms(model_from(f"model={name}", f"model.batchnorm={kind}")) == {cls}
    assert norms(BUILDERS[name]()) == {keras.layers.BatchNormalization}
    assert set(checks.BATCHNORMS) == set(BATCHNORMS) == set(built)


@pytest.mark.parametrize("shape", [(32, 512), (7, 3, 3, 5)])
def test_dropout_drops_what_kerass_drops_outside_xla(shape: tuple[int, ...]) -> None:
    """The same seed gives the same units dropped, call after call, eagerly and in a graph: runs
    without XLA train as they did with Keras's layer (RESULTS.md's runs reproduce)."""
    x = tf.constant(np.random.default_rng(0).uniform(1, 2, shape), "float32")
    keras_own, ours = keras.layers.Dropout(0.3, seed=5), Dropout(0.3, seed=5)
    graph = tf.function(lambda layer: layer(x, training=True), autograph=False)
    for _ in range(3):
        a, b = keras_own(x, training=True), ours(x, training=True)
        np.testing.assert_array_equal(b, a)
        np.testing.assert_array_equal(graph(ours), graph(keras_own))
    assert 0 < np.mean(np.asarray(a) == 0) < 1
    np.testing.assert_array_equal(ours(x, training=False), x)
    np.testing.assert_array_equal(Dropout(0.0)(x, training=True), x)


def test_dropout_under_xla_drops_at_its_rate_and_scales_the_rest() -> None:
    layer, x = Dropout(0.2, seed=1), tf.ones((128, 500))
    step = tf.function(lambda: layer(x, training=True), jit_compile=True)
    first, second = np.asarray(step()), np.asarray(step())
    for out in (first, second):
        assert abs(np.mean(out == 0) - 0.2) < 0.01
        np.testing.assert_allclose(out[out != 0], 1 / 0.8, rtol=1e-6)
    assert np.mean((first == 0) != (second == 0)) > 0.2  # a new mask each step


@pytest.mark.parametrize("name", ["lenet5_bn", "ffnn"])
def test_a_checkpoint_with_them_loads_in_safe_mode(tmp_path, name: str) -> None:
    from mnistcli.evaluate import load_checkpoint

    model = model_from(f"model={name}")
    x = np.random.default_rng(0).random((4, 28, 28, 1), "float32")
    model(x, training=True)  # moves the statistics off their initial values
    model.save(tmp_path / "m.keras")
    loaded = load_checkpoint(tmp_path / "m.keras")
    assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
