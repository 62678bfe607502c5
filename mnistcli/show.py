"""`mnist show`: the notebooks' pictures of the data: the first n digits with their labels
(digits.png) and one digit enlarged with its pixel values (digit_<index>.png). No TensorFlow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mnistcli import artifacts, checks, plots
from mnistcli.data import load
from mnistcli.errors import UserError
from mnistcli.tables import written


def show(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """Write digits.png and digit_<index>.png of `cfg.show.split` into `run_dir`; return their
    paths."""
    checks.check_show(cfg)
    data = load(cfg.data.path)
    split, n, index = cfg.show.split, cfg.show.n, cfg.show.index
    x, y = (data.x_train, data.y_train) if split == "train" else (data.x_test, data.y_test)
    if n > len(x):
        raise UserError(f"show.n={n} is more than the {len(x):,} {split} images; pick a smaller n")
    if index >= len(x):
        raise UserError(
            f"show.index={index} is past the last of the {len(x):,} {split} images; pick an "
            f"index below {len(x)}"
        )
    root = Path(run_dir)
    files = {
        root / "digits.png": plots.digits(
            x[:n], [f"label {label}" for label in y[:n]], f"the first {n} {split} digits"
        ),
        root / f"digit_{index}.png": plots.digit_values(
            x[index], f"{split} digit {index}: label {y[index]} (pixel values 0-255)"
        ),
    }
    for path, png in files.items():
        artifacts.write_bytes(path, png)
    written(*files)
    return {"files": [str(p) for p in files]}
