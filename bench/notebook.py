"""The notebooks' way, as a plain script: NumPy arrays scaled in Python, straight into model.fit
with validation_split, Keras's own defaults for everything else. One run; prints a JSON line.

python bench/notebook.py MODEL OPTIMIZER BATCH EPOCHS [--until 0.99]
--until: evaluate on the test set after every epoch (as the notebooks print it) and stop at the
first epoch whose test accuracy reaches it; report the seconds from process start to then."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence

STARTED = time.time()  # as near process start as a script gets (the bench adds the interpreter's)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from mnistcli.data import SHIPPED  # noqa: E402  (the same real MNIST, read as load_data would)
from mnistcli.models import BUILDERS  # noqa: E402  (the notebooks' layers; Keras's dropout masks)


def arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x_train, y_train, x_test, y_test as the notebooks had them: float32 in [0, 1], NHWC."""
    with np.load(SHIPPED) as f:  # keras.datasets.mnist.load_data() reads this same npz layout
        x_train, y_train, x_test, y_test = (
            f[k] for k in ("x_train", "y_train", "x_test", "y_test")
        )
    x_train = x_train.reshape(-1, 28, 28, 1).astype("float32") / 255
    x_test = x_test.reshape(-1, 28, 28, 1).astype("float32") / 255
    return x_train, y_train, x_test, y_test


class EpochTimes(keras.callbacks.Callback):
    """Each epoch's seconds, its validation included (on_epoch_end comes after it), in `seconds`."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.began = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self.began)


class TestEachEpoch(keras.callbacks.Callback):
    """Scores the test set after every epoch, as the notebooks printed it, and hands each score to
    `then(epoch, accuracy, logs)`; training stops when that returns True."""

    def __init__(
        self, x_test: np.ndarray, y_test: np.ndarray, then: Callable[[int, float, dict], bool]
    ) -> None:
        super().__init__()
        self.x_test, self.y_test, self.then = x_test, y_test, then

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        _, accuracy = self.model.evaluate(self.x_test, self.y_test, verbose=0)
        if self.then(epoch, float(accuracy), logs or {}):
            self.model.stop_training = True


def fit_notebook_way(
    build: Callable[[], keras.Model],
    optimizer: str | keras.optimizers.Optimizer,
    batch: int,
    epochs: int,
    data: tuple[np.ndarray, ...],
    *,
    seed: int = 0,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    validation_split: float = 0.2,
) -> tuple[keras.Model, float]:
    """Seed, build, compile (Keras defaults) and fit the way the notebooks did: the arrays straight
    into model.fit with validation_split (0.2, or 0: all 60,000 train). Returns the model and
    fit's seconds."""
    x_train, y_train = data[:2]
    keras.utils.set_random_seed(seed)
    model = build()
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])  # fmt: skip
    started = time.perf_counter()
    model.fit(x_train, y_train, batch_size=batch, epochs=epochs,
              validation_split=validation_split, verbose=0, callbacks=list(callbacks))  # fmt: skip
    return model, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("optimizer")
    parser.add_argument("batch", type=int)
    parser.add_argument("epochs", type=int)
    parser.add_argument("--until", type=float)
    args = parser.parse_args()

    data = arrays()
    x_train, _, x_test, y_test = data
    reached: dict[str, float] = {}

    def then(epoch: int, acc: float, logs: dict) -> bool:
        print(f"epoch {epoch + 1}: test accuracy {acc:.4f} at {time.time() - STARTED:.1f} s",
              file=sys.stderr, flush=True)  # fmt: skip
        if acc >= args.until and not reached:
            reached.update(epoch=epoch + 1, seconds=time.time() - STARTED, accuracy=acc)
            return True
        return False

    epochs = EpochTimes()
    callbacks = [epochs, *([TestEachEpoch(x_test, y_test, then)] if args.until else [])]
    model, fit_seconds = fit_notebook_way(BUILDERS[args.model], args.optimizer, args.batch,
                                          args.epochs, data, callbacks=callbacks)  # fmt: skip
    _, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    trained = int(len(x_train) * 0.8) * args.epochs
    print(json.dumps({
        "images_per_second": trained / fit_seconds if not args.until else None,
        "epoch_seconds": epochs.seconds,
        "test_accuracy": test_accuracy,
        "reached": reached or None,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
