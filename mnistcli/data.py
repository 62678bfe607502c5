"""MNIST as NumPy arrays: the copy shipped in the package, another npz in Keras's layout, or a
folder of the four IDX files (`.gz` or not); and the train/validation/test splits.

Imports no TensorFlow: data errors come back before it loads."""

from __future__ import annotations

import gzip
import hashlib
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnistcli.errors import UserError

SHIPPED = Path(__file__).parent / "assets" / "mnist.npz"
SHIPPED_SHA256 = "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64"
KEYS = ("x_train", "y_train", "x_test", "y_test")
IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
IMAGE_SHAPE = (28, 28)
INPUT_SHAPE = (*IMAGE_SHAPE, 1)  # what every model takes: one channel, pixels scaled to [0, 1]
NUM_CLASSES = 10


@dataclass(frozen=True)
class Mnist:
    """The four arrays as `keras.datasets.mnist.load_data()` returns them, and where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    sha256: str


@dataclass(frozen=True)
class Split:
    """Training, validation and test arrays (uint8 images, uint8 labels)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    test_used_for_selection: bool

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.x_train), "val": len(self.x_val), "test": len(self.x_test)}


def load(path: str | None = None) -> Mnist:
    """Load MNIST from `path` (an npz or an IDX folder), or the shipped copy when `path` is None."""
    if path is None:
        digest = _sha256_files([SHIPPED])
        if digest != SHIPPED_SHA256:
            raise UserError(
                f"the shipped MNIST copy {SHIPPED} is corrupt (sha256 {digest[:12]}...); "
                "reinstall mnistcli"
            )
        arrays = _read_npz(SHIPPED)
        return Mnist(**_checked(arrays, str(SHIPPED)), source="shipped", sha256=digest)
    p = existing_path(path)
    if p.is_dir():
        files = [_idx_file(p, IDX_NAMES[k]) for k in KEYS]
        arrays = {k: _read_idx(f) for k, f in zip(KEYS, files, strict=True)}
    else:
        files = [p]
        arrays = _read_npz(p)
    return Mnist(**_checked(arrays, path), source=str(p.resolve()), sha256=_sha256_files(files))


def existing_path(path: str) -> Path:
    """`data.path` as a Path; a UserError when nothing is there."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(
            f"data.path {path} does not exist; pass an npz in Keras's MNIST layout or a folder "
            "of the four IDX files (or leave it unset for the shipped copy)"
        )
    if p.is_file() and p.name.startswith(tuple(IDX_NAMES.values())):
        raise UserError(
            f"data.path {path} is one of the four IDX files; pass the folder that holds them: "
            f"data.path={p.parent}"
        )
    return p


def make_split(data: Mnist, name: str, limit: int | None = None, **params: float | int) -> Split:
    """Hold out validation data as the `split` config names it; `limit` keeps only the first
    `limit` training examples before splitting."""
    x, y = data.x_train, data.y_train
    if limit is not None:
        x, y = x[:limit], y[:limit]
    if name not in SPLITS:
        raise UserError(f"unknown split '{name}'; choose one of {', '.join(SPLITS)}")
    return SPLITS[name](data, x, y, **params)


def split_at(name: str, n: int, **params: float | int) -> int:
    """Where split `name` cuts `n` training examples: the first `at` train, the rest validate
    (all `n` train for split=test, which validates on the test set). Raises UserError when a
    side would be empty. Needs no data, so config checks ask it before anything is read."""
    if name == "validation_split":
        # Exactly Keras's validation_split: the last `fraction` of the arrays, rounded as Keras does.
        fraction = params["fraction"]
        at = int(math.ceil(n * (1.0 - fraction)))
        if at <= 0 or at >= n:
            raise UserError(
                f"split.fraction={fraction} of {n} examples leaves no training or no validation "
                "data; use a fraction in (0, 1) or a larger data.limit"
            )
        return at
    if name == "holdout":
        val_size = params["val_size"]
        if val_size >= n:
            raise UserError(
                f"split=holdout holds out the last {val_size} training examples but only {n} "
                "are used; raise data.limit or lower split.val_size"
            )
        return n - val_size
    return n


def _validation_split(data: Mnist, x: np.ndarray, y: np.ndarray, fraction: float) -> Split:
    at = split_at("validation_split", len(x), fraction=fraction)
    return Split(x[:at], y[:at], x[at:], y[at:], data.x_test, data.y_test, False)


def _holdout(data: Mnist, x: np.ndarray, y: np.ndarray, val_size: int) -> Split:
    at = split_at("holdout", len(x), val_size=val_size)
    return Split(x[:at], y[:at], x[at:], y[at:], data.x_test, data.y_test, False)


def _test_as_validation(data: Mnist, x: np.ndarray, y: np.ndarray) -> Split:
    return Split(x, y, data.x_test, data.y_test, data.x_test, data.y_test, True)


SPLITS = {"validation_split": _validation_split, "holdout": _holdout, "test": _test_as_validation}


def _sha256_files(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    fix = "pass an npz in Keras's MNIST layout or a folder of the four IDX files"
    if path.is_file() and not zipfile.is_zipfile(path):  # np.load would try it as a pickle
        raise UserError(
            f"{path} is not an npz file, or is cut short (an npz is a zip archive of .npy "
            f"arrays); {fix}"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in KEYS if k not in npz.files]
            if missing:
                raise UserError(
                    f"{path} lacks the array(s) {', '.join(missing)}; an MNIST npz holds "
                    f"{', '.join(KEYS)} as keras.datasets.mnist does"
                )
            return {k: npz[k] for k in KEYS}
    except UserError:
        raise
    except ValueError as e:
        if "pickle" in str(e):  # an array of Python objects: loading it could run code
            raise UserError(
                f"{path} holds Python objects, which mnist never loads; {fix}"
            ) from None
        raise UserError(f"{path} is not a readable npz file ({e}); {fix}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise UserError(
            f"{path} is not a readable npz file ({type(e).__name__}: {e}); {fix}"
        ) from None


def _idx_file(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise UserError(
        f"data.path folder {folder} has no {stem} (or {stem}.gz); an IDX folder holds "
        f"{', '.join(IDX_NAMES.values())}"
    )


def _read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file of unsigned bytes (magic 0x0000080N, then N big-endian dimensions)."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as e:
        raise UserError(f"{path} is not readable ({e}); replace it with a good copy") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08 or not 1 <= raw[3] <= 3:
        raise UserError(f"{path} is not an IDX file of unsigned bytes; check data.path")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = raw[4 + 4 * ndim :]
    if len(body) != math.prod(dims):
        raise UserError(
            f"{path} is truncated or padded: header says {dims}, found {len(body)} bytes of data"
        )
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _checked(arrays: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    out = {}
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE or x.dtype != np.uint8:
            raise UserError(
                f"{source}: x_{part} has shape {x.shape} and dtype {x.dtype}; MNIST images are "
                "(N, 28, 28) uint8"
            )
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise UserError(
                f"{source}: y_{part} has shape {y.shape} and dtype {y.dtype}; labels are (N,) integers"
            )
        if len(x) != len(y):
            raise UserError(
                f"{source}: x_{part} holds {len(x)} images but y_{part} {len(y)} labels"
            )
        if len(y) and (y.min() < 0 or y.max() > 9):
            raise UserError(f"{source}: y_{part} has labels outside 0-9")
        out[f"x_{part}"], out[f"y_{part}"] = x, y.astype(np.uint8)
    return out
