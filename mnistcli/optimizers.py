"""The `optimizer` and `schedule` configs → a Keras optimizer. `lr` is every optimizer's
learning rate; the schedule shapes it over the run's steps."""

from __future__ import annotations

from typing import Any

import keras

OPTIMIZERS = {
    "sgd": keras.optimizers.SGD,
    "adam": keras.optimizers.Adam,
    "rmsprop": keras.optimizers.RMSprop,
}


def learning_rate(
    lr: float, schedule: dict[str, Any], total_steps: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The learning rate (or schedule) for `schedule` over `total_steps` steps."""
    knobs = {k: v for k, v in schedule.items() if k != "name"}
    if schedule["name"] == "cosine":
        return keras.optimizers.schedules.CosineDecay(lr, decay_steps=total_steps, **knobs)
    return lr


def build_optimizer(
    name: str, lr: float | keras.optimizers.schedules.LearningRateSchedule, **knobs: Any
) -> keras.optimizers.Optimizer:
    """Build `name` with learning rate `lr` and its other knobs (e.g. momentum, nesterov)."""
    return OPTIMIZERS[name](learning_rate=lr, **knobs)
