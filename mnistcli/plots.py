"""Figures, drawn with matplotlib off-screen and returned as PNG bytes (artifacts writes them)."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")  # no screen: render to files only

import matplotlib.pyplot as plt  # noqa: E402


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return buf.getvalue()


def x_scale(values: Sequence[float]) -> str:
    """'log' when the values span more than a decade, 'symlog' when they do and include 0,
    else 'linear'."""
    positive = [v for v in values if v > 0]
    if len(positive) < 2 or min(values) < 0 or max(positive) / min(positive) < 100:
        return "linear"
    return "symlog" if min(values) == 0 else "log"


def sweep(
    param: str,
    series: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float]]],
    references: Mapping[str, float],
    title: str,
) -> bytes:
    """Mean accuracy with std error bars against one numeric parameter: one line per entry of
    `series` (label -> (x, mean, std)), a dashed labelled line per reference."""
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    xs: list[float] = []
    for label, (x, mean, std) in series.items():
        std = [0.0 if s is None or math.isnan(s) else s for s in std]
        ax.errorbar(x, mean, yerr=std, marker="o", capsize=4, label=label)
        xs.extend(x)
    for i, (label, value) in enumerate(references.items()):
        ax.axhline(
            value, linestyle="--", color=f"C{len(series) + i}", label=f"{label}: {value:.2%}"
        )
    scale = x_scale(xs)
    if scale == "symlog":
        ax.set_xscale("symlog", linthresh=min(v for v in xs if v > 0))
    else:
        ax.set_xscale(scale)
    ax.set_xlabel(param)
    ax.set_ylabel("accuracy")
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(fig)


def curves(history: Sequence[Mapping[str, float]], best_epoch: int | None, title: str) -> bytes:
    """Loss and accuracy per epoch, training against validation, the best epoch marked."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    epochs = [row["epoch"] for row in history]
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for key, label in ((metric, "training"), (f"val_{metric}", "validation")):
            if any(key in row for row in history):
                ax.plot(
                    epochs, [row.get(key, math.nan) for row in history], marker=".", label=label
                )
        if best_epoch:
            ax.axvline(best_epoch, linestyle=":", color="gray", label=f"best epoch ({best_epoch})")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return _png(fig)


MOSAIC_PIXELS_PER_INCH = 36  # a mosaic's digit pixels per inch of figure (28 px: 0.8 in)
TITLE_INCHES = 0.4


def _mosaic(images: Any, captions: Sequence[str], title: str, columns: int) -> bytes:
    """Digits (uint8, 28x28) side by side in one image, each with its caption above it: one
    axes and one imshow for all of them, which draws in a fraction of the time that one axes per
    digit takes."""
    side, lines = 28, max(caption.count("\n") + 1 for caption in captions)
    gap_x, gap_y = 6, 4 + 7 * lines  # pixels between cells; room for the captions
    columns = max(1, min(columns, len(images)))
    rows = math.ceil(len(images) / columns)
    canvas = np.full((rows * (side + gap_y), columns * (side + gap_x) - gap_x), np.nan)
    width, height = (n / MOSAIC_PIXELS_PER_INCH for n in reversed(canvas.shape))
    fig = plt.figure(figsize=(width, height + TITLE_INCHES))
    ax = fig.add_axes((0, 0, 1, height / (height + TITLE_INCHES)))
    for i, (image, caption) in enumerate(zip(images, captions, strict=True)):
        top, left = (i // columns) * (side + gap_y) + gap_y, (i % columns) * (side + gap_x)
        canvas[top : top + side, left : left + side] = image
        ax.text(left + side / 2, top - 1.5, caption, ha="center", va="bottom", fontsize=7.5)
    gray = matplotlib.colormaps["gray"].with_extremes(bad="white")  # the gaps: white
    ax.imshow(canvas, cmap=gray, vmin=0, vmax=255, interpolation="nearest")
    ax.axis("off")
    fig.suptitle(title, y=1 - 0.35 * TITLE_INCHES / (height + TITLE_INCHES))
    return _png(fig)


def digits(images: Any, captions: Sequence[str], title: str, columns: int = 10) -> bytes:
    """A grid of digits (uint8, 28x28), each with its caption (e.g. its label)."""
    return _mosaic(images, captions, title, columns)


def digit_values(image: Any, title: str) -> bytes:
    """One digit enlarged, each pixel's 0-255 value written on it: dark text on light pixels,
    light text on dark ones."""
    fig, ax = plt.subplots(figsize=(12, 12.4), layout="constrained")
    ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    for (row, col), value in np.ndenumerate(image):
        ax.text(
            col, row, str(int(value)), ha="center", va="center", fontsize=6.5,
            color="black" if value > 127 else "white",
        )  # fmt: skip
    ax.set_xticks(range(image.shape[1]))
    ax.set_yticks(range(image.shape[0]))
    ax.tick_params(labelsize=7)
    ax.set_title(title)
    return _png(fig)


def confusion_matrix(confusion: Any, title: str) -> bytes:
    """Counts of (true, predicted) labels, each cell labelled with its count."""
    confusion = np.asarray(confusion)
    fig, ax = plt.subplots(figsize=(7.5, 6.5), layout="constrained")
    shown = ax.imshow(confusion, cmap="Blues", norm=matplotlib.colors.LogNorm(vmin=1))
    fig.colorbar(shown, ax=ax, label="images (log scale)")
    high = confusion.max() ** 0.5  # the log scale's middle
    for (row, col), count in np.ndenumerate(confusion):
        if count:
            ax.text(
                col, row, str(count), ha="center", va="center", fontsize=8,
                color="white" if count > high else "black",
            )  # fmt: skip
    classes = range(confusion.shape[0])
    ax.set_xticks(classes)
    ax.set_yticks(classes)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    ax.set_title(title)
    return _png(fig)


def errors(
    images: Any, true: Sequence[int], predicted: Sequence[int], confidence: Sequence[float],
    title: str, columns: int = 8,
) -> bytes:  # fmt: skip
    """Misclassified digits in the order given (most confident mistakes first), each titled with
    its true and predicted label and the model's confidence in the prediction."""
    if not len(images):
        fig, ax = plt.subplots(figsize=(6, 2), layout="constrained")
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center", fontsize=14)
        ax.axis("off")
        fig.suptitle(title)
        return _png(fig)
    captions = [
        f"true {t}, pred {p}\n{c:.1%}" for t, p, c in zip(true, predicted, confidence, strict=True)
    ]
    return _mosaic(images, captions, title, columns)
