"""The `optimizer` and `schedule` configs → a Keras optimizer. `lr` is every optimizer's
learning rate; the schedule shapes it over the run's steps (constant, cosine, one_cycle)."""

from __future__ import annotations

from typing import Any

import keras

from mnistcli.errors import UserError

OPTIMIZERS = {
    "sgd": keras.optimizers.SGD,
    "adam": keras.optimizers.Adam,
    "rmsprop": keras.optimizers.RMSprop,
}


def learning_rate(
    lr: float, schedule: dict[str, Any], total_steps: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The learning rate (or schedule) for `schedule` over `total_steps` steps."""
    if schedule["name"] == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            lr, decay_steps=total_steps, alpha=schedule["alpha"]
        )
    if schedule["name"] == "one_cycle":
        warmup = round(schedule["warmup"] * total_steps)
        return keras.optimizers.schedules.CosineDecay(
            lr / schedule["div_factor"],
            decay_steps=max(total_steps - warmup, 1),
            alpha=schedule["final_factor"],
            warmup_target=lr,
            warmup_steps=warmup,
        )
    return lr


def build_optimizer(
    name: str,
    lr: float | keras.optimizers.schedules.LearningRateSchedule,
    ema: float | None = None,
    **knobs: Any,
) -> keras.optimizers.Optimizer:
    """Build `name` with learning rate `lr` and its other knobs (e.g. momentum, nesterov).
    `ema`: also keep an exponential moving average of the weights with this momentum (Keras's
    use_ema; callbacks.AveragedWeights puts it in the model to validate and checkpoint)."""
    if ema is not None:
        knobs.update(use_ema=True, ema_momentum=ema)
    try:
        return OPTIMIZERS[name](learning_rate=lr, **knobs)
    except (TypeError, ValueError) as e:  # a +optimizer key Keras's class does not take
        raise UserError(
            f"optimizer {name} ({OPTIMIZERS[name].__name__}): {e}; drop or fix the +optimizer "
            "override"
        ) from None
