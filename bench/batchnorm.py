"""Keras's batch norm against mnistcli's (model.batchnorm=keras | fast): each layer shape of the
batch-norm models, forward and backward alone, and lenet5_bn's whole training step (adam, batch
64) with either layer and with none, each run 300 times one after another in one tf.function
(bench/kernels.py's timing). Not a test: it prints two tables; BENCHMARKS.md records them.

    python bench/batchnorm.py"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from kernels import in_graph_ms, layer_ms  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from mnistcli.layers import BatchNormalization  # noqa: E402
from mnistcli.models import lenet5_bn  # noqa: E402

SHAPES = {  # a batch-norm layer's input: where it sits
    (64, 24, 24, 6): "lenet5_bn, after conv 1",
    (64, 8, 8, 16): "lenet5_bn, after conv 2",
    (64, 120): "lenet5_bn, after dense 120",
    (256, 14, 14, 16): "strided_cnn (fast, batch 256), after conv 1",
    (256, 7, 7, 32): "strided_cnn (fast, batch 256), after conv 2",
    (64, 20, 20, 32): "cnn_v2, after conv 2",
    (64, 8, 8, 64): "cnn_v2, after conv 4",
    (128, 26, 26, 32): "cnn_v3 (batch 128), after conv 1",
    (128, 1, 1, 128): "cnn_v3 (batch 128), after conv 7",
}
LAYERS = {"keras": keras.layers.BatchNormalization, "fast": BatchNormalization}


def lenet5_bn_step_ms(batchnorm: str | None) -> float:
    """lenet5_bn's training step with Keras's layer, mnistcli's, or none (None)."""
    keras.utils.set_random_seed(0)
    built = lenet5_bn(batchnorm=batchnorm or "keras")
    kept = [
        layer for layer in built.layers if batchnorm or "Normalization" not in type(layer).__name__
    ]
    model = keras.Sequential([keras.Input((28, 28, 1)), *kept])
    opt = keras.optimizers.Adam()
    opt.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    x = tf.random.stateless_uniform((64, 28, 28, 1), seed=[0, 1])
    y = tf.random.stateless_uniform((64,), seed=[0, 2], maxval=10, dtype=tf.int32)

    def step(x: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        opt.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    return in_graph_ms(step, x)


def main() -> None:
    console = Console(width=max(120, Console().width))
    layers = Table(title="one batch-norm layer, forward and backward, ms")
    for col in ("input", "where", "keras", "fast", "keras / fast"):
        layers.add_column(col, justify="right")
    for shape, where in SHAPES.items():
        x = tf.random.stateless_normal(shape, seed=[1, 2])
        ms = {}
        for kind, cls in LAYERS.items():
            layer = cls()
            layer.build(shape)
            ms[kind] = layer_ms(layer, x, first=False)
        layers.add_row(str(shape), where, f"{ms['keras']:.3f}", f"{ms['fast']:.3f}",
                       f"{ms['keras'] / ms['fast']:.2f}x")  # fmt: skip
    console.print(layers)
    steps = Table(title="lenet5_bn's training step (adam, batch 64), ms")
    for col in ("batch norm", "step ms", "images/s"):
        steps.add_column(col, justify="right")
    for kind in ("keras", "fast", None):
        ms = lenet5_bn_step_ms(kind)
        steps.add_row(kind or "none (layers left out)", f"{ms:.2f}", f"{64 / ms * 1000:,.0f}")
    console.print(steps)
    console.print("rerun: python bench/batchnorm.py", highlight=False)


if __name__ == "__main__":
    main()
