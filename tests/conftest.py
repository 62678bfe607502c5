"""Shared helpers: run the installed `mnist` command for real, in a scratch folder."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mnistcli.data import IDX_NAMES

MNIST = str(Path(sys.executable).with_name("mnist"))


def _environment(env: dict[str, str] | None) -> dict[str, str]:
    """The environment `mnist` runs in under the tests: this one, plus `env`."""
    return {**os.environ, "HYDRA_FULL_ERROR": "0", "COLUMNS": "120", **(env or {})}


def mnist(
    *args: str, cwd: Path, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run `mnist ARGS` in `cwd` (with `env` added to the environment) and return the finished
    process (text output)."""
    return subprocess.run(
        [MNIST, *args], cwd=cwd, env=_environment(env), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def mnist_imports(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `mnist ARGS` in `cwd` (with `env` added) under `python -X importtime`; return the
    finished process and the modules it imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", MNIST, *args],
        cwd=cwd,
        env=_environment(env),
        capture_output=True,
        text=True,
    )
    return proc, {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}


def composed(*overrides: str, name: str = "train") -> Any:
    """The config `mnist NAME OVERRIDES` composes (NAME: train, eval, report, ...)."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("mnistcli.conf", version_base="1.3"):
        return compose(name, overrides=list(overrides))


def model_from(*overrides: str) -> Any:
    """The Keras model `mnist train OVERRIDES` would build, from the composed config."""
    from omegaconf import OmegaConf

    from mnistcli.models import build_model

    return build_model(**OmegaConf.to_container(composed(*overrides).model))


def imports_tensorflow(imported: set[str]) -> bool:
    return any(m.split(".")[0] in ("tensorflow", "keras") for m in imported)


def write_idx(folder: Path, arrays: dict[str, np.ndarray], gz: bool = True) -> Path:
    """Write the four arrays as MNIST's IDX files (gzipped or not) into a new `folder`."""
    folder.mkdir()
    for key, stem in IDX_NAMES.items():
        a = arrays[key]
        header = bytes([0, 0, 8, a.ndim]) + b"".join(d.to_bytes(4, "big") for d in a.shape)
        raw = header + a.astype(np.uint8).tobytes()
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)
    return folder


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def assert_user_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    """One clear line on stderr naming the problem, exit code 2, no traceback."""
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mnist: error: ")
    assert "Traceback" not in proc.stderr + proc.stdout
    for word in words:
        assert word in lines[0], lines[0]


def assert_real_png(path: Path, min_width: int = 400, min_height: int = 300) -> None:
    """`path` is a PNG that decodes, is at least this big and is not one flat colour."""
    from matplotlib import image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    pixels = image.imread(path)
    assert pixels.shape[0] >= min_height and pixels.shape[1] >= min_width, pixels.shape
    assert pixels.std() > 0.01, "the image is one flat colour"


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real short training (lenet5, 2,000 examples, 1 epoch) in the default run dir layout."""
    cwd = tmp_path_factory.mktemp("quick")
    proc = mnist("train", "model=lenet5", "data.limit=2000", "trainer.epochs=1", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = [p.parent for p in (cwd / "outputs").glob("*/*/metrics.json")]
    return run_dir


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real training good enough to read digits (lenet5, 20,000 examples, 2 epochs: ~96%)."""
    cwd = tmp_path_factory.mktemp("trained")
    proc = mnist(
        "train", "model=lenet5", "data.limit=20000", "trainer.epochs=2", "hydra.run.dir=run",
        cwd=cwd,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return cwd / "run"
