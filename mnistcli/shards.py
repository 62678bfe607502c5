"""Each step's batch split into shards that run side by side on a CPU's cores, one thread each.

TensorFlow's CPU kernels use two threads poorly on LeNet-sized layers: a convolution of a batch
of 32 on two threads takes more than half as long as on one. Split the batch in two, compute
each half's loss and gradients with ops of one thread each, and TensorFlow's executor runs the
two halves at once, one per core; the gradients are then added, weighted by each shard's share
of the batch. That is the batch's own gradient (its mean loss is the shards' weighted mean), so
the optimizer sees the same batch size and training is the same up to float rounding: only
dropout's masks are drawn per shard. A batch-normalization layer takes the statistics of the
whole batch: the step runs the model layer by layer, and each such layer on all the shards at
once (layers.normalize), which join only for two sums per channel. BENCHMARKS.md: `bench/knob.py
--knob trainer.shards=1`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf
from keras.utils import unpack_x_y_sample_weight
from omegaconf import DictConfig

from mnistcli.errors import UserError
from mnistcli.layers import normalize, shardable
from mnistcli.models import probe
from mnistcli.runtime import all_layers, thread_pools_set, usable_cpus, use_xla


def wanted(cfg: DictConfig) -> int:
    """How many shards `trainer.shards` gives, decided before TensorFlow starts (its thread pools
    are set once). A number as it is; auto: one per CPU thread (runtime.threads, else the cores
    this process may use) on a CPU, for a model that is not XLA-compiled (XLA runs a step's ops
    one after another) and whose batch norm `splittable` allows; else 1. Where an earlier run in
    this process (a sweep's job) set TensorFlow's thread pools, which it keeps, auto splits only
    if they give each op one thread."""
    setting, threads = cfg.trainer.shards, cfg.runtime.threads or usable_cpus()
    if setting != "auto":
        if setting > 1 and not splittable(probe(cfg.model)):
            raise UserError(
                f"trainer.shards={setting}: model {cfg.model.name} has batch normalization that "
                "cannot take the batch's statistics across shards (inside a nested model, or "
                "with renorm); use trainer.shards=1 (or auto)"
            )
        return int(setting)
    on_gpu = cfg.device == "gpu" or (
        cfg.device == "auto" and tf.config.list_physical_devices("GPU")
    )
    fixed = thread_pools_set() and tf.config.threading.get_intra_op_parallelism_threads() != 1
    if on_gpu or threads < 2 or cfg.runtime.logical_cpus > 1 or fixed:
        return 1
    model = probe(cfg.model)
    if not splittable(model) or use_xla(cfg.trainer, model, {"type": "cpu"}):
        return 1
    return threads


def splittable(model: keras.Model) -> bool:
    """Whether shards train `model` as the whole batch would: every batch-normalization layer
    sits in a Sequential model's own layers (the train step walks them; `_forward`) and is one
    that layers.normalize trains."""
    norms = [x for x in all_layers(model) if isinstance(x, keras.layers.BatchNormalization)]
    own = model.layers if isinstance(model, keras.Sequential) else []
    return all(norm in own and shardable(norm) for norm in norms)


def _shards(k: int, x: Any, *more: Any) -> list[tuple[Any, Any, list[Any]]]:
    """The batch (x, and the tensors in `more` alongside it; None stays None) cut along its
    first axis into k shards whose sizes differ by at most one, each as (size, share of the
    batch, its tensors). TensorFlow's CPU convolution mishandles an empty batch (it returns its
    input), so a shard left empty (a batch of fewer than k) holds one of the batch's examples at
    a share of 0: its loss and gradients count for nothing, and its predictions are dropped."""
    n = tf.shape(x)[0]
    shards, begin = [], tf.constant(0)
    for i in range(k):
        size = (n + k - 1 - i) // k
        start, take = tf.minimum(begin, n - 1), tf.maximum(size, 1)
        tensors = [None if t is None else t[start : start + take] for t in (x, *more)]
        shards.append((size, tf.cast(size, "float32") / tf.cast(n, "float32"), tensors))
        begin += size
    return shards


def _forward(model: keras.Model, xs: list[Any], counts: list[Any]) -> list[Any]:
    """The model in training over shards of a batch, layer by layer (a Sequential model): each
    layer on each shard, but a batch-normalization layer on all of them at once, with the
    batch's statistics (layers.normalize), as the batch would have been."""
    if not isinstance(model, keras.Sequential):
        return [model(x, training=True) for x in xs]
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable:
            xs = normalize(layer, xs, counts)
        else:
            xs = [layer(x, training=True) for x in xs]
    return xs


def train_step(model: keras.Model, k: int, data: Any) -> dict[str, Any]:
    """Keras's train step (keras/src/backend/tensorflow/trainer.py, whose private loss helpers
    it calls as that does) over k shards of the batch, with no distribution strategy."""
    x, y, sample_weight = unpack_x_y_sample_weight(data)
    weights = model.trainable_weights
    shards = _shards(k, x, y, sample_weight)
    with tf.GradientTape() as tape:
        outputs = _forward(model, [x_i for _, _, (x_i, _, _) in shards], [n for n, _, _ in shards])
        losses, scaled = [], []
        for y_pred, (_, share, (x_i, y_i, weight_i)) in zip(outputs, shards, strict=True):
            loss = model._compute_loss(
                x=x_i, y=y_i, y_pred=y_pred, sample_weight=weight_i, training=True
            )
            share = tf.cast(share, loss.dtype)
            losses.append(share * loss)
            scaled.append(model.optimizer.scale_loss(loss) * share)
        total = tf.add_n(scaled)
    gradients = tape.gradient(total, weights)
    model._loss_tracker.update_state(tf.add_n(losses), sample_weight=tf.shape(x)[0])
    model.optimizer.apply_gradients(zip(gradients, weights, strict=True))
    predictions = [y_pred[:size] for y_pred, (size, _, _) in zip(outputs, shards, strict=True)]
    return model.compute_metrics(x, y, tf.concat(predictions, 0), sample_weight=sample_weight)


def test_step(model: keras.Model, k: int, data: Any) -> dict[str, Any]:
    """Keras's test step over k shards of the batch."""
    x, y, sample_weight = unpack_x_y_sample_weight(data)
    predictions, losses = [], []
    for size, share, (x_i, y_i, weight_i) in _shards(k, x, y, sample_weight):
        y_pred = model(x_i, training=False)
        loss = model._compute_loss(
            x=x_i, y=y_i, y_pred=y_pred, sample_weight=weight_i, training=False
        )
        predictions.append(y_pred[:size])
        losses.append(tf.cast(share, loss.dtype) * loss)
    model._loss_tracker.update_state(tf.add_n(losses), sample_weight=tf.shape(x)[0])
    return model.compute_metrics(x, y, tf.concat(predictions, 0), sample_weight=sample_weight)


def predict_step(model: keras.Model, k: int, data: Any) -> Any:
    """Keras's predict step over k shards of the batch."""
    x, _, _ = unpack_x_y_sample_weight(data)
    shards = _shards(k, x)
    return tf.concat([model(x_i, training=False)[:size] for size, _, (x_i,) in shards], 0)


def shard_steps(model: keras.Model, k: int) -> keras.Model:
    """Make `model`'s train, test and predict steps run over k shards of each batch (k = 1: leave
    Keras's). The model itself, and so its checkpoints, stay as they are."""
    if k > 1:
        steps: dict[str, Callable[..., Any]] = {
            "train_step": train_step,
            "test_step": test_step,
            "predict_step": predict_step,
        }
        for name, step in steps.items():
            object.__setattr__(model, name, functools.partial(step, model, k))
    return model
