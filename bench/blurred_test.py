"""Does a model expect blurrier digits than MNIST's? Scores checkpoints on the validation images
(the last --val-size training images, which split=holdout holds out: no test image is looked at)
or on the 10,000 test images (--images test), as they are and as read a quarter and half a pixel
down and right (bilinearly: each pixel a mix of its neighbours, a little blur). A model trained on
digits that its augmentation resampled several times scores better on the blurred ones. A
diagnostic, not a test; RESULTS.md records what it printed with its command.

    python bench/blurred_test.py outputs/trials/elastic-4-resamplings/*/checkpoints/best.keras
"""

from __future__ import annotations

import argparse

import numpy as np
from rich.console import Console
from rich.table import Table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help=".keras files")
    parser.add_argument("--images", choices=["val", "test"], default="val")
    parser.add_argument("--val-size", type=int, default=5000, help="split.val_size of the runs")
    args = parser.parse_args()

    import keras

    from mnistcli.augment import bilinear
    from mnistcli.data import load

    data = load()
    if args.images == "val":
        x, y = data.x_train[-args.val_size :], data.y_train[-args.val_size :]
    else:
        x, y = data.x_test, data.y_test
    x = (x / 255.0).astype("float32")
    rows, columns = (np.broadcast_to(g, x.shape) for g in np.indices(x.shape[1:]).astype("float32"))
    versions = {
        "as they are": x,
        "1/4 px blur": np.asarray(bilinear(x, rows + 0.25, columns + 0.25)),
        "1/2 px blur": np.asarray(bilinear(x, rows + 0.5, columns + 0.5)),
    }
    table = Table(title=f"{args.images} accuracy ({len(y):,} images)")
    table.add_column("checkpoint", overflow="fold")
    for name in versions:
        table.add_column(name, justify="right")
    for path in args.checkpoints:
        model = keras.models.load_model(path, compile=False)
        scores = []
        for images in versions.values():
            guesses = model.predict(images[..., None], batch_size=500, verbose=0).argmax(axis=1)
            scores.append(f"{(guesses == y).mean():.2%}")
        table.add_row(path, *scores)
    Console().print(table)


if __name__ == "__main__":
    main()
