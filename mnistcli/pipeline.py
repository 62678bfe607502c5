"""tf.data pipelines over the uint8 arrays: pixels are scaled to [0, 1] float32 in the graph."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import tensorflow as tf


def _scale(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return tf.expand_dims(tf.cast(images, tf.float32) / 255.0, -1), labels


PARALLEL = 2  # batches mapped at once: a gather and a cast each, so two keep ahead of training
PREFETCH = 2  # batches ready ahead of the model


def _prefetched(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Fixed parallelism instead of tf.data's autotuner: the autotuner's thread makes deleting an
    iterator wait for its next wake-up, which added 0-40 s at the end of fit and predict here."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(PREFETCH).with_options(options)


def steps_per_epoch(examples: int, batch_size: int) -> int:
    return math.ceil(examples / batch_size)


def steps_per_execution(most: int, steps: int) -> int:
    """Train steps per call into TensorFlow: the largest divisor of an epoch's `steps` not above
    `most`, so that every epoch ends where a call ends. (Keras would run a call's steps on into
    the next epoch's batches: each epoch but the last would train more than its own batches, and
    validate and checkpoint off its boundary.)"""
    return max(d for d in range(1, min(most, steps) + 1) if steps % d == 0)


def training(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    seed: int,
    epochs: int,
    initial_epoch: int = 0,
    augment: Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None = None,
) -> tf.data.Dataset:
    """The batches of epochs initial_epoch+1 .. epochs, one dataset for all of them (fit with
    steps_per_epoch). Epoch e's order is a stateless shuffle keyed by (seed, e), so a resumed run
    sees exactly the batches the uninterrupted run would have seen. `augment` (augment.augmenter)
    then transforms each batch of scaled images, given the batch's number in the run, whose draws
    it keys: a resumed run draws what the uninterrupted run drew."""
    images, labels = tf.constant(x), tf.constant(y)
    n, seed = len(x), tf.constant(seed, tf.int64)

    def epoch_batches(epoch: tf.Tensor) -> tf.data.Dataset:
        order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=tf.stack([seed, epoch]))
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    def gather(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return _scale(tf.gather(images, index), tf.gather(labels, index))

    ds = tf.data.Dataset.range(initial_epoch, epochs).flat_map(epoch_batches)
    ds = ds.map(gather, num_parallel_calls=PARALLEL)
    if augment:  # one batch at a time: two at once would race for the layers' random state
        first = initial_epoch * steps_per_epoch(n, batch_size)
        ds = ds.enumerate(first).map(lambda number, batch: (augment(batch[0], number), batch[1]))
    return _prefetched(ds)


def inference(x: np.ndarray, y: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """In order, batched, scaled, prefetched."""
    ds = tf.data.Dataset.from_tensor_slices((x, y)).cache().batch(batch_size)
    return _prefetched(ds.map(_scale, num_parallel_calls=PARALLEL))
