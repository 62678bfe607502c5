"""Keras callbacks: the `callbacks` config group, and the recorder every run has (last and best
checkpoints, history.csv), all written atomically at the end of each finished epoch."""

from __future__ import annotations

import math
import time
from typing import Any

import keras
import numpy as np

from mnistcli import artifacts
from mnistcli.artifacts import RunDir


def current_lr(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


class RunRecorder(keras.callbacks.Callback):
    """After each finished epoch: save checkpoints/last.keras, copy it to best.keras when the
    monitored value improves (if `monitor` is set), and rewrite history.csv."""

    def __init__(self, run: RunDir, monitor: str | None = "val_loss", mode: str = "min") -> None:
        super().__init__()
        self.run = run
        self.monitor = monitor
        self.better = np.less if mode == "min" else np.greater
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.history: list[dict[str, float]] = []
        self._lr = math.nan
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._lr = current_lr(self.model)
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        row = {"epoch": epoch + 1}
        row.update({k: float(v) for k, v in logs.items() if k != "learning_rate"})
        row.update({"lr": self._lr, "seconds": round(time.perf_counter() - self._started, 3)})
        self.history.append(row)
        artifacts.save_model(self.model, self.run.last)
        if self.monitor is not None:
            value = row.get(self.monitor, math.nan)
            improved = self.best_value is None or self.better(value, self.best_value)
            if math.isfinite(value) and improved:
                self.best_value, self.best_epoch = value, epoch + 1
                artifacts.copy_file(self.run.last, self.run.best)
        artifacts.write_csv(self.run.history_csv, self.history)


def from_config(callbacks: dict[str, dict[str, Any]]) -> list[keras.callbacks.Callback]:
    """The Keras callbacks the `callbacks` group selected (checkpoint is the RunRecorder's job)."""
    makers = {
        "early_stopping": keras.callbacks.EarlyStopping,
        "reduce_lr": keras.callbacks.ReduceLROnPlateau,
        "terminate_on_nan": keras.callbacks.TerminateOnNaN,
    }
    return [makers[name](**params) for name, params in callbacks.items() if name in makers]
