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


def shardable(layer: keras.layers.BatchNormalization) -> bool:
    """Whether `normalize` can train `layer` (built): statistics over the last axis, no renorm,
    not synchronized by a distribution strategy. Keras's own code does the others."""
    last = (-1, layer.input_spec.ndim - 1) if layer.input_spec else (-1,)
    return not layer.renorm and not layer.synchronized and layer.axis in last


def normalize(
    layer: keras.layers.BatchNormalization,
    shards: list[tf.Tensor],
    counts: list[tf.Tensor] | None = None,
) -> list[tf.Tensor]:
    """`layer` in training (a trainable layer that `shardable` accepts) over a batch held as
    shards cut along its first axis: the batch's mean and variance, taken from each shard's
    per-channel sums (over wide rows for the class below; one channel at a time, as Keras's, for
    Keras's layer), each shard normalized by them, and the moving statistics updated once. Each
    shard's ops depend only on it, but for the two C-wide sums, so shards on different threads
    run side by side (mnistcli.shards). `counts`: the examples of each shard that count (a shard
    of count 0 holds a stand-in example that is left out of the statistics); None: all of them.
    One shard: the layer's own training step."""
    channels = shards[0].shape[-1]
    positions = math.prod(shards[0].shape[1:-1])
    wide = isinstance(layer, BatchNormalization)  # Keras's layer: its sums, one channel each
    k = positions_per_row(positions, channels) if wide else 1
    dtype = keras.backend.result_type(shards[0].dtype, "float32")  # as Keras: float32 at least
    rows = [tf.reshape(tf.cast(x, dtype), [-1, k * channels]) for x in shards]
    if counts is None:
        counts = [tf.shape(x)[0] for x in shards]
    counted = [tf.cast(tf.minimum(c, 1), dtype) for c in counts]  # 0 for a stand-in
    total = tf.cast(tf.add_n(list(counts)) * positions, dtype)

    def per_channel(t: tf.Tensor) -> tf.Tensor:  # rows -> C sums
        return tf.reduce_sum(tf.reshape(tf.reduce_sum(t, 0), [k, channels]), 0)

    def across(c: tf.Tensor) -> tf.Tensor:  # C values -> one per column of a row
        return tf.tile(c, [k])

    def batch_sum(terms: list[tf.Tensor]) -> tf.Tensor:
        return tf.add_n([w * per_channel(t) for w, t in zip(counted, terms, strict=True)])

    # tf.nn.moments and tf.nn.batch_normalization, as Keras's layer calls them
    mean = batch_sum(rows) / total
    wide_mean = tf.stop_gradient(across(mean))
    variance = batch_sum([tf.math.squared_difference(r, wide_mean) for r in rows]) / total
    inv = tf.math.rsqrt(variance + layer.epsilon)
    if layer.scale:
        inv *= tf.cast(layer.gamma, dtype)
    shift = -mean * inv
    if layer.center:
        shift += tf.cast(layer.beta, dtype)
    wide_inv, wide_shift = across(inv), across(shift)
    outputs = [
        tf.cast(tf.reshape(r * wide_inv + wide_shift, tf.shape(x)), layer.compute_dtype)
        for r, x in zip(rows, shards, strict=True)
    ]
    momentum = layer.momentum
    layer.moving_mean.assign(layer.moving_mean * momentum + mean * (1.0 - momentum))
    layer.moving_variance.assign(layer.moving_variance * momentum + variance * (1.0 - momentum))
    return outputs


@keras.saving.register_keras_serializable(package="mnistcli")
class BatchNormalization(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization whose training step sums channels over wide rows."""

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        if not (training and self.trainable) or mask is not None or not shardable(self):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        if positions_per_row(math.prod(inputs.shape[1:-1]), channels) == 1:
            return super().call(inputs, training=training, mask=mask)  # Keras's sums as wide
        return normalize(self, [inputs])[0]


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
