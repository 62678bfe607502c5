"""Where a training step's time goes (issue 4): each layer's forward and backward pass timed
alone, summed, against the whole training step (model.fit), for the three benchmark models at the
notebooks' batch sizes, with TensorFlow given 1 and then 2 CPU threads. Not a test: it prints a
table; BENCHMARKS.md records one with its command.

    python bench/kernels.py                 # both thread counts, each in its own process
    python bench/kernels.py --threads 2 --json   # one process's rows as JSON (what the above runs)

If the layers alone add up to about the whole step, the step is the kernels' arithmetic, not
per-step overhead (Python, dispatch, input pipeline) that a faster input path could remove.
Read both sides with care: "step ms" is model.fit over 200 steps, fit's own set-up included, and
each layer timed alone pays a call's fixed cost (about 0.25 ms), so the sum overstates the
kernels' share. bench/floor.py measures how fast these models can train at all directly."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench import CASES  # bench/bench.py: the notebooks' optimizer and batch size per model

HERE = Path(__file__).resolve().parent
REPEATS = 200


def _layer_ms(layer, x, first: bool) -> float:  # noqa: ANN001 (Keras layer, tf tensor)
    """Milliseconds of one forward and backward pass of `layer` on `x` (gradients of its
    weights, and of its input unless it is the model's first layer, as in training)."""
    import tensorflow as tf

    @tf.function
    def step(x: tf.Tensor) -> list:
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=True))
        return tape.gradient(loss, ([] if first else [x]) + layer.trainable_weights)

    step(x)
    started = time.perf_counter()
    for _ in range(REPEATS):
        out = step(x)
    [g.numpy() for g in out if g is not None]  # wait for the last one
    return (time.perf_counter() - started) / REPEATS * 1000


def measure(threads: int) -> list[dict]:
    """One row per model: the whole step and its layers, in milliseconds."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    sys.path.insert(0, str(HERE.parent))
    from mnistcli.data import load
    from mnistcli.models import BUILDERS

    data = load()
    rows = []
    for name, (optimizer, batch) in CASES.items():
        n = batch * REPEATS
        x = data.x_train[:n].reshape(-1, 28, 28, 1).astype("float32") / 255
        y = data.y_train[:n]
        keras.backend.clear_session()  # layer names from 0 again
        keras.utils.set_random_seed(0)
        model = BUILDERS[name]()
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
        model.fit(x[:batch], y[:batch], batch_size=batch, verbose=0)  # trace
        started = time.perf_counter()
        model.fit(x, y, batch_size=batch, verbose=0)
        step_ms = (time.perf_counter() - started) / REPEATS * 1000
        h = tf.constant(x[:batch])
        layers = []
        for i, layer in enumerate(model.layers):
            layers.append((layer.name, _layer_ms(layer, h, first=i == 0)))
            h = layer(h)
        rows.append({"model": name, "batch": batch, "threads": threads, "step_ms": step_ms,
                     "layers": layers})  # fmt: skip
    return rows


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
    table = Table(title=f"a training step: whole (model.fit) vs its layers alone, {REPEATS} steps")
    for col in ("model", "batch", "threads", "step ms", "images/s", "layers' sum ms", "sum/step",
                "heaviest layers (ms)"):  # fmt: skip
        table.add_column(col, justify="right")
    for r in rows:
        total = sum(ms for _, ms in r["layers"])
        heavy = sorted(r["layers"], key=lambda kv: -kv[1])[:3]
        table.add_row(
            r["model"], str(r["batch"]), str(r["threads"]), f"{r['step_ms']:.2f}",
            f"{r['batch'] / r['step_ms'] * 1000:,.0f}", f"{total:.2f}",
            f"{total / r['step_ms']:.0%}", ", ".join(f"{n} {ms:.2f}" for n, ms in heavy),
        )  # fmt: skip
    Console(width=160).print(table)
    print(f"rerun: python bench/kernels.py --threads {' '.join(map(str, args.threads))}")


if __name__ == "__main__":
    main()
