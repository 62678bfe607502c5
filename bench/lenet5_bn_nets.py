"""Which net is the notebooks' LeNet-5-BN? Issue 6 names no layers or parameter count for it;
issue 4 gives its speed the notebooks' way: about 5,300 images/s (adam, batch 64) against LeNet-5's
2,900 (303,626 params, SGD, batch 32) on a 2-core CPU, 1.83x. This times two readings the same way
in one run, by turns, against that LeNet-5, and prints each one's ratio beside the issue's:

- `lenet5_bn`, the product's: the textbook LeNet-5 (44,426 params) with batch norm and relu;
- `lenet5_303k_bn`: the notebooks' 303,626-param LeNet-5 with batch norm after each convolution and
  the hidden dense layer, relu throughout (304,530 params).

    python bench/lenet5_bn_nets.py                 # 1 epoch each, 3 turns
    python bench/lenet5_bn_nets.py --epochs 30 --repeats 1 --seed 0 --only lenet5_303k_bn

Not a test: it prints a table; RESULTS.md records one with its command."""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from keras import layers  # noqa: E402
from notebook import arrays, fit_notebook_way  # noqa: E402  (the notebooks' arrays and fit)
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench import CASES  # noqa: E402  (the notebooks' optimizer and batch per model)
from mnistcli.data import INPUT_SHAPE  # noqa: E402
from mnistcli.models import BUILDERS, classifier  # noqa: E402

ISSUE_RATIO = 5300 / 2900  # issue 4: LeNet-5-BN's images/s over LeNet-5's, the notebooks' way


def lenet5_303k_bn() -> keras.Model:
    """The notebooks' LeNet-5 (mnistcli.models.lenet5) with batch norm, relu throughout."""
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            layers.Conv2D(6, 5),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.AveragePooling2D(pool_size=2, strides=1),
            layers.Conv2D(16, 5),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.AveragePooling2D(pool_size=2, strides=2),
            layers.Conv2D(120, 5),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.Flatten(),
            layers.Dense(84),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            classifier(),
        ],
        name="lenet5_303k_bn",
    )


NETS: dict[str, tuple[Callable[[], keras.Model], str, int]] = {  # builder, optimizer, batch
    "lenet5": (BUILDERS["lenet5"], *CASES["lenet5"]),
    "lenet5_bn": (BUILDERS["lenet5_bn"], *CASES["lenet5_bn"]),
    "lenet5_303k_bn": (lenet5_303k_bn, *CASES["lenet5_bn"]),  # the LeNet-5-BN notebook's settings
}


def fit(name: str, epochs: int, data: tuple, seed: int = 0) -> dict:
    """One net trained the notebooks' way (validation_split 0.2, Keras defaults); test accuracy
    of the last epoch's weights, as the notebooks printed it."""
    build, optimizer, batch = NETS[name]
    model, seconds = fit_notebook_way(build, optimizer, batch, epochs, data, seed=seed)
    x_train, _, x_test, y_test = data
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    return {"ips": int(len(x_train) * 0.8) * epochs / seconds, "acc": accuracy,
            "params": model.count_params()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", choices=sorted(NETS), default=sorted(NETS))
    args = parser.parse_args()
    console = Console(width=max(140, Console().width))
    data = arrays()
    fit("lenet5_bn", 1, tuple(a[:2000] for a in data))  # warm TensorFlow up outside the timings
    rows: dict[str, list[dict]] = {name: [] for name in args.only}
    for i in range(args.repeats):  # by turns, so drift in the machine hits every net alike
        for name in args.only:
            rows[name].append(fit(name, args.epochs, data, args.seed))
            console.print(f"#{i + 1} {name}: {rows[name][-1]['ips']:,.0f} img/s", highlight=False)

    base = statistics.median(r["ips"] for r in rows["lenet5"]) if "lenet5" in rows else None
    table = Table(title=f"The notebooks' way, {args.epochs} epoch(s), seed {args.seed}, median of "
                  f"{args.repeats}; "
                  f"issue 4's LeNet-5-BN / LeNet-5: {ISSUE_RATIO:.2f}x")  # fmt: skip
    for col in ("net", "params", "optimizer, batch", "img/s", "/ lenet5", "test acc"):
        table.add_column(col, justify="right")
    for name, runs in rows.items():
        ips = statistics.median(r["ips"] for r in runs)
        _, optimizer, batch = NETS[name]
        table.add_row(name, f"{runs[0]['params']:,}", f"{optimizer}, {batch}", f"{ips:,.0f}",
                      f"{ips / base:.2f}x" if base else "-",
                      f"{statistics.median(r['acc'] for r in runs):.2%}")  # fmt: skip
    console.print(table)
    console.print(f"rerun: python bench/lenet5_bn_nets.py --epochs {args.epochs} "
                  f"--repeats {args.repeats} --seed {args.seed} --only {' '.join(args.only)}",
                  highlight=False)  # fmt: skip


if __name__ == "__main__":
    main()
