"""Keras's Dropout against mnistcli's (mnistcli/layers.py: the mask from the Philox generator by
name), with and without XLA: one forward and backward pass of each dropout layer shape of the
models, in a tf.function called 300 times, the best of 3 such runs. Also checks that outside
XLA both layers drop the same units. Not a test: it prints a table; BENCHMARKS.md records it.

    python bench/dropout.py"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from mnistcli.layers import Dropout  # noqa: E402

CALLS = 300
SHAPES = {  # a dropout layer's input: where it sits
    (32, 512): "ffnn (batch 32), rate 0.2",
    (128, 500): "mlp_improved (batch 128), first",
    (128, 300): "mlp_improved (batch 128), second",
    (64, 256): "cnn_v2 (batch 64), after dense 256",
}
KERAS, OURS = "Keras's", "mnistcli's"
LAYERS = {KERAS: keras.layers.Dropout, OURS: Dropout}


def pass_ms(layer: keras.layers.Layer, x: tf.Tensor, jit: bool) -> float:
    """Milliseconds per call of a forward and backward pass through `layer`."""

    @tf.function(jit_compile=jit)
    def step(x: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
        return tf.reduce_sum(tape.gradient(y, x))

    step(x).numpy()  # trace and compile
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(CALLS):
            out = step(x)
        out.numpy()
        best = min(best, time.perf_counter() - started)
    return best / CALLS * 1000


def same_masks(shape: tuple[int, ...]) -> bool:
    """Outside XLA, with the same seed, do both layers drop the same units, call after call?"""
    x = tf.ones(shape)
    keras_layer, ours = keras.layers.Dropout(0.2, seed=7), Dropout(0.2, seed=7)
    return all(bool(tf.reduce_all(keras_layer(x, training=True) == ours(x, training=True)))
               for _ in range(3))  # fmt: skip


def main() -> None:
    table = Table(title=f"Dropout, forward and backward, ms per call (best of 3 x {CALLS} calls)")
    for col in ("input", "where", "Keras's", "mnistcli's", "Keras's, XLA", "mnistcli's, XLA",
                "XLA: Keras's / mnistcli's", "same masks without XLA"):  # fmt: skip
        table.add_column(col)
    for shape, where in SHAPES.items():
        x = tf.random.normal(shape, seed=0)
        ms = {
            (name, jit): pass_ms(make(0.2, seed=1), x, jit)
            for jit in (False, True)
            for name, make in LAYERS.items()
        }
        table.add_row(str(shape), where,
                      *(f"{ms[name, jit]:.3f}" for jit in (False, True) for name in LAYERS),
                      f"{ms[KERAS, True] / ms[OURS, True]:.1f}x",
                      "yes" if same_masks(shape) else "NO")  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    main()
