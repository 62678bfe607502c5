"""How fast TensorFlow can train the notebooks' models at all, at their batch sizes (issue 4's 2x
target): each epoch as one call into TensorFlow (every training step, then the validation pass,
in one tf.function: no Keras fit loop, no callbacks, no metrics) against the notebooks' way, by
turns, each run in its own process. Not a test: it prints a table; BENCHMARKS.md records one with
its command.

    python bench/floor.py                              # 3 models, 3 epochs, 2 repeats
    python bench/floor.py --only lenet5 --epochs 2 --repeats 1

Seconds per epoch are the median of the epochs after the first (whose tracing both pay). Both
train on the first 80% of the training set and validate on the last 20% at the same batch size.
The ratio, notebook epoch over one-call epoch, is about the most any trainer built on the same
layers and kernels can gain: the one-call epoch keeps only the steps' and the validation's own
ops. `XLA` compiles each step with XLA (jit_compile), as `trainer.jit_compile=true` would."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import CASES, measure  # the notebooks' optimizer and batch size per model

WAYS = ("notebook", "one call", "one call, XLA")


def notebook_epochs(model: str, epochs: int) -> list[float]:
    from notebook import EpochTimes, arrays, fit_notebook_way

    from mnistcli.models import BUILDERS

    optimizer, batch = CASES[model]
    times = EpochTimes()
    fit_notebook_way(BUILDERS[model], optimizer, batch, epochs, arrays(), callbacks=[times])
    return times.seconds


def one_call_epochs(model_name: str, epochs: int, xla: bool) -> list[float]:
    import keras
    import tensorflow as tf
    from notebook import arrays

    from mnistcli.models import BUILDERS

    optimizer, batch = CASES[model_name]
    x, y, _, _ = arrays()
    n = int(len(x) * 0.8)  # validation_split=0.2: Keras validates on the last 20%
    keras.utils.set_random_seed(0)
    model = BUILDERS[model_name]()
    opt = keras.optimizers.get(optimizer)
    opt.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    train = tf.data.Dataset.from_tensor_slices((x[:n], y[:n])).cache().shuffle(n, seed=0)
    train = train.batch(batch).prefetch(2)
    val = tf.data.Dataset.from_tensor_slices((x[n:], y[n:])).batch(batch).cache()

    def step(images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(images, training=True))
        opt.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    if xla:  # a function of its own, which XLA compiles; else the steps are inlined in the epoch
        step = tf.function(step, jit_compile=True)

    @tf.function
    def epoch() -> tf.Tensor:
        loss, correct = 0.0, 0
        for images, labels in train:
            loss += step(images, labels)
        for images, labels in val:
            guess = tf.argmax(model(images, training=False), -1, output_type=tf.int32)
            correct += tf.reduce_sum(tf.cast(guess == tf.cast(labels, tf.int32), tf.int32))
        return correct

    seconds = []
    for _ in range(epochs):
        began = time.perf_counter()
        epoch().numpy()
        seconds.append(time.perf_counter() - began)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=list(CASES))
    parser.add_argument("--run", nargs=2, metavar=("MODEL", "WAY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:  # one measurement, in this process: its epochs' seconds as JSON
        model, way = args.run
        if way == "notebook":
            print(json.dumps(notebook_epochs(model, args.epochs)))
        else:
            print(json.dumps(one_call_epochs(model, args.epochs, xla=way.endswith("XLA"))))
        return

    cwd = Path(tempfile.mkdtemp(prefix="mnist-floor-"))
    console = Console(width=max(120, Console().width))
    table = Table(title=f"seconds per epoch (48,000 training + 12,000 validating images), "
                        f"median of epochs 2-{args.epochs} over {args.repeats} runs")  # fmt: skip
    for col in ("model", "batch", *WAYS, "notebook / one call", "notebook / one call, XLA"):
        table.add_column(col, justify="right")
    for model in args.only:
        steady: dict[str, list[float]] = {way: [] for way in WAYS}
        for i in range(args.repeats):  # by turns, so drift in the machine hits all alike
            for way in WAYS:
                cmd = [sys.executable, __file__, "--run", model, way, "--epochs", str(args.epochs)]
                _, _, out = measure(cmd, cwd)
                seconds = json.loads(out.strip().splitlines()[-1])
                steady[way] += seconds[1:]
                console.print(f"{model} #{i + 1} {way}: " + " / ".join(f"{s:.2f}" for s in seconds),
                              highlight=False)  # fmt: skip
        s = {way: statistics.median(v) for way, v in steady.items()}
        table.add_row(model, str(CASES[model][1]), *(f"{s[w]:.2f}" for w in WAYS),
                      f"{s['notebook'] / s['one call']:.2f}x",
                      f"{s['notebook'] / s['one call, XLA']:.2f}x")  # fmt: skip
    console.print(table)
    console.print(f"rerun: python bench/floor.py --epochs {args.epochs} --repeats {args.repeats} "
                  f"--only {' '.join(args.only)}", highlight=False)  # fmt: skip


if __name__ == "__main__":
    main()
