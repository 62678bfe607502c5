"""Where a training step's time goes (issue 4): each layer's forward and backward pass timed
alone against the whole training step (forward, backward, optimizer update), each run REPEATS
times one after another inside one tf.function (no per-call cost, no Keras loop, no input
pipeline), for the three benchmark models at the notebooks' batch sizes, as `mnist train` builds
them, with TensorFlow given 1 and then 2 CPU threads. Not a test: it prints a table;
BENCHMARKS.md records one with its command.

    python bench/kernels.py                 # both thread counts, each in its own process
    python bench/kernels.py --threads 2 --json   # one process's rows as JSON (what the above runs)

If the layers alone add up to about the whole step, the step is its kernels, and only faster
kernels make it faster. GFLOP/s (the layer's multiply-adds, bench/floor.py) says how near each
convolution and dense layer runs to the arithmetic limit; bench/floor.py prints TensorFlow's
matrix-multiply rate on the same machine."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import CASES  # bench/bench.py: the notebooks' optimizer and batch size per model

HERE = Path(__file__).resolve().parent
REPEATS = 300


def in_graph_ms(body: Callable, x: Any) -> float:
    """Milliseconds per call of `body(x')`, a scalar, called REPEATS times one after another in
    one tf.function (x' = x nudged by the call's number, so nothing is hoisted out of the loop);
    the best of 3 such runs."""
    import tensorflow as tf

    @tf.function
    def run() -> tf.Tensor:
        total = tf.constant(0.0)
        for i in tf.range(REPEATS):
            tf.autograph.experimental.set_loop_options(parallel_iterations=1)
            total += body(x + tf.cast(i, x.dtype) * 1e-6)
        return total

    run().numpy()  # trace
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        run().numpy()
        best = min(best, time.perf_counter() - started)
    return best / REPEATS * 1000


def layer_ms(layer: Any, x: Any, first: bool) -> float:
    """Milliseconds of one forward and backward pass of `layer` on `x` (gradients of its
    weights, and of its input unless it is the model's first layer, as in training)."""
    import tensorflow as tf

    def pass_(x: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.cast(layer(x, training=True), "float32"))
        grads = tape.gradient(loss, ([] if first else [x]) + layer.trainable_weights)
        return tf.add_n([loss] + [tf.reduce_sum(g) for g in grads if g is not None])

    return in_graph_ms(pass_, x)


def _row(name: str, optimizer: str, batch: int, threads: int, images: Any, labels: Any) -> dict:
    """One model's row: its whole training step and each layer alone, in milliseconds."""
    import keras
    import tensorflow as tf
    from floor import mnists_model

    from mnistcli.precision import layer_macs

    x = tf.constant(images[:batch].reshape(-1, 28, 28, 1).astype("float32") / 255)
    y = tf.constant(labels[:batch])
    keras.backend.clear_session()  # layer names from 0 again
    keras.utils.set_random_seed(0)
    model = mnists_model(name)
    opt = keras.optimizers.get(optimizer)
    opt.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    def step(x: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        opt.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    step_ms = in_graph_ms(step, x)
    h, layers = x, []
    for i, layer in enumerate(model.layers):
        ms = layer_ms(layer, h, first=i == 0)
        macs = layer_macs(layer) * batch  # forward; backward twice that, but once for the first
        flops = 2 * macs * (2 if i == 0 else 3)
        layers.append((layer.name, ms, flops / ms / 1e6 if macs else None))
        h = layer(h)
    return {"model": name, "batch": batch, "threads": threads, "step_ms": step_ms,
            "layers": layers}  # fmt: skip


def measure(threads: int) -> list[dict]:
    """One row per model: the whole step and its layers, in milliseconds."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    sys.path.insert(0, str(HERE.parent))
    from mnistcli.data import load

    data = load()
    return [_row(name, optimizer, batch, threads, data.x_train, data.y_train)
            for name, (optimizer, batch) in CASES.items()]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--json", action="store_true", help="print this process's rows as JSON")
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure(args.threads[0])))
        return

    from rich.console import Console
    from rich.table import Table

    rows = []
    for threads in args.threads:  # each in a fresh process: thread pools are fixed at start
        out = subprocess.run(
            [sys.executable, __file__, "--json", "--threads", str(threads)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        rows += json.loads(out.stdout.strip().splitlines()[-1])
    table = Table(title=f"a training step vs its layers alone, {REPEATS} in one call, best of 3")
    for col in ("model", "batch", "threads", "step ms", "images/s", "layers' sum ms", "sum/step",
                "heaviest layers: ms (GFLOP/s)"):  # fmt: skip
        table.add_column(col, justify="right")
    for r in rows:
        total = sum(ms for _, ms, _ in r["layers"])
        heavy = sorted(r["layers"], key=lambda kv: -kv[1])[:3]
        table.add_row(
            r["model"], str(r["batch"]), str(r["threads"]), f"{r['step_ms']:.2f}",
            f"{r['batch'] / r['step_ms'] * 1000:,.0f}", f"{total:.2f}",
            f"{total / r['step_ms']:.0%}",
            ", ".join(f"{n} {ms:.2f}" + (f" ({gf:.0f})" if gf else "") for n, ms, gf in heavy),
        )  # fmt: skip
    Console(width=160).print(table)
    print(f"rerun: python bench/kernels.py --threads {' '.join(map(str, args.threads))}")


if __name__ == "__main__":
    main()
