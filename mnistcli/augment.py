"""The `augment` config group: random rotation, zoom and shift of training images, by Keras's
preprocessing layers (`augment=notebook`) or in one resampling (`augment=one_pass`, and
`augment=elastic` with an elastic distortion), inside the tf.data pipeline (pipeline.training),
on training batches only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from mnistcli.data import INPUT_SHAPE


def bilinear(images: tf.Tensor, y: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """images [N, H, W] read at the real-valued rows y and columns x [N, H, W], bilinearly, black
    outside the image. (keras.ops.image.map_coordinates does this for one image, or for a batch
    of a size known when tracing, which a tf.data batch is not.)"""
    n, height, width = ops.shape(images)[0], ops.shape(images)[1], ops.shape(images)[2]
    flat = ops.reshape(images, (-1,))
    first = ops.reshape(ops.arange(n) * height * width, (-1, 1, 1))  # each image's first pixel
    y0, x0 = ops.floor(y), ops.floor(x)
    moved = ops.zeros_like(y)
    for row, column in ((y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)):
        weight = (1 - ops.abs(y - row)) * (1 - ops.abs(x - column))
        inside = (row >= 0) & (row < height) & (column >= 0) & (column < width)
        r = ops.cast(ops.clip(row, 0, height - 1), "int32")
        c = ops.cast(ops.clip(column, 0, width - 1), "int32")
        pixel = ops.take(flat, first + r * width + c)
        moved = moved + ops.where(inside, pixel, 0.0) * weight
    return moved


class RandomWarp(keras.layers.Layer):
    """The notebook's random rotation, zoom and shift, and optionally Simard, Steinkraus and Platt
    (2003)'s elastic distortion, in one bilinear resampling, black outside the image, as the
    notebook's ImageDataGenerator did. Keras's layers resample once each: three times for the
    notebook's three, and every resampling blurs the digit a little more than any test image is.

    The elastic distortion moves every pixel along a random displacement field, drawn uniform in
    [-1, 1] for each pixel and axis, smoothed by a Gaussian of `elastic_sigma` pixels and scaled by
    `elastic_alpha`. (Keras's RandomElasticTransform is not this: it ties sigma to the image's size,
    1.4 px here, and draws both axes' displacements from one seed, so pixels move diagonally.)"""

    def __init__(
        self,
        rotation_degrees: float,
        zoom: float,
        shift: float,
        elastic_alpha: float,
        elastic_sigma: float,
        seed: int,
        keep_aspect: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.rotation = np.deg2rad(rotation_degrees)
        self.zoom, self.shift = float(zoom), float(shift)
        self.keep_aspect = bool(keep_aspect)
        self.alpha, self.sigma = float(elastic_alpha), float(elastic_sigma)
        self.generator = keras.random.SeedGenerator(seed)

    def _smoothing(self, size: int) -> np.ndarray:
        """The Gaussian as a [size, size] matrix: M @ field smooths a field's columns, with zeros
        beyond the image's edge (scipy.ndimage.gaussian_filter's mode="constant")."""

        def gaussian(offset: np.ndarray) -> np.ndarray:
            return np.exp(-0.5 * (offset / self.sigma) ** 2)

        offsets = np.arange(size)[:, None] - np.arange(size)[None, :]
        whole = gaussian(np.arange(-size, size + 1)).sum()  # the kernel's weight, edges aside
        return (gaussian(offsets) / whole).astype("float32")

    def displacement(self, n: tf.Tensor | int, height: int, width: int) -> tf.Tensor:
        """A fresh elastic field for n images: [n, 2, height, width], how far each pixel's reading
        point moves down its column (0) and along its row (1), in pixels."""
        field = keras.random.uniform((n, 2, height, width), -1.0, 1.0, seed=self.generator)
        rows, columns = self._smoothing(height), self._smoothing(width)
        return ops.einsum("ij,najk,lk->nail", rows, field, columns) * self.alpha

    def call(self, images: tf.Tensor) -> tf.Tensor:
        n, height, width = ops.shape(images)[0], images.shape[1], images.shape[2]

        def draw(low: float, high: float) -> tf.Tensor:  # one number per image, [n, 1, 1]
            return keras.random.uniform((n, 1, 1), low, high, seed=self.generator)

        angle = draw(-self.rotation, self.rotation)
        tall = draw(1 - self.zoom, 1 + self.zoom)  # > 1 reads a wider area: the digit shrinks
        down, across = draw(-self.shift, self.shift) * height, draw(-self.shift, self.shift) * width
        wide = tall if self.keep_aspect else draw(1 - self.zoom, 1 + self.zoom)
        # each output pixel, from the image's centre, reads the point scaled, turned and shifted
        y = ops.cast(ops.reshape(ops.arange(height), (1, -1, 1)), "float32") - (height - 1) / 2
        x = ops.cast(ops.reshape(ops.arange(width), (1, 1, -1)), "float32") - (width - 1) / 2
        cos, sin = ops.cos(angle), ops.sin(angle)
        rows = cos * tall * y - sin * wide * x + (height - 1) / 2 + down
        columns = sin * tall * y + cos * wide * x + (width - 1) / 2 + across
        if self.alpha:
            field = self.displacement(n, height, width)
            rows, columns = rows + field[:, 0], columns + field[:, 1]
        return ops.expand_dims(bilinear(images[..., 0], rows, columns), -1)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape


Augment = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]  # (images, the batch's number) -> images


def keyed(layer: keras.layers.Layer) -> Augment:
    """The layer as a function of (images, n), n the batch's number counted from the run's first
    batch (epoch * steps_per_epoch + its place in the epoch). Before each batch, each of the
    layer's seed generators is set where n batches of draws leave it, so batch n's draws depend on
    the seed and n alone: a run resumed at any epoch draws what the uninterrupted run drew, and a
    run from the start draws what it drew one batch after another. (How far one batch moves each
    generator is measured once, on a blank image.)"""
    states = [v for v in layer.variables if v.name == "seed_generator_state"]
    starts = [v.numpy() for v in states]
    layer(np.zeros((1, *INPUT_SHAPE), "float32"), training=True)
    moves = [v.numpy() - start for v, start in zip(states, starts, strict=True)]
    for v, start in zip(states, starts, strict=True):
        v.assign(start)

    def augment(images: tf.Tensor, number: tf.Tensor) -> tf.Tensor:
        for v, start, move in zip(states, starts, moves, strict=True):
            v.assign(start + ops.cast(number, v.dtype) * move)
        return layer(images, training=True)

    return augment


def augmenter(settings: dict[str, Any], seed: int) -> Augment | None:
    """A function of a batch of scaled images [N, 28, 28, 1] and the batch's number in the run that
    transforms them at random (see `keyed`), or None for `augment=none`. Seeded by the run's seed.
    Its layers compute in float32 whatever the run's precision (trainer.precision): they make
    the model's input, and the model casts it."""
    if settings["name"] == "none":
        return None
    if settings.get("one_pass"):
        keys = ("rotation_degrees", "zoom", "shift", "elastic_alpha", "elastic_sigma")
        return keyed(
            RandomWarp(
                *(settings[k] for k in keys),
                seed=seed,
                keep_aspect=settings.get("keep_aspect", True),
                dtype="float32",
                name=f"augment_{settings['name']}",
            )
        )
    fill = {"fill_mode": settings["fill_mode"], "fill_value": 0.0, "dtype": "float32"}
    width = None if settings.get("keep_aspect", True) else settings["zoom"]  # None: as the height
    return keyed(
        keras.Sequential(
            [
                keras.layers.RandomRotation(settings["rotation_degrees"] / 360, seed=seed, **fill),
                keras.layers.RandomZoom(settings["zoom"], width, seed=seed + 1, **fill),
                keras.layers.RandomTranslation(
                    settings["shift"], settings["shift"], seed=seed + 2, **fill
                ),
            ],
            name=f"augment_{settings['name']}",
        )
    )
