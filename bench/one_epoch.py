"""Which small CNN reaches 99% soonest (issue 4's `experiment=fast` in <= 30 s): the product's
lenet5_bn and strided_cnn and variants of strided_cnn, each trained for a few epochs of the 55,000
training images (adam on a one-cycle schedule, 5,000 held out, seed 0), each row its test
accuracy, its images/s after the first step, its fit time and its parameters. Not a test: it
prints a table; BENCHMARKS.md records one with its command.

    python bench/one_epoch.py                  # every candidate, 1 epoch of 128, lr 1e-2
    python bench/one_epoch.py --epochs 3 --batch 256 --lr 2e-2 --only lenet5_bn strided_cnn

`mnist train` spends about 7.5 s outside model.fit (imports, data, the untrained score, the test
score, curves.png), so `experiment=fast` fits in 30 s only if its epochs fit in about 22 s."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _candidates() -> dict[str, Callable]:
    """The product's lenet5_bn and strided_cnn, and wider or deeper variants of strided_cnn."""
    import keras
    from keras import layers

    from mnistcli.data import INPUT_SHAPE
    from mnistcli.models import classifier, lenet5_bn, strided_cnn

    def strided(widths: tuple[int, ...], kernels: tuple[int, ...], dense: int) -> Callable:
        def build() -> keras.Model:
            stack: list = [keras.Input(INPUT_SHAPE)]
            for width, kernel in zip(widths, kernels, strict=True):
                stack += [
                    layers.Conv2D(width, kernel, strides=2, padding="same", use_bias=False),
                    layers.BatchNormalization(),
                    layers.Activation("relu"),
                ]
            stack += [layers.Flatten(), layers.Dense(dense, activation="relu"), classifier()]
            return keras.Sequential(stack)

        return build

    return {
        "lenet5_bn": lenet5_bn,
        "strided_cnn": strided_cnn,
        "strided_32_64": strided((32, 64), (5, 3), 128),
        "strided_dense256": strided((16, 32), (5, 3), 256),
        "strided_16_32_64": strided((16, 32, 64), (5, 3, 3), 128),
    }


def run(split: Any, name: str, build: Callable, epochs: int, lr: float, batch: int) -> dict:
    """One candidate trained on `split` (a mnistcli.data.Split): its row of the table."""
    import keras

    from mnistcli import pipeline
    from mnistcli.callbacks import FirstStep
    from mnistcli.evaluate import score
    from mnistcli.optimizers import learning_rate

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = build()
    steps = pipeline.steps_per_epoch(len(split.x_train), batch)
    one_cycle = {"name": "one_cycle", "warmup": 0.3, "div_factor": 25.0, "final_factor": 0.0}
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate(lr, one_cycle, steps * epochs)),
        loss="sparse_categorical_crossentropy",
    )
    first_step = FirstStep()
    started = time.time()
    model.fit(
        pipeline.training(split.x_train, split.y_train, batch, 0, epochs),
        epochs=epochs,
        steps_per_epoch=steps,
        verbose=0,
        callbacks=[first_step],
    )
    ended = time.time()
    images = (steps * epochs - 1) * batch
    return {
        "model": name,
        "params": model.count_params(),
        "first step s": f"{first_step.ended - started:.1f}",
        "images/s": f"{images / (ended - first_step.ended):,.0f}",
        "fit s": f"{ended - started:.1f}",
        "test accuracy": f"{score(model, split.x_test, split.y_test)['accuracy']:.2%}",
    }


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(HERE.parent))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args()
    from mnistcli.data import load, make_split

    split = make_split(load(), "holdout", val_size=5000)  # read and checked once, for every row
    candidates = _candidates()
    rows = [
        run(split, name, candidates[name], args.epochs, args.lr, args.batch)
        for name in (args.only or candidates)
    ]
    print(f"\n{args.epochs} epoch(s), adam {args.lr:g} one-cycle, batch {args.batch}\n")
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + " --- |" * len(rows[0]))
    for row in rows:
        print("| " + " | ".join(str(v) for v in row.values()) + " |")
    os._exit(0)  # TensorFlow's teardown adds seconds and nothing else


if __name__ == "__main__":
    main()
