"""`mnist export ckpt=PATH format=saved_model`: the checkpoint as a TensorFlow SavedModel (Keras's
`model.export`), written to a temporary folder and renamed into place when complete."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mnistcli import checks
from mnistcli.evaluate import load_checkpoint
from mnistcli.tables import written

KERAS_FORMATS = {"saved_model": "tf_saved_model"}  # checks.EXPORT_FORMATS -> Keras's names


def export(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """Write `cfg.ckpt` in `cfg.format` into `run_dir`/saved_model; return where and its
    signature."""
    checks.check_export(cfg)
    model = load_checkpoint(cfg.ckpt)
    target = Path(run_dir) / cfg.format
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.export(str(tmp), format=KERAS_FORMATS[cfg.format], verbose=False)
    os.replace(tmp, target)
    shape = ", ".join("None" if d is None else str(d) for d in model.input_shape)
    signature = f"serve(float32 [{shape}], pixels scaled to [0, 1]) -> [None, 10] probabilities"
    written(target)
    print(f"  {signature}")
    return {"path": str(target), "signature": signature}
