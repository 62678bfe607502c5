"""Figures, drawn with matplotlib off-screen and returned as PNG bytes (artifacts writes them)."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

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
