"""Keras callbacks: the `callbacks` config group, and the recorder every run has (last and best
checkpoints, history.csv, the state a resumed run needs), all written atomically at the end of
each finished epoch."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from typing import Any

import keras
import numpy as np

from mnistcli import artifacts, batchnorm, signals
from mnistcli.artifacts import RunDir
from mnistcli.errors import UserError


def current_lr(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


# What EarlyStopping and ReduceLROnPlateau remember between epochs (a resumed run restores it).
CALLBACK_STATE = ("wait", "best", "best_epoch", "cooldown_counter")


def callback_state(callback: keras.callbacks.Callback) -> dict[str, float]:
    """Its CALLBACK_STATE values that are set (EarlyStopping's `best` stays None until its
    start_from_epoch)."""
    values = {k: getattr(callback, k, None) for k in CALLBACK_STATE}
    return {k: float(v) for k, v in values.items() if v is not None}


class RunRecorder(keras.callbacks.Callback):
    """After each finished epoch, in this order, each file atomically: checkpoints/state.json
    (one entry per epoch: history row, best so far, callbacks' state), history.csv,
    checkpoints/last.keras, and best.keras when the monitored value improved. A run killed
    between two of these writes is put right by `restore` (last.keras's step count says which
    epoch it holds). `entries` given: a resumed run, whose `stateful` callbacks get their state
    back when training begins. Put it after them in fit's callback list."""

    def __init__(
        self,
        run: RunDir,
        monitor: str | None = "val_loss",
        mode: str = "min",
        stateful: list[keras.callbacks.Callback] | None = None,
        entries: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        self.run = run
        self.monitor = monitor
        self.better = np.less if mode == "min" else np.greater
        self.stateful = {type(c).__name__: c for c in stateful or []}
        self.entries: list[dict[str, Any]] = list(entries or [])
        self._lr = math.nan
        self._started = 0.0

    @property
    def history(self) -> list[dict[str, float]]:
        return [e["row"] for e in self.entries]

    @property
    def best_epoch(self) -> int | None:
        return self.entries[-1]["best_epoch"] if self.entries else None

    @property
    def best_value(self) -> float | None:
        return self.entries[-1]["best_value"] if self.entries else None

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.entries:  # resumed: after the callbacks' own on_train_begin reset them
            for name, state in self.entries[-1]["callbacks"].items():
                for key, value in state.items():
                    setattr(self.stateful[name], key, value)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._lr = current_lr(self.model)
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        row = {"epoch": epoch + 1}
        row.update({k: float(v) for k, v in logs.items() if k != "learning_rate"})
        row.update({"lr": self._lr, "seconds": round(time.perf_counter() - self._started, 3)})
        best_epoch, best_value = self.best_epoch, self.best_value
        improved = False
        if self.monitor is not None:
            value = row.get(self.monitor, math.nan)
            improved = math.isfinite(value) and (
                best_value is None or bool(self.better(value, best_value))
            )
            if improved:
                best_epoch, best_value = epoch + 1, value
        self.entries.append(
            {
                "row": row,
                "best_epoch": best_epoch,
                "best_value": best_value,
                "callbacks": {n: callback_state(c) for n, c in self.stateful.items()},
            }
        )
        with signals.deferred():  # a stop signal waits until the epoch is on disk
            artifacts.write_text(self.run.state_json, json.dumps({"epochs": self.entries}) + "\n")
            artifacts.write_csv(self.run.history_csv, self.history)
            artifacts.save_model(self.model, self.run.last)
            if improved:
                artifacts.copy_file(self.run.last, self.run.best)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        signals.raise_if_stopped()  # the stop signal was swallowed by library code: again


class FirstStep(keras.callbacks.Callback):
    """Remembers when the first training step ended (graph tracing and compilation included).
    Keras reports the end of each call into TensorFlow, which runs the model's
    steps_per_execution steps: the first step's end is then the first call's end less its other
    steps, at the pace of the second call (when both are in one epoch; else the first call's end,
    an upper bound)."""

    def __init__(self) -> None:
        super().__init__()
        self.ended: float | None = None
        self._calls = 0
        self._first_epoch: int | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._calls += 1
        now, steps = time.time(), self.model.steps_per_execution
        if self._calls == 1:
            self.ended, self._first_epoch = now, self._epoch
        elif self._calls == 2 and self._first_epoch == self._epoch and self.ended is not None:
            self.ended -= (steps - 1) * (now - self.ended) / steps


class AveragedWeights(keras.callbacks.SwapEMAWeights):
    """Keras's SwapEMAWeights with swap_on_epoch: the optimizer's moving average of the weights
    is in the model while it validates and while later callbacks save checkpoints at the end of
    each epoch; the raw weights go on training. Also: a run that stops early (early stopping)
    ends with the averaged weights, and a run resumed from last.keras (saved with the averaged
    weights in the model, the raw ones in the optimizer) swaps them back before training.
    `batch_norm_batches` given (clean training images): each time the averaged weights come into
    the model after training steps, its batch-norm statistics are recomputed for them over those
    batches (batchnorm.recompute); the raw weights' statistics are never used while averaging,
    since training normalises by each batch's own.
    Put it after the callbacks that may stop training and before the checkpoint writer."""

    def __init__(self, resumed: bool = False, batch_norm_batches: Iterable | None = None) -> None:
        super().__init__(swap_on_epoch=True)
        self._ema_weights_in_model = resumed
        self.batch_norm_batches = batch_norm_batches
        self._statistics_at_step: int | None = None  # the step whose averaged weights they fit

    def _refresh_batch_norm(self) -> None:
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if self.batch_norm_batches is not None and step != self._statistics_at_step:
            batchnorm.recompute(self.model, self.batch_norm_batches)
            self._statistics_at_step = step

    def on_test_begin(self, logs: dict | None = None) -> None:
        super().on_test_begin(logs)
        self._refresh_batch_norm()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        self._refresh_batch_norm()
        if self.model.stop_training:  # fit copies the optimizer's average into the model next
            self._finalize_ema_values()


def restore(run: RunDir, model: keras.Model, steps_per_epoch: int) -> list[dict[str, Any]]:
    """The state entries of the epochs that `model` (loaded from last.keras) has finished, with
    history.csv and best.keras made to match them. A run dir whose state.json is missing or
    behind its checkpoint cannot be resumed."""
    done = int(keras.ops.convert_to_numpy(model.optimizer.iterations)) // steps_per_epoch
    try:
        entries = json.loads(run.state_json.read_text())["epochs"][:done]
    except (OSError, ValueError, KeyError, TypeError):
        entries = []
    if len(entries) != done:
        raise UserError(
            f"{run.root} cannot be resumed: {run.state_json.name} does not describe the "
            f"{done} epochs in {run.last.name}; start a new run"
        )
    artifacts.write_csv(run.history_csv, [e["row"] for e in entries])
    if entries and entries[-1]["best_epoch"] == done:
        artifacts.copy_file(run.last, run.best)  # the kill may have come before this copy
    return entries


def from_config(callbacks: dict[str, dict[str, Any]]) -> list[keras.callbacks.Callback]:
    """The Keras callbacks the `callbacks` group selected (checkpoint is the RunRecorder's job)."""
    makers = {
        "early_stopping": keras.callbacks.EarlyStopping,
        "reduce_lr": keras.callbacks.ReduceLROnPlateau,
        "terminate_on_nan": keras.callbacks.TerminateOnNaN,
    }
    made = []
    for name, params in callbacks.items():
        if name not in makers:
            continue
        try:
            made.append(makers[name](**params))
        except (TypeError, ValueError) as e:  # a +callbacks key Keras's class does not take
            raise UserError(
                f"callbacks.{name} ({makers[name].__name__}): {e}; drop or fix the +callbacks "
                "override"
            ) from None
    return made
