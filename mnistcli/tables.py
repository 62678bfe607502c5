"""Rich tables printed at the end of a train or eval run."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def train_summary(console: Console, m: dict[str, Any], run_dir: str) -> None:
    table = Table(title=f"mnist train: {m['model']} ({m['status']})", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("params", f"{m['params']:,}"),
        ("device", f"{m['device']['type']} x{m['device']['count']} ({m['device']['name']})"),
        ("epochs", f"{m['epochs_completed']} (best {m['best_epoch']})"),
        ("untrained test accuracy", _pct(m["untrained_test_accuracy"])),
        ("val accuracy / loss", f"{_pct(m['val']['accuracy'])} / {_loss(m['val']['loss'])}"),
        ("test accuracy / loss", f"{_pct(m['test']['accuracy'])} / {_loss(m['test']['loss'])}"),
        ("train time", f"{m['timing']['train_seconds']:.1f} s"),
        ("throughput", f"{m['timing']['samples_per_second']:,.0f} images/s"),
        ("run dir", run_dir),
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)


def eval_summary(console: Console, m: dict[str, Any], run_dir: str) -> None:
    table = Table(title="mnist eval", caption=m["ckpt"])
    table.add_column("class", justify="right")
    table.add_column("accuracy", justify="right")
    table.add_column("images", justify="right")
    counts = [sum(row) for row in m["confusion_matrix"]]
    for digit, (acc, n) in enumerate(zip(m["per_class_accuracy"], counts, strict=True)):
        table.add_row(str(digit), _pct(acc), str(n))
    table.add_section()
    table.add_row("all", _pct(m["test"]["accuracy"]), str(sum(counts)), style="bold")
    console.print(table)
    console.print(f"test loss {_loss(m['test']['loss'])}   run dir {run_dir}", highlight=False)
