"""The notebooks' pictures: `mnist show`, the model diagram, and TensorBoard logs."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from conftest import (
    assert_real_png,
    assert_user_error,
    imports_tensorflow,
    mnist,
    mnist_imports,
    read_metrics,
)


def test_show_draws_digits_and_one_digits_pixel_values(tmp_path: Path) -> None:
    proc, imported = mnist_imports("show", "show.n=12", "show.index=3", "hydra.run.dir=train",
                                   cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "matplotlib" in imported and not imports_tensorflow(imported)  # no TensorFlow needed
    digits, digit = tmp_path / "train" / "digits.png", tmp_path / "train" / "digit_3.png"
    assert f"written: {digits}" in proc.stdout and f"written: {digit}" in proc.stdout
    assert_real_png(digits, 1000, 250)
    assert_real_png(digit, 1200, 1200)

    assert mnist("show", "show.split=test", "hydra.run.dir=test", cwd=tmp_path).returncode == 0
    assert (tmp_path / "test" / "digits.png").read_bytes() != digits.read_bytes()
    assert_user_error(mnist("show", "show.index=60000", cwd=tmp_path), "show.index", "60,000")
    assert_user_error(mnist("show", "show.split=val", cwd=tmp_path), "show.split", "test")


def test_summary_draws_the_model_or_says_what_is_missing(tmp_path: Path) -> None:
    no_dot = tmp_path / "bin"
    no_dot.mkdir()
    (no_dot / "python").symlink_to(sys.executable)
    proc = mnist("summary", "model=lenet5", "diagram=true", cwd=tmp_path, env={"PATH": str(no_dot)})
    assert_user_error(proc, "graphviz", "apt install graphviz")
    assert_user_error(mnist("summary", "diagram=net.txt", cwd=tmp_path), "diagram", ".png")
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed here: the diagram itself is not drawn")
    proc = mnist("summary", "model=lenet5", "diagram=lenet5.png", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "written: lenet5.png" in proc.stdout
    assert_real_png(tmp_path / "lenet5.png", 300, 600)


def test_tensorboard_logger_writes_scalars_and_the_config(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    proc = mnist(
        "train", "model=ffnn", "model.hidden=[32]", "data.limit=2000", "trainer.epochs=2",
        "logger=tensorboard", "hydra.run.dir=run", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "run"
    assert read_metrics(run)["config"]["logger"]["name"] == "tensorboard"
    assert (run / "history.csv").is_file()  # the csv record is kept too

    def tensors(sub: str) -> dict:
        events = EventAccumulator(str(run / "tensorboard" / sub), size_guidance={"tensors": 0})
        events.Reload()
        return {tag: events.Tensors(tag) for tag in events.Tags()["tensors"]}

    train, validation = tensors("train"), tensors("validation")
    for logged in (train, validation):
        assert [e.step for e in logged["epoch_loss"]] == [0, 1]
        assert [e.step for e in logged["epoch_accuracy"]] == [0, 1]
    config = train["config"][0].tensor_proto.string_val[0].decode()
    assert "hidden:\n  - 32" in config and "logger:\n  name: tensorboard" in config
