"""Does a model expect blurrier digits than MNIST's? Scores checkpoints on their run's validation
images (the split and data that the run's .hydra/config.yaml names: no test image is looked at)
or on the 10,000 test images (--images test), as they are and as read a quarter and half a pixel
down and right (bilinearly: each pixel a mix of its neighbours, a little blur). A model trained on
digits that its augmentation resampled several times scores better on the blurred ones. A
diagnostic, not a test; RESULTS.md records what it printed with its command.

    python bench/blurred_test.py outputs/trials/elastic-4-resamplings/*/checkpoints/best.keras
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

SHIFTS = {"as they are": 0.0, "1/4 px blur": 0.25, "1/2 px blur": 0.5}  # down and right, in px


def run_images(checkpoint: str, which: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The checkpoint's run's validation (or test) images, as they are and blurred, and labels."""
    from mnistcli.augment import bilinear
    from mnistcli.data import make_split

    cfg = OmegaConf.load(Path(checkpoint).parent.parent / ".hydra" / "config.yaml")
    split = make_split(_load(cfg.data.path), limit=cfg.data.limit, **cfg.split)
    x, y = (split.x_val, split.y_val) if which == "val" else (split.x_test, split.y_test)
    x = (x / 255.0).astype("float32")
    rows, columns = (np.broadcast_to(g, x.shape) for g in np.indices(x.shape[1:]).astype("float32"))
    return {
        name: x if not shift else np.asarray(bilinear(x, rows + shift, columns + shift))
        for name, shift in SHIFTS.items()
    }, y


@functools.cache
def _load(path: str | None) -> Any:
    """MNIST, read once for all the checkpoints whose runs read the same file."""
    from mnistcli.data import load

    return load(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help=".keras files")
    parser.add_argument("--images", choices=["val", "test"], default="val")
    args = parser.parse_args()

    import keras

    table = Table(title=f"{args.images} accuracy")
    table.add_column("checkpoint", overflow="fold")
    table.add_column("images", justify="right")
    for name in SHIFTS:
        table.add_column(name, justify="right")
    for path in args.checkpoints:
        versions, y = run_images(path, args.images)
        model = keras.models.load_model(path, compile=False)
        scores = []
        for x in versions.values():
            guesses = model.predict(x[..., None], batch_size=500, verbose=0).argmax(axis=1)
            scores.append(f"{(guesses == y).mean():.2%}")
        table.add_row(path, f"{len(y):,}", *scores)
    Console().print(table)


if __name__ == "__main__":
    main()
