"""Rich tables printed at the end of a train or eval run, and by `mnist report`."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def written(*paths: object) -> None:
    """Print each file a run wrote, one per line, never wrapped (so it can be copied)."""
    for path in paths:
        print(f"written: {path}", flush=True)


def _seconds(value: float | None, what: str) -> str:
    return "-" if value is None else f"{value:.1f} s {what}"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def best_note(best_epoch: int | None) -> str:
    """' (best N)' where a checkpoint callback picked a best epoch, else nothing."""
    return f" (best {best_epoch})" if best_epoch else ""


def _device(device: dict[str, Any]) -> str:
    return f"{device.get('type')} x{device.get('count')} ({device.get('name')})"


def train_summary(console: Console, m: dict[str, Any], run_dir: str) -> None:
    # a run that failed before training records only its config (artifacts.record_failure)
    model = m.get("model") or ((m.get("config") or {}).get("model") or {}).get("name", "?")
    table = Table(title=f"mnist train: {model} ({m.get('status')})", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    val, test, timing = m.get("val") or {}, m.get("test") or {}, m.get("timing") or {}
    device = m.get("device")
    rows = [
        ("params", f"{m['params']:,}" if "params" in m else "-"),
        ("device", _device(device) if device else "-"),
        ("epochs", f"{m.get('epochs_completed', 0)}{best_note(m.get('best_epoch'))}"),
        ("untrained test accuracy", pct(m.get("untrained_test_accuracy"))),
        ("val accuracy / loss", f"{pct(val.get('accuracy'))} / {_loss(val.get('loss'))}"),
        ("test accuracy / loss", f"{pct(test.get('accuracy'))} / {_loss(test.get('loss'))}"),
        ("train time", _seconds(timing.get("train_seconds"), "").strip()),
        ("throughput", f"{timing['samples_per_second']:,.0f} images/s" if timing else "-"),
        ("start-up", _seconds(timing.get("startup_seconds"), "to the first step's end")),
        ("run dir", run_dir),
    ]
    if m.get("error"):
        rows.insert(0, ("error", m["error"]))
    for row in rows:
        table.add_row(*row)
    console.print(table)


def eval_summary(console: Console, m: dict[str, Any], run_dir: str) -> None:
    table = Table(title="mnist eval")
    table.add_column("class", justify="right")
    table.add_column("accuracy", justify="right")
    table.add_column("images", justify="right")
    counts = [sum(row) for row in m["confusion_matrix"]]
    for digit, (acc, n) in enumerate(zip(m["per_class_accuracy"], counts, strict=True)):
        table.add_row(str(digit), pct(acc), str(n))
    table.add_section()
    table.add_row("all", pct(m["test"]["accuracy"]), str(sum(counts)), style="bold")
    console.print(table)
    checkpoint_line(console, m["ckpt"])
    console.print(
        f"test loss {_loss(m['test']['loss'])}   run dir {run_dir}", highlight=False, soft_wrap=True
    )


def checkpoint_line(console: Console, path: str) -> None:
    """The checkpoint's path, whole on a line of its own (as a table's caption it would be cut to
    the table's width)."""
    console.print(f"checkpoint {escape(path)}", highlight=False, soft_wrap=True)


def _mean_std(stat: dict[str, float | None], fmt: Any) -> str:
    if stat["mean"] is None:
        return "-"
    return fmt(stat["mean"]) + ("" if stat["std"] is None else f" ± {fmt(stat['std'])}")


def _value(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _resumable(paths: list[str], shown: int = 5) -> None:
    """The runs that can go on from their last finished epoch (interrupted, or stopped: killed,
    or ended by an error before recording one), each with the command that continues it; never
    wrapped, so each can be copied."""
    if not paths:
        return
    print(f"{len(paths)} run(s) interrupted or stopped before finishing; continue each with:")
    for path in paths[:shown]:
        print(f"  mnist train resume={shlex.quote(path)}")
    if len(paths) > shown:
        print(f"  ... and {len(paths) - shown} more (report.json lists them under resumable)")


def report_table(console: Console, r: dict[str, Any]) -> None:
    """One row per group of runs: the parameters that vary, counts, accuracy mean ± std (n - 1);
    report.csv/json also have the losses. When a column per parameter would not fit the
    terminal (runs that differ in many keys), one wrapped `config` column holds them all, so
    the results stay in view."""
    replicates = (
        f" over runs that differ only in {', '.join(r['replicates'])}" if r["replicates"] else ""
    )
    not_done = "".join(f", {r[k]} {k}" for k in ("interrupted", "stopped", "running") if r[k])
    table = Table(
        title=f"mnist report: {r['runs']} run{'' if r['runs'] == 1 else 's'}, {r['failed']} failed"
        + not_done,
        caption=f"mean ± std{replicates}; ★ best val accuracy  ({r['path']})",
    )
    keys, results = list(r["params"]), ["runs", "failed", "val accuracy", "test accuracy"]
    rows = [
        (
            [_value(v) for v in g["params"].values()],
            [str(g["runs"]), str(g["failed"]),
             _mean_std(g["val_accuracy"], pct) + (" ★" if g["best"] else ""),
             _mean_std(g["test_accuracy"], pct)],
            g["best"],
        )
        for g in r["groups"]
    ]  # fmt: skip
    # each column as wide as its widest cell, plus the table's padding and rule
    cells = [params + res for params, res, _ in rows]
    needed = sum(
        max([len(c), *(len(row[i]) for row in cells)]) + 3 for i, c in enumerate(keys + results)
    )
    if keys and needed > console.width:
        table.add_column("config", overflow="fold")
        # a key the group does not have ("-") is left out
        rows = [([" ".join(f"{k}={v}" for k, v in zip(keys, p, strict=True) if v != "-")], res, best)
                for p, res, best in rows]  # fmt: skip
    else:
        for key in keys:
            table.add_column(key, justify="right", min_width=min(len(key), 9))
    for column in results:
        table.add_column(column, justify="right", no_wrap=True)
    for params, res, best in rows:
        table.add_row(*params, *res, style="bold" if best else None)
    console.print(table)
    _resumable(r["resumable"])
    files = [Path(r["path"]) / f"report.{ext}" for ext in ("csv", "json", "md")]
    written(*files, *([r["png"]] if r["png"] else []))
