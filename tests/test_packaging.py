"""A non-editable install carries the configs and the data: `pip install .` works away from the
repo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_non_editable_install_ships_configs_and_data(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(ROOT)],
        check=True, capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    package = target / "mnistcli"
    assert (package / "assets" / "mnist.npz").stat().st_size > 10_000_000
    assert (package / "conf" / "train.yaml").is_file()
    assert (package / "conf" / "experiment" / "lenet5.yaml").is_file()

    env = {**os.environ, "PYTHONPATH": str(target)}
    run = tmp_path / "elsewhere"
    run.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "mnistcli", "train", "--cfg", "job", "experiment=lenet5"],
        cwd=run, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "name: lenet5" in proc.stdout and "batch_size: 32" in proc.stdout
    info = subprocess.run(
        [sys.executable, "-c", "import mnistcli; print(mnistcli.__file__)"],
        cwd=run, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert info.stdout.strip().startswith(str(target))
