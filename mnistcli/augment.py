"""The `augment` config group: random rotation, zoom and shift of training images, done by Keras
preprocessing layers inside the tf.data pipeline (pipeline.training), on training batches only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf


def augmenter(settings: dict[str, Any], seed: int) -> Callable[[tf.Tensor], tf.Tensor] | None:
    """A function from a batch of scaled images [N, 28, 28, 1] to randomly transformed ones, or
    None for `augment=none`. Seeded by the run's seed."""
    if settings["name"] == "none":
        return None
    fill = {"fill_mode": settings["fill_mode"], "fill_value": 0.0}
    layers = keras.Sequential(
        [
            keras.layers.RandomRotation(settings["rotation_degrees"] / 360, seed=seed, **fill),
            keras.layers.RandomZoom(settings["zoom"], seed=seed + 1, **fill),
            keras.layers.RandomTranslation(
                settings["shift"], settings["shift"], seed=seed + 2, **fill
            ),
        ],
        name=f"augment_{settings['name']}",
    )
    return lambda images: layers(images, training=True)
