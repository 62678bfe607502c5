"""`mnist predict ckpt=PATH images=[...]`: each image converted as MNIST's digits were made
(images.to_mnist), classified by the checkpoint; a table of the three likeliest digits per image,
predictions.csv and inputs.png (what the model saw). A file that cannot be read gets its own
error and the others still get predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mnistcli import artifacts, checks, plots, tables
from mnistcli.artifacts import RunDir
from mnistcli.images import UnreadableImage, image_files, to_mnist

GUESSES = 3  # the likeliest digits listed per image


def _rows(files: list[Path], probs: dict[Path, np.ndarray], errors: dict[Path, str]) -> list[dict]:
    rows = []
    for f in files:
        row: dict[str, Any] = {"image": str(f)}
        if f in probs:
            order = np.argsort(-probs[f], kind="stable")[:GUESSES]
            for rank, digit in enumerate(order):
                prefix = "" if rank == 0 else ("second_", "third_")[rank - 1]
                row[f"{prefix}digit"] = int(digit)
                row[f"{prefix}probability"] = round(float(probs[f][digit]), 6)
        else:
            row.update({"digit": None, "probability": None})
        row["error"] = errors.get(f, "")
        rows.append(row)
    columns = ["image", "digit", "probability", "second_digit", "second_probability"]
    columns += ["third_digit", "third_probability", "error"]
    return [{c: r.get(c) for c in columns} for r in rows]


def _table(rows: list[dict]) -> Table:
    table = Table(title="mnist predict")
    for column, justify in (("image", "left"), ("digit", "right"), ("probability", "right")):
        table.add_column(column, justify=justify)
    table.add_column("next guesses")
    for r in rows:
        image = escape(r["image"])
        if r["error"]:
            table.add_row(image, "-", "-", f"[red]error: {escape(r['error'])}[/red]")
            continue
        guesses = ", ".join(
            f"{r[f'{p}_digit']} ({r[f'{p}_probability']:.1%})" for p in ("second", "third")
        )
        table.add_row(image, str(r["digit"]), f"{r['probability']:.1%}", guesses)
    return table


def predict(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """Predict the digit in each of `cfg.images`; write predictions.csv and inputs.png into
    `run_dir`; return the rows (a file that could not be read has its `error`)."""
    checks.check_predict(cfg)
    files = image_files(cfg.images)
    digits: dict[Path, np.ndarray] = {}
    errors: dict[Path, str] = {}
    for f in files:
        try:
            digits[f] = to_mnist(f)
        except UnreadableImage as e:
            errors[f] = str(e)

    probs: dict[Path, np.ndarray] = {}
    if digits:
        from mnistcli.evaluate import load_classifier

        model, _ = load_classifier(cfg)
        probs = dict(zip(digits, model.probabilities(np.stack(list(digits.values()))), strict=True))

    rows = _rows(files, probs, errors)
    run = RunDir(run_dir)
    console = Console()
    console.print(_table(rows))
    tables.checkpoint_line(console, str(Path(cfg.ckpt).resolve()))
    artifacts.write_csv(run.root / "predictions.csv", rows)
    written = [run.root / "predictions.csv"]
    if digits:
        read = [r for f, r in zip(files, rows, strict=True) if f in digits]
        captions = [
            f"{Path(r['image']).name[:14]}\n→ {r['digit']} ({r['probability']:.0%})" for r in read
        ]
        title = "the images as the model sees them (28x28, white on black)"
        artifacts.write_bytes(
            run.root / "inputs.png", plots.digits(list(digits.values()), captions, title, 8)
        )
        written.append(run.root / "inputs.png")
    tables.written(*written)
    return {"rows": rows, "failed": [str(f) for f in errors]}
