"""Why the notebooks' way runs at two speeds: each epoch of bench/notebook.py's fit (the arrays
into model.fit, validation_split 0.2) with the CPU time the process spent in it, so a slow epoch
can be told from a busy machine. Not a test: it prints a table; BENCHMARKS.md records one.

    python bench/notebook_epochs.py lenet5 --epochs 8

Per epoch: wall seconds; the process's CPU seconds (user + system) and so the cores it kept busy;
the whole machine's busy CPU seconds (this process's and any other's) and the seconds the
hypervisor took from it (steal), from /proc/stat."""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from notebook import arrays, fit_notebook_way  # noqa: E402  (the notebooks' way)
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench import CASES  # noqa: E402  (the notebooks' optimizer and batch size per model)
from mnistcli.models import BUILDERS  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def machine_seconds() -> tuple[float, float]:
    """The machine's busy and stolen CPU seconds so far, all CPUs together (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq) / TICK, steal / TICK


class Epochs(keras.callbacks.Callback):
    """Each epoch's wall, process CPU, machine CPU and steal seconds, in `rows`."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, float]] = []

    def _now(self) -> tuple[float, ...]:
        times = os.times()
        return time.perf_counter(), times.user + times.system, *machine_seconds()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.began = self._now()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        wall, cpu, busy, steal = (b - a for a, b in zip(self.began, self._now(), strict=True))
        self.rows.append({"wall": wall, "cpu": cpu, "machine": busy, "steal": steal})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=list(CASES))
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    optimizer, batch = CASES[args.model]
    epochs = Epochs()
    fit_notebook_way(BUILDERS[args.model], optimizer, batch, args.epochs, arrays(),
                     callbacks=[epochs])  # fmt: skip

    table = Table(title=f"the notebooks' way, {args.model} ({optimizer}, batch {batch}), by epoch")
    for col in ("epoch", "wall s", "process CPU s", "cores busy", "machine CPU s", "steal s"):
        table.add_column(col, justify="right")
    for i, r in enumerate(epochs.rows, 1):
        table.add_row(
            str(i), f"{r['wall']:.2f}", f"{r['cpu']:.2f}", f"{r['cpu'] / r['wall']:.2f}",
            f"{r['machine']:.2f}", f"{r['steal']:.2f}",
        )  # fmt: skip
    Console(width=160).print(table)
    print(f"rerun: python bench/notebook_epochs.py {args.model} --epochs {args.epochs}")


if __name__ == "__main__":
    main()
