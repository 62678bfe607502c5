"""Keras layers with a faster training step: the same outputs, weights and config.

BatchNormalization: every per-channel sum is taken over rows of many channels at once. Keras's
layer reduces an (N, H, W, C) batch over its first three axes to C sums. With a few
channels (6 or 16 in LeNet-5) TensorFlow's CPU kernels for such reductions, and for the sums that
the gradients of the per-channel scale and shift need, handle a few floats at a time: on a 2-core
CPU they took over half of lenet5_bn's training step (bench/batchnorm.py). Here the batch is
viewed as rows of k positions x C channels (k divides H x W), summed down the rows (a reduction
vectorised over k x C floats), then the k copies of each channel are added up. Inference
(training=False) is Keras's own code; so is training with a mask, renorm, synchronized
statistics, another axis, or rows of one position (k = 1: after a dense layer, or C over 128).
On a 2-core CPU it trained lenet5_bn 1.16x and strided_cnn 1.06x as fast as Keras's layer, but
cnn_v2 and cnn_v3 (32-128 channels) 0.96x and 0.92x (bench/knob.py, BENCHMARKS.md), so their
model configs keep Keras's: `model.batchnorm` (fast | keras) picks.

Dropout: the mask is drawn with the Philox generator by name. Keras leaves the choice to
TensorFlow, which picks Philox outside XLA (so the masks are the same, bit for bit) and, inside
an XLA-compiled step on a CPU, a generator that took 12-34x as long for the models' masks
(bench/dropout.py): it made XLA train the dropout MLPs 4x slower."""

from __future__ import annotations

import math
from typing import Any

import keras
import tensorflow as tf

ROW_FLOATS = 256  # at most k x C floats per row: wide enough to vectorise, as measured


def positions_per_row(positions: int, channels: int) -> int:
    """k: the most positions (a divisor of `positions`, the H x W of one image) whose channels
    fit in a row of ROW_FLOATS floats; 1 when a single position's channels fill it."""
    fits = max(1, ROW_FLOATS // channels)
    return max(d for d in range(1, min(fits, positions) + 1) if positions % d == 0)


@keras.saving.register_keras_serializable(package="mnistcli")
class BatchNormalization(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization whose training step sums channels over wide rows."""

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        if not (training and self.trainable) or mask is not None or self.renorm:
            return super().call(inputs, training=training, mask=mask)
        if self.synchronized or self.axis not in (-1, len(inputs.shape) - 1):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        k = positions_per_row(math.prod(inputs.shape[1:-1]), channels)
        if k == 1:  # rows of one position: Keras's own sums are as wide
            return super().call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, "float32")  # as Keras's layer: statistics in float32
        rows = tf.reshape(x, [-1, k * channels])
        count = tf.cast(tf.shape(rows)[0] * k, "float32")

        def per_channel(t: tf.Tensor) -> tf.Tensor:  # rows -> C sums
            return tf.reduce_sum(tf.reshape(tf.reduce_sum(t, 0), [k, channels]), 0)

        def across(c: tf.Tensor) -> tf.Tensor:  # C values -> one per column of a row
            return tf.tile(c, [k])

        # tf.nn.moments and tf.nn.batch_normalization, as Keras's layer calls them
        mean = per_channel(rows) / count
        variance = per_channel(tf.math.squared_difference(rows, tf.stop_gradient(across(mean))))
        variance /= count
        inv = tf.math.rsqrt(variance + self.epsilon)
        if self.scale:
            inv *= tf.cast(self.gamma, "float32")
        shift = -mean * inv
        if self.center:
            shift += tf.cast(self.beta, "float32")
        outputs = tf.reshape(rows * across(inv) + across(shift), tf.shape(x))

        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
        )
        return tf.cast(outputs, self.compute_dtype)


@keras.saving.register_keras_serializable(package="mnistcli")
class Dropout(keras.layers.Dropout):
    """keras.layers.Dropout whose mask comes from TensorFlow's Philox generator, named."""

    def call(self, inputs: Any, training: bool = False) -> Any:
        if not training or self.rate == 0:
            return inputs
        if self.rate == 1:
            return tf.zeros_like(inputs)
        seed = self.seed_generator.next()
        if seed.dtype != tf.int32:  # as Keras: the stateless ops take int32 seeds under XLA
            seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
        noise_shape = None
        if self.noise_shape is not None:
            dims = tf.shape(inputs)
            noise_shape = [dims[i] if d is None else d for i, d in enumerate(self.noise_shape)]
        return tf.nn.experimental.stateless_dropout(
            inputs, self.rate, seed, rng_alg="philox", noise_shape=noise_shape
        )
