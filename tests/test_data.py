"""MNIST loads from the shipped copy, an npz or an IDX folder; bad files are clear errors; the
splits hold out what the notebooks held out."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import write_idx
from mnistcli.data import SHIPPED, existing_path, load, make_split
from mnistcli.errors import UserError


@pytest.fixture(scope="module")
def mnist():
    return load(None)


def test_shipped_copy_is_real_mnist(mnist) -> None:
    # the fingerprint from shared/datasets/README.md
    assert mnist.source == "shipped"
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_train.dtype == np.uint8
    assert mnist.x_test.shape == (10000, 28, 28)
    assert mnist.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist.y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(mnist.y_train).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949,
    ]  # fmt: skip
    assert round(float(mnist.x_train.mean()), 4) == 33.3184


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_loads_the_same_arrays(mnist, tmp_path: Path, gz: bool) -> None:
    arrays = {"x_train": mnist.x_train[:300], "y_train": mnist.y_train[:300],
              "x_test": mnist.x_test[:100], "y_test": mnist.y_test[:100]}  # fmt: skip
    write_idx(tmp_path / "idx", arrays, gz)
    loaded = load(str(tmp_path / "idx"))
    for key, value in arrays.items():
        np.testing.assert_array_equal(getattr(loaded, key), value)
    assert len(loaded.sha256) == 64
    one = next((tmp_path / "idx").glob("train-images-idx3-ubyte*"))  # a file, not the folder
    with pytest.raises(UserError, match=f"one of the four IDX files.*data.path={tmp_path / 'idx'}"):
        existing_path(str(one))


def test_npz_in_keras_layout_loads(mnist, tmp_path: Path) -> None:
    path = tmp_path / "small.npz"
    np.savez(path, x_train=mnist.x_train[:50], y_train=mnist.y_train[:50],
             x_test=mnist.x_test[:20], y_test=mnist.y_test[:20])  # fmt: skip
    loaded = load(str(path))
    assert loaded.x_train.shape == (50, 28, 28) and loaded.source == str(path.resolve())


@pytest.mark.parametrize(
    "arrays, words",
    [
        ({"x_train": np.zeros((5, 28, 28), np.uint8)}, "lacks the array"),
        ({"x_train": np.zeros((5, 32, 32), np.uint8)}, "(N, 28, 28) uint8"),
        ({"x_train": np.zeros((5, 28, 28), np.float32)}, "(N, 28, 28) uint8"),
        ({"y_train": np.full(5, 12, np.uint8)}, "outside 0-9"),
        ({"y_train": np.zeros(4, np.uint8)}, "5 images but y_train 4 labels"),
    ],
)
def test_bad_npz_is_a_user_error(tmp_path: Path, arrays: dict, words: str) -> None:
    good = {"x_train": np.zeros((5, 28, 28), np.uint8), "y_train": np.zeros(5, np.uint8),
            "x_test": np.zeros((2, 28, 28), np.uint8), "y_test": np.zeros(2, np.uint8)}  # fmt: skip
    if words == "lacks the array":
        good.pop("y_test")
    else:
        good.update(arrays)
    np.savez(tmp_path / "bad.npz", **good)
    with pytest.raises(UserError, match=words.replace("(", r"\(").replace(")", r"\)")):
        load(str(tmp_path / "bad.npz"))


def test_corrupt_and_truncated_files_are_user_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.npz").write_text("not an npz")
    with pytest.raises(UserError, match="junk.npz is not an npz file, or is cut short"):
        load(str(tmp_path / "junk.npz"))
    (tmp_path / "cut.npz").write_bytes(SHIPPED.read_bytes()[:100_000])
    with pytest.raises(UserError, match="cut.npz is not an npz file, or is cut short"):
        load(str(tmp_path / "cut.npz"))
    # a zip whose member is cut short, and one holding pickled objects (never unpickled)
    x = np.zeros((5, 28, 28), np.uint8)
    np.savez(tmp_path / "bad.npz", x_train=x, x_test=x, y_test=np.zeros(5, np.uint8))
    with zipfile.ZipFile(tmp_path / "bad.npz", "a") as z:
        z.writestr("y_train.npy", b"\x93NUMPY garbage")
    with pytest.raises(UserError, match="not a readable npz"):
        load(str(tmp_path / "bad.npz"))
    objects = np.array([{"a": 1}] * 5, dtype=object)
    np.savez(tmp_path / "obj.npz", x_train=objects, y_train=objects, x_test=objects, y_test=objects)
    with pytest.raises(UserError, match="obj.npz holds Python objects, which mnist never loads"):
        load(str(tmp_path / "obj.npz"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="has no train-images-idx3-ubyte"):
        load(str(tmp_path / "empty"))


def test_validation_split_is_keras_last_fraction(mnist) -> None:
    s = make_split(mnist, name="validation_split", fraction=0.2)
    assert s.sizes() == {"train": 48000, "val": 12000, "test": 10000}
    np.testing.assert_array_equal(s.x_val, mnist.x_train[48000:])
    assert not s.test_used_for_selection


def test_holdout_and_limit(mnist) -> None:
    s = make_split(mnist, name="holdout", val_size=10000)
    assert s.sizes() == {"train": 50000, "val": 10000, "test": 10000}
    np.testing.assert_array_equal(s.x_val, mnist.x_train[50000:])
    small = make_split(mnist, name="validation_split", limit=2000, fraction=0.2)
    assert small.sizes() == {"train": 1600, "val": 400, "test": 10000}
    with pytest.raises(UserError, match="raise data.limit"):
        make_split(mnist, name="holdout", limit=2000, val_size=10000)


def test_test_split_is_flagged(mnist) -> None:
    s = make_split(mnist, name="test")
    assert s.test_used_for_selection and s.sizes() == {"train": 60000, "val": 10000, "test": 10000}
