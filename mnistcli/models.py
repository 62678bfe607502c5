"""One builder per model name, layer by layer as the notebooks write them (strided_cnn, built
for `experiment=fast`, and cnn_v3, a stronger CNN from outside the notebooks, are not theirs).

Every builder takes `l2`, the L2 factor on the kernels of its hidden layers (0 = none); the output
layer is never regularised. Builders with batch normalisation take `batchnorm`: "keras" (the
notebooks' layer, the builders' default) or "fast" (mnistcli.layers'); each model's config
picks the one that trained it faster.
Inputs are (28, 28, 1) float32 in [0, 1]."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf
from keras import layers
from omegaconf import DictConfig, OmegaConf

from mnistcli.data import INPUT_SHAPE, NUM_CLASSES
from mnistcli.errors import UserError
from mnistcli.layers import BatchNormalization, Dropout

BATCHNORMS = {"keras": layers.BatchNormalization, "fast": BatchNormalization}


def classifier() -> layers.Dense:
    """The 10-way softmax every model ends in; float32 even under mixed precision, so the
    probabilities and the loss keep full precision."""
    return layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32")


def _batch_norm(kind: str) -> type[layers.BatchNormalization]:
    if kind not in BATCHNORMS:
        raise UserError(f"unknown batchnorm '{kind}'; choose one of {', '.join(BATCHNORMS)}")
    return BATCHNORMS[kind]


def _l2(factor: float) -> keras.regularizers.Regularizer | None:
    return keras.regularizers.L2(factor) if factor else None


def ffnn(
    hidden: Sequence[int] = (512, 512),
    dropout: float = 0.2,
    activation: str = "relu",
    l2: float = 0.0,
) -> keras.Model:
    """Flatten, then Dense(width) + Dropout per hidden width, then Dense 10 softmax."""
    stack: list[Any] = [keras.Input(INPUT_SHAPE), layers.Flatten()]
    for width in hidden:
        stack.append(layers.Dense(width, activation=activation, kernel_regularizer=_l2(l2)))
        if dropout:
            stack.append(Dropout(dropout))
    stack.append(classifier())
    return keras.Sequential(stack, name="ffnn")


def lenet5(l2: float = 0.0) -> keras.Model:
    """The notebooks' LeNet-5: 303,626 parameters."""
    reg = _l2(l2)
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            layers.Conv2D(6, 5, activation="relu", kernel_regularizer=reg),
            layers.AveragePooling2D(pool_size=2, strides=1),
            layers.Conv2D(16, 5, activation="tanh", kernel_regularizer=reg),
            layers.AveragePooling2D(pool_size=2, strides=2),
            layers.Conv2D(120, 5, activation="tanh", kernel_regularizer=reg),
            layers.Flatten(),
            layers.Dense(84, activation="tanh", kernel_regularizer=reg),
            classifier(),
        ],
        name="lenet5",
    )


def lenet5_classic(l2: float = 0.0) -> keras.Model:
    """The textbook LeNet-5: 44,426 parameters."""
    reg = _l2(l2)
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            layers.Conv2D(6, 5, activation="tanh", kernel_regularizer=reg),
            layers.AveragePooling2D(2),
            layers.Conv2D(16, 5, activation="tanh", kernel_regularizer=reg),
            layers.AveragePooling2D(2),
            layers.Flatten(),
            layers.Dense(120, activation="tanh", kernel_regularizer=reg),
            layers.Dense(84, activation="tanh", kernel_regularizer=reg),
            classifier(),
        ],
        name="lenet5_classic",
    )


def lenet5_bn(l2: float = 0.0, batchnorm: str = "keras") -> keras.Model:
    """LeNet-5 with batch normalisation: 45,418 parameters, 44,922 trainable."""
    reg, norm = _l2(l2), _batch_norm(batchnorm)
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            layers.Conv2D(6, 5, kernel_regularizer=reg),
            norm(),
            layers.Activation("relu"),
            layers.AveragePooling2D(2),
            norm(),
            layers.Conv2D(16, 5, kernel_regularizer=reg),
            norm(),
            layers.Activation("relu"),
            layers.AveragePooling2D(2),
            norm(),
            layers.Flatten(),
            layers.Dense(120, activation="relu", kernel_regularizer=reg),
            norm(),
            layers.Dense(84, activation="relu", kernel_regularizer=reg),
            norm(),
            classifier(),
        ],
        name="lenet5_bn",
    )


def cnn_v2(
    dropout: float = 0.25, l2: float = 0.0, width: float = 1.0, batchnorm: str = "keras"
) -> keras.Model:
    """The deeper CNN: two conv blocks with BN and max-pooling, three dense layers with BN and
    dropout. `width` scales the convolutions' filters (32 and 64 in the notebook)."""
    reg, norm = _l2(l2), _batch_norm(batchnorm)
    narrow, wide = (max(1, round(filters * width)) for filters in (32, 64))
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            layers.Conv2D(narrow, 5, activation="relu", kernel_regularizer=reg),
            layers.Conv2D(narrow, 5, activation="relu", kernel_regularizer=reg),
            norm(),
            layers.MaxPooling2D(2),
            layers.Conv2D(wide, 3, activation="relu", kernel_regularizer=reg),
            layers.Conv2D(wide, 3, activation="relu", kernel_regularizer=reg),
            norm(),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(256, activation="relu", kernel_regularizer=reg),
            norm(),
            Dropout(dropout),
            layers.Dense(128, activation="relu", kernel_regularizer=reg),
            norm(),
            Dropout(dropout),
            layers.Dense(84, activation="relu", kernel_regularizer=reg),
            norm(),
            Dropout(dropout),
            classifier(),
        ],
        name="cnn_v2",
    )


def cnn_v3(dropout: float = 0.4, l2: float = 0.0, batchnorm: str = "keras") -> keras.Model:
    """Not from the notebooks: the single CNN of C. Deotte's Kaggle study "How to choose CNN
    architecture MNIST" (2018), batch norm after every convolution and 5x5 stride-2
    convolutions in place of pooling; 326,410 trainable parameters."""
    reg, norm = _l2(l2), _batch_norm(batchnorm)

    def conv(filters: int, size: int, strides: int = 1) -> list[layers.Layer]:
        padding = "same" if strides > 1 else "valid"
        return [
            layers.Conv2D(
                filters, size, strides, padding, activation="relu", kernel_regularizer=reg
            ),
            norm(),
        ]

    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            *conv(32, 3),
            *conv(32, 3),
            *conv(32, 5, strides=2),
            Dropout(dropout),
            *conv(64, 3),
            *conv(64, 3),
            *conv(64, 5, strides=2),
            Dropout(dropout),
            *conv(128, 4),
            layers.Flatten(),
            Dropout(dropout),
            classifier(),
        ],
        name="cnn_v3",
    )


def strided_cnn(l2: float = 0.0, batchnorm: str = "keras") -> keras.Model:
    """Built for speed (`experiment=fast`), not from a notebook: two stride-2 convolutions with
    batch normalisation in place of convolution + pooling, then Dense 128: 207,322 parameters.
    1.3-1.9x lenet5_bn's images/s on a 2-core CPU, and as accurate after the same epochs
    (bench/one_epoch.py)."""
    reg, norm = _l2(l2), _batch_norm(batchnorm)
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            layers.Conv2D(16, 5, strides=2, padding="same", use_bias=False, kernel_regularizer=reg),
            norm(),
            layers.Activation("relu"),
            layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, kernel_regularizer=reg),
            norm(),
            layers.Activation("relu"),
            layers.Flatten(),
            layers.Dense(128, activation="relu", kernel_regularizer=reg),
            classifier(),
        ],
        name="strided_cnn",
    )


def count_trainable(model: keras.Model) -> int:
    """Trainable parameters (model.count_params() counts BN's moving statistics too)."""
    return sum(int(w.numpy().size) for w in model.trainable_weights)


BUILDERS = {
    f.__name__: f for f in (ffnn, lenet5, lenet5_classic, lenet5_bn, cnn_v2, cnn_v3, strided_cnn)
}


def build_model(name: str, **knobs: Any) -> keras.Model:
    """Build the model the `model` config names, passing its other keys as the builder's knobs."""
    if name not in BUILDERS:
        raise UserError(f"unknown model '{name}'; choose one of {', '.join(BUILDERS)}")
    return BUILDERS[name](**knobs)


def probe(model_cfg: DictConfig) -> keras.Model:
    """The model `model_cfg` builds, made in a graph of its own for its layers to be looked at:
    TensorFlow's runtime stays unstarted (its thread pools can still be set), and the layers'
    automatic names start again for the run's own model. Built once per config in a process
    (shards and precision both look; 0.2-0.3 s each)."""
    return _probe(json.dumps(OmegaConf.to_container(model_cfg), sort_keys=True))


@functools.lru_cache(maxsize=8)
def _probe(knobs: str) -> keras.Model:
    with tf.Graph().as_default():
        model = build_model(**json.loads(knobs))
    keras.backend.clear_session()
    return model
