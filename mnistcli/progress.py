"""A rich progress display for Keras training: epoch, step, loss/accuracy, validation metrics and
time left, with one line per finished epoch, printed and also logged to RUN_LOG (the run's
train.log). Replaces Keras's step printouts (verbose=0). `label` starts each epoch line on the
console: a sweep job's number (`#3 epoch 2/15 ...`), since parallel jobs' lines interleave there
(each job has its own train.log)."""

from __future__ import annotations

import keras
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from mnistcli import RUN_LOG


def _fmt(logs: dict, prefix: str = "") -> str:
    loss, acc = logs.get(f"{prefix}loss"), logs.get(f"{prefix}accuracy")
    if loss is None:
        return ""
    text = f"{prefix}loss {float(loss):.4f}"
    return text + (f"  {prefix}acc {float(acc):.2%}" if acc is not None else "")


class RichProgress(keras.callbacks.Callback):
    def __init__(self, console: Console, label: str = "") -> None:
        super().__init__()
        self.console = console
        self.label = label
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[train]}"),
            TextColumn("[cyan]{task.fields[val]}"),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.task = None
        self.val = ""

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.epochs = self.params["epochs"]
        self.steps = self.params.get("steps") or 0
        self.progress.start()
        self.task = self.progress.add_task(
            "train", total=self.epochs * self.steps or None, epoch="", train="", val=""
        )

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch + 1
        self.progress.update(
            self.task, completed=epoch * self.steps, epoch=f"{self.epoch}/{self.epochs}"
        )

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.progress.update(
            self.task,
            completed=(self.epoch - 1) * self.steps + batch + 1,
            train=_fmt(logs or {}),
        )

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        self.val = _fmt(logs, "val_")
        self.progress.update(self.task, val=self.val)
        line = f"epoch {epoch + 1}/{self.epochs}  {_fmt(logs)}"
        self.console.print(f"{self.label}{line}  [cyan]{self.val}", highlight=False)
        RUN_LOG.info("%s  %s", line, self.val)

    def on_train_end(self, logs: dict | None = None) -> None:
        self.progress.stop()
