"""`mnist predict` on image files (MNIST digits saved as PNG/JPEG in other sizes and polarities,
broken files), the MNIST-style conversion, and `mnist export`'s SavedModel and LiteRT round trips."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import (
    assert_real_png,
    assert_user_error,
    imports_tensorflow,
    mnist,
    mnist_imports,
    read_metrics,
)
from mnistcli.data import load
from mnistcli.evaluate import load_checkpoint
from mnistcli.images import UnreadableImage, to_mnist

COUNT = 12  # the first test digits


@pytest.fixture(scope="module")
def test_digits() -> tuple[np.ndarray, np.ndarray]:
    data = load()
    return data.x_test[:COUNT], data.y_test[:COUNT]


def _save_variants(folder: Path, x: np.ndarray) -> list[Path]:
    """Each digit as MNIST stores it (28x28 white on black), and dark on light, three times as
    big on a wider colour canvas, as a JPEG."""
    folder.mkdir()
    files = []
    for i, digit in enumerate(x):
        Image.fromarray(digit).save(folder / f"{i:02d}_as_is.png")
        big = Image.fromarray(255 - digit).resize((84, 84), Image.Resampling.BICUBIC)
        canvas = Image.new("RGB", (140, 110), (250, 248, 240))
        canvas.paste(big.convert("RGB"), (20, 10))
        canvas.save(folder / f"{i:02d}_dark_on_light.jpg", quality=95)
        files += [folder / f"{i:02d}_as_is.png", folder / f"{i:02d}_dark_on_light.jpg"]
    return files


def test_predict_reads_digits_in_any_polarity_and_size(
    trained_run: Path, test_digits: tuple, tmp_path: Path
) -> None:
    x, y = test_digits
    _save_variants(tmp_path / "digits", x)
    (tmp_path / "notes.png").write_text("not an image")
    ckpt = trained_run / "checkpoints" / "best.keras"
    proc = mnist(
        "predict", f"ckpt={ckpt}", "images=[digits,notes.png,'[red]missing.png']", "hydra.run.dir=run",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # two files could not be read; the rest were
    assert "notes.png" in proc.stderr and "[red]missing.png" in proc.stderr
    assert "[red]missing.png" in proc.stdout  # file names are shown as they are, not as markup
    assert "Traceback" not in proc.stderr
    assert "next guesses" in proc.stdout

    with open(tmp_path / "run" / "predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * COUNT + 2
    errors = {Path(r["image"]).name: r["error"] for r in rows if r["error"]}
    assert set(errors) == {"notes.png", "[red]missing.png"}
    assert "not an image" in errors["notes.png"] and "no such file" in errors["[red]missing.png"]
    good = [r for r in rows if not r["error"]]
    for r in good:
        label = int(y[int(Path(r["image"]).name[:2])])
        assert int(r["digit"]) == label, r
        p = [float(r[k]) for k in ("probability", "second_probability", "third_probability")]
        assert 1 >= p[0] >= p[1] >= p[2] >= 0
        assert len({r["digit"], r["second_digit"], r["third_digit"]}) == 3
    assert_real_png(tmp_path / "run" / "inputs.png", 800, 300)


def test_an_image_past_pillows_size_guard_is_its_own_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over twice Image.MAX_IMAGE_PIXELS (about 179 megapixels) Pillow raises its
    DecompressionBombError, which ended predict in a traceback; the guard is shrunk here so that
    a small file trips it."""
    Image.new("L", (40, 40), 255).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(UnreadableImage, match="too large for Pillow to open"):
        to_mnist(tmp_path / "big.png")


def test_conversion_gives_back_mnist_digits(test_digits: tuple, tmp_path: Path) -> None:
    x, _ = test_digits
    files = _save_variants(tmp_path / "digits", x)
    for digit, (as_is, dark_on_light) in zip(
        x, zip(files[::2], files[1::2], strict=True), strict=True
    ):
        # already MNIST: kept as it is, but for the contrast stretch (the strongest ink is 255)
        assert np.abs(to_mnist(as_is).astype(int) - digit).max() <= 1
        back = to_mnist(dark_on_light).astype(int)
        # the same digit, resampled twice; the centre of mass rounds to a whole pixel either way
        shifted = [np.roll(back, (dy, dx), (0, 1)) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        assert min(np.abs(s - digit).mean() for s in shifted) < 10
        assert back.max() == 255 and back[0].max() == 0  # white on black, margins empty
    Image.new("L", (40, 40), 255).save(tmp_path / "blank.png")
    with pytest.raises(UnreadableImage, match="blank"):
        to_mnist(tmp_path / "blank.png")
    rgba = np.zeros((60, 60, 4), np.uint8)  # a black digit on a transparent background
    rgba[10:50, 28:34] = (0, 0, 0, 255)
    Image.fromarray(rgba).save(tmp_path / "transparent.png")
    one = to_mnist(tmp_path / "transparent.png")
    assert one[14, 14] == 255 and one[14, 5] == 0


def test_predict_mistakes_are_one_line(trained_run: Path, tmp_path: Path) -> None:
    ckpt = trained_run / "checkpoints" / "best.keras"
    assert_user_error(mnist("predict", "images=a.png", cwd=tmp_path), "ckpt=")
    assert_user_error(mnist("predict", f"ckpt={ckpt}", cwd=tmp_path), "images=")
    (tmp_path / "empty").mkdir()
    assert_user_error(mnist("predict", f"ckpt={ckpt}", "images=empty", cwd=tmp_path), "no image")
    # none of the images there: one line before TensorFlow loads, no run dir made
    proc = mnist("predict", f"ckpt={ckpt}", "images=[a.png,b.png]", cwd=tmp_path)
    assert_user_error(proc, "no such file: a.png, b.png")
    _, imported = mnist_imports("predict", f"ckpt={ckpt}", "images=a.png", cwd=tmp_path)
    assert "hydra" in imported and not imports_tensorflow(imported)
    assert not (tmp_path / "outputs").exists()


def test_export_saved_model_gives_the_checkpoints_predictions(
    trained_run: Path, test_digits: tuple, tmp_path: Path
) -> None:
    import tensorflow as tf

    ckpt = trained_run / "checkpoints" / "best.keras"
    proc = mnist("export", f"ckpt={ckpt}", "hydra.run.dir=run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    exported = tmp_path / "run" / "saved_model"
    assert f"written: {exported}" in proc.stdout
    assert (exported / "saved_model.pb").is_file()
    assert not list((tmp_path / "run").glob(".*tmp*"))
    x = test_digits[0][..., None].astype(np.float32) / 255.0
    loaded = tf.saved_model.load(str(exported))  # kept: its functions hold weak references
    served = loaded.serve(tf.constant(x)).numpy()
    expected = load_checkpoint(ckpt).predict(x, verbose=0)
    np.testing.assert_allclose(served, expected, atol=1e-5)
    assert_user_error(mnist("export", f"ckpt={ckpt}", "format=onnx", cwd=tmp_path), "saved_model")
    for ckpt_arg in ("ckpt=run", "ckpt=run/saved_model"):  # for serving, not for mnist eval
        assert_user_error(mnist("eval", ckpt_arg, cwd=tmp_path), "SavedModel export", ".keras")


def test_litert_export_scores_and_predicts_as_the_checkpoint_without_tensorflow(
    trained_run: Path, test_digits: tuple, tmp_path: Path
) -> None:
    ckpt = trained_run / "checkpoints" / "best.keras"
    proc = mnist("export", f"ckpt={ckpt}", "format=litert", "hydra.run.dir=run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    exported = tmp_path / "run" / "model.tflite"
    assert f"written: {exported}" in proc.stdout and f"mnist eval ckpt={exported}" in proc.stdout
    assert exported.read_bytes()[4:8] == b"TFL3" and not list((tmp_path / "run").glob(".tmp*"))

    # eval: the checkpoint's test score (as `mnist train` took it), with no TensorFlow loaded
    proc, imported = mnist_imports("eval", f"ckpt={exported}", "hydra.run.dir=ev", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ai_edge_litert.interpreter" in imported  # the trace is real
    assert not imports_tensorflow(imported)
    assert "XNNPACK" not in proc.stderr  # LiteRT's C++ logger's notice, held back
    e, t = read_metrics(tmp_path / "ev"), read_metrics(trained_run)
    assert e["status"] == "completed" and e["device"]["runtime"] == "litert"
    assert e["test"]["accuracy"] == t["test"]["accuracy"] > 0.9
    assert math.isclose(e["test"]["loss"], t["test"]["loss"], rel_tol=1e-5)
    assert sum(map(sum, e["confusion_matrix"])) == 10_000
    assert_real_png(tmp_path / "ev" / "errors.png", 400, 300)
    proc = mnist("eval", "ckpt=run", "errors=0", "hydra.run.dir=ev0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "ev0" / "confusion_matrix.png").is_file()
    assert not (tmp_path / "ev0" / "errors.png").exists() and "errors.png" not in proc.stdout
    assert_user_error(mnist("export", "ckpt=run", cwd=tmp_path), "LiteRT export", ".keras")

    # predict: the checkpoint's probabilities for the same images, again without TensorFlow
    x, _ = test_digits
    (tmp_path / "digits").mkdir()
    for i, digit in enumerate(x):
        Image.fromarray(digit).save(tmp_path / "digits" / f"{i:02d}.png")
    proc, imported = mnist_imports("predict", "ckpt=run", "images=digits",  # the export's dir
                                   "hydra.run.dir=lite", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not imports_tensorflow(imported) and f"checkpoint {exported}\n" in proc.stdout
    proc = mnist("predict", f"ckpt={ckpt}", "images=digits", "hydra.run.dir=keras", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = {}
    for run in ("lite", "keras"):
        with open(tmp_path / run / "predictions.csv") as fh:
            rows[run] = [(r["digit"], float(r["probability"])) for r in csv.DictReader(fh)]
    assert [d for d, _ in rows["lite"]] == [d for d, _ in rows["keras"]]
    np.testing.assert_allclose([p for _, p in rows["lite"]], [p for _, p in rows["keras"]],
                               atol=1e-5)  # fmt: skip


def test_litert_mistakes_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "junk.tflite").write_bytes(b"\0" * 64)
    assert_user_error(mnist("eval", "ckpt=junk.tflite", cwd=tmp_path), "not a LiteRT model")
    (tmp_path / "model.tflite").write_bytes(b"\0\0\0\0TFL3" + b"\0" * 56)  # a broken one
    assert_user_error(mnist("eval", "ckpt=model.tflite", cwd=tmp_path), "cannot load")
    assert_user_error(mnist("export", "ckpt=model.tflite", cwd=tmp_path), "the .keras checkpoint")
    assert_user_error(mnist("eval", "ckpt=model.tflite", "device=gpu", cwd=tmp_path), "device=auto")
    assert_user_error(mnist("train", "resume=model.tflite", cwd=tmp_path))
