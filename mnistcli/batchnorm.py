"""Batch-norm statistics recomputed for the weights a model holds now, as PyTorch's
`swa_utils.update_bn` does for averaged weights: a batch-norm layer's moving mean and variance
follow the raw weights that trained, so averaged weights (trainer.ema) would otherwise be
validated and tested with another network's statistics."""

from __future__ import annotations

from collections.abc import Iterable

import keras
import numpy as np


def batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def recompute(model: keras.Sequential, batches: Iterable) -> None:
    """Set every batch-norm layer's moving mean and variance to the statistics of its inputs over
    `batches` (scaled images, or (images, labels) pairs), the model run as at inference except
    that each batch-norm layer normalises by the batch's own statistics, layer after layer, as
    in training (dropout stays off). The batches' means and variances are pooled, each batch
    weighing by its size: the statistics of all the images at once. No batch-norm layer:
    nothing to do."""
    layers = batch_norm_layers(model)
    if not layers:
        return
    momenta = [layer.momentum for layer in layers]
    sizes, means, variances = [], [], []  # per batch: one array per batch-norm layer
    try:
        for layer in layers:  # momentum 0: the moving statistics become the batch's own
            layer.momentum = 0.0
        for batch in batches:
            h = batch[0] if isinstance(batch, tuple) else batch
            sizes.append(len(h))
            for layer in model.layers:
                h = layer(h, training=isinstance(layer, keras.layers.BatchNormalization))
            means.append([layer.moving_mean.numpy() for layer in layers])
            variances.append([layer.moving_variance.numpy() for layer in layers])
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
    weights = np.array(sizes, dtype=np.float64) / sum(sizes)
    for i, layer in enumerate(layers):
        m, v = np.stack([b[i] for b in means]), np.stack([b[i] for b in variances])
        mean = np.tensordot(weights, m, axes=1)
        layer.moving_mean.assign(mean)
        layer.moving_variance.assign(np.tensordot(weights, v + (m - mean) ** 2, axes=1))
