"""How fast TensorFlow can train the notebooks' models at all, at their batch sizes (issue 4's 2x
target): each epoch as one call into TensorFlow (every training step, then the validation pass,
in one tf.function: no Keras fit loop, no callbacks, no metrics) against the notebooks' way, by
turns, each run in its own process. Not a test: it prints a table; BENCHMARKS.md records one with
its command.

    python bench/floor.py                              # 3 models, 3 epochs, 2 repeats
    python bench/floor.py --only lenet5 --epochs 2 --repeats 1

Seconds per epoch are the median of the epochs after the first (whose tracing both pay). Both
train on the first 80% of the training set and validate on the last 20% at the same batch size;
the one-call way reads them through `mnist train`'s tf.data pipelines (mnistcli.pipeline).
The ratio, notebook epoch over one-call epoch, is about the most any trainer built on the same
layers and kernels can gain: the one-call epoch keeps only the steps' and the validation's own
ops. The one-call way builds the model as `mnist train` does (its model config, so lenet5_bn
with model.batchnorm=fast); the notebooks' way builds Keras's layers. `XLA` compiles each step with XLA
(jit_compile), as `trainer.jit_compile=true` would.

GFLOP/s is the arithmetic of an epoch (the convolutions' and dense layers' multiply-adds: each
layer's forward pass, its weights' gradient and, but for the first layer, its input's gradient
for 48,000 images; the forward pass for 12,000) over its seconds, beside what TensorFlow's
float32 matrix multiply (2048 x 2048) reaches on this CPU: how near the arithmetic limit a way
runs. Batch norm, pooling and activations add memory traffic, not multiply-adds."""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from bench import CASES, measure  # the notebooks' optimizer and batch size per model
from mnistcli.precision import layer_macs

if TYPE_CHECKING:
    import keras

WAYS = ("notebook", "one call", "one call, XLA")


def notebook_epochs(model: str, epochs: int) -> list[float]:
    from notebook import EpochTimes, arrays, fit_notebook_way

    from mnistcli.models import BUILDERS

    optimizer, batch = CASES[model]
    times = EpochTimes()
    fit_notebook_way(BUILDERS[model], optimizer, batch, epochs, arrays(), callbacks=[times])
    return times.seconds


def mnists_model(name: str) -> keras.Model:
    """The model `mnist train model=NAME` builds, with its model config's knobs."""
    from mnistcli.checks import shipped
    from mnistcli.models import build_model

    return build_model(**shipped(f"model/{name}"))


def flops_per_image(model: keras.Model) -> tuple[float, float]:
    """(training, inference) floating-point operations per image: twice the multiply-adds of the
    Conv2D and Dense layers; training counts forward, weight gradient and input gradient (none
    for the first such layer)."""
    macs = [m for m in map(layer_macs, model.layers) if m]
    return 2.0 * (3 * sum(macs) - macs[0]), 2.0 * sum(macs)


def epoch_gflop(name: str) -> float:
    """An epoch's arithmetic: 48,000 images trained, 12,000 validated."""
    train, infer = flops_per_image(mnists_model(name))
    return (48_000 * train + 12_000 * infer) / 1e9


def matmul_gflops(n: int = 2048, repeats: int = 20) -> float:
    """TensorFlow's float32 n x n matrix multiply on this machine, GFLOP/s (best of 3 rounds)."""
    import tensorflow as tf

    a, b = tf.random.normal((n, n)), tf.random.normal((n, n))
    product = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    product()
    best = math.inf
    for _ in range(3):
        began = time.perf_counter()
        for _ in range(repeats):
            product().numpy()
        best = min(best, (time.perf_counter() - began) / repeats)
    return 2 * n**3 / best / 1e9


def one_call_epochs(model_name: str, epochs: int, xla: bool) -> list[float]:
    import keras
    import tensorflow as tf

    from mnistcli import data, pipeline

    optimizer, batch = CASES[model_name]
    mnist = data.load()
    x, y = mnist.x_train, mnist.y_train
    n = int(len(x) * 0.8)  # validation_split=0.2: Keras validates on the last 20%
    keras.utils.set_random_seed(0)
    model = mnists_model(model_name)
    opt = keras.optimizers.get(optimizer)
    opt.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    val = pipeline.inference(x[n:], y[n:], batch)  # mnist's pipelines: uint8 in, scaled in graph

    def step(images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(images, training=True))
        opt.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    if xla:  # a function of its own, which XLA compiles; else the steps are inlined in the epoch
        step = tf.function(step, jit_compile=True)

    @tf.function
    def epoch(train: tf.data.Dataset) -> tf.Tensor:
        loss, correct = 0.0, 0
        for images, labels in train:
            loss += step(images, labels)
        for images, labels in val:
            guess = tf.argmax(model(images, training=False), -1, output_type=tf.int32)
            correct += tf.reduce_sum(tf.cast(guess == tf.cast(labels, tf.int32), tf.int32))
        return correct

    seconds = []
    for e in range(epochs):
        train = pipeline.training(x[:n], y[:n], batch, seed=0, epochs=e + 1, initial_epoch=e)
        began = time.perf_counter()
        epoch(train).numpy()
        seconds.append(time.perf_counter() - began)
    assert epoch.experimental_get_tracing_count() == 1  # each epoch's dataset: the same spec
    return seconds


def child(model: str, way: str, cwd: Path, *args: str) -> Any:
    """This script's `--run MODEL WAY ARGS` in a process of its own: the JSON it prints last."""
    _, _, out = measure([sys.executable, __file__, "--run", model, way, *args], cwd)
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=list(CASES))
    parser.add_argument("--run", nargs=2, metavar=("MODEL", "WAY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:  # one measurement, in this process: its epochs' seconds as JSON
        model, way = args.run
        if way == "matmul":
            print(json.dumps(matmul_gflops()))
        elif way == "gflop":
            print(json.dumps(epoch_gflop(model)))
        elif way == "notebook":
            print(json.dumps(notebook_epochs(model, args.epochs)))
        else:
            print(json.dumps(one_call_epochs(model, args.epochs, xla=way.endswith("XLA"))))
        return

    cwd = Path(tempfile.mkdtemp(prefix="mnist-floor-"))
    console = Console(width=max(120, Console().width))
    table = Table(title=f"seconds per epoch (48,000 training + 12,000 validating images), "
                        f"median of epochs 2-{args.epochs} over {args.repeats} runs")  # fmt: skip
    for col in ("model", "batch", *WAYS, "notebook / one call", "notebook / one call, XLA",
                "GFLOP per epoch", "GFLOP/s: " + " / ".join(WAYS)):  # fmt: skip
        table.add_column(col, justify="right")
    peak = child("-", "matmul", cwd)
    for model in args.only:
        steady: dict[str, list[float]] = {way: [] for way in WAYS}
        for i in range(args.repeats):  # by turns, so drift in the machine hits all alike
            for way in WAYS:
                seconds = child(model, way, cwd, "--epochs", str(args.epochs))
                steady[way] += seconds[1:]
                console.print(f"{model} #{i + 1} {way}: " + " / ".join(f"{s:.2f}" for s in seconds),
                              highlight=False)  # fmt: skip
        s = {way: statistics.median(v) for way, v in steady.items()}
        gflop = child(model, "gflop", cwd)
        table.add_row(model, str(CASES[model][1]), *(f"{s[w]:.2f}" for w in WAYS),
                      f"{s['notebook'] / s['one call']:.2f}x",
                      f"{s['notebook'] / s['one call, XLA']:.2f}x", f"{gflop:.0f}",
                      " / ".join(f"{gflop / s[w]:.0f}" for w in WAYS))  # fmt: skip
    table.caption = f"TensorFlow's float32 matmul (2048 x 2048) here: {peak:.0f} GFLOP/s"
    console.print(table)
    console.print(f"rerun: python bench/floor.py --epochs {args.epochs} --repeats {args.repeats} "
                  f"--only {' '.join(args.only)}", highlight=False)  # fmt: skip


if __name__ == "__main__":
    main()
