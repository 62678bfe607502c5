"""Image files to MNIST-style digits, the way MNIST's were made: grayscale, white digit on black
(a dark-on-light image is inverted; the background is taken away and the strongest ink made
255), fitted into 20x20 keeping the aspect ratio, and placed in
28x28 so that its centre of mass is at the centre. Pillow only; no TensorFlow."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
SIZE, BOX = 28, 20  # MNIST: the digit fits in BOX x BOX, centred by mass in SIZE x SIZE
CENTRE = 14  # where MNIST's centres of mass lie: row and column 14.0 on average (0-based)
INK = 0.1  # after the background is taken away: pixels above this share of the maximum are ink


class UnreadableImage(Exception):
    """An image file that cannot be turned into a digit; the message says why."""


def entries(images: Any) -> list[str]:
    """The `images` setting as a list of paths: images=a.png or images=[a.png,folder]."""
    if isinstance(images, str) or not isinstance(images, Sequence):  # a ListConfig is one
        return [str(images)]
    return [str(i) for i in images]


def image_files(images: Any) -> list[Path]:
    """Each of the `images` setting's entries as a path; a folder stands for the image files
    directly in it (by suffix, sorted). Entries that do not exist stay in the list: reading them
    gives their error. Each file once, in the order given."""
    files: list[Path] = []
    for entry in entries(images):
        p = Path(entry).expanduser()
        if p.is_dir():
            files.extend(
                sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in SUFFIXES)
            )
        else:
            files.append(p)
    return list(dict.fromkeys(files))


def _grayscale(path: Path) -> np.ndarray:
    if not path.exists():
        raise UnreadableImage("no such file")
    if path.is_dir():
        raise UnreadableImage("a folder, not an image")
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
                rgba = img.convert("RGBA")
                white = Image.new("RGBA", rgba.size, "white")
                img = Image.alpha_composite(white, rgba)  # transparent parts count as paper
            return np.asarray(img.convert("L"), dtype=np.float32)
    except Image.DecompressionBombError as e:  # Pillow's guard: over about 179 megapixels
        raise UnreadableImage(f"too large for Pillow to open ({str(e).split(',')[0]})") from None
    except UnidentifiedImageError:
        raise UnreadableImage(
            "not an image Pillow can read (PNG, JPEG, BMP, GIF, TIFF, ...)"
        ) from None
    except (OSError, ValueError, SyntaxError) as e:
        raise UnreadableImage(f"a broken image ({e})") from None


def _white_on_black(gray: np.ndarray) -> np.ndarray:
    """Ink 1, background 0: the border's median is the background; a light one is inverted."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    ink = gray - background if background < 128 else background - gray
    ink = np.clip(ink, 0, None)
    peak = float(ink.max())
    if peak <= 0:
        raise UnreadableImage("blank: no digit found (one flat colour)")
    return ink / peak


def _fitted(ink: np.ndarray) -> np.ndarray:
    """The digit cropped to its ink and scaled so its longer side is BOX pixels; an image that is
    already MNIST's size with its ink inside a BOX x BOX box is kept as it is."""
    rows = np.flatnonzero((ink > INK).any(axis=1))
    cols = np.flatnonzero((ink > INK).any(axis=0))
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    if ink.shape == (SIZE, SIZE) and max(height, width) <= BOX:
        return ink
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.clip(np.asarray(Image.fromarray(ink).resize(size, Image.Resampling.LANCZOS)), 0, 1)


def _centred(digit: np.ndarray) -> np.ndarray:
    """`digit` placed in SIZE x SIZE with its centre of mass at (CENTRE, CENTRE)."""
    r, c = np.indices(digit.shape)
    total = digit.sum()
    top = round(CENTRE - (r * digit).sum() / total)
    left = round(CENTRE - (c * digit).sum() / total)
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    rows = slice(max(top, 0), min(top + digit.shape[0], SIZE))
    cols = slice(max(left, 0), min(left + digit.shape[1], SIZE))
    out[rows, cols] = digit[
        rows.start - top : rows.stop - top, cols.start - left : cols.stop - left
    ]
    return out


def to_mnist(path: str | Path) -> np.ndarray:
    """The image at `path` as a 28x28 uint8 MNIST digit; UnreadableImage says why not."""
    digit = _centred(_fitted(_white_on_black(_grayscale(Path(path)))))
    return np.round(digit * 255).astype(np.uint8)
