"""tf.data pipelines over the uint8 arrays: pixels are scaled to [0, 1] float32 in the graph."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def _scale(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return tf.expand_dims(tf.cast(images, tf.float32) / 255.0, -1), labels


def training(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> tf.data.Dataset:
    """Shuffled (with the run's seed, anew each epoch), batched, scaled, prefetched."""
    ds = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return (
        ds.batch(batch_size)
        .map(_scale, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def inference(x: np.ndarray, y: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """In order, batched, scaled, prefetched."""
    ds = tf.data.Dataset.from_tensor_slices((x, y)).cache().batch(batch_size)
    return ds.map(_scale, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
