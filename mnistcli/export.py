"""`mnist export ckpt=PATH format=saved_model|litert`: the checkpoint as a TensorFlow SavedModel or
a LiteRT model (Keras's `model.export`), written under a temporary name and renamed into place
when complete."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mnistcli import checks
from mnistcli.evaluate import load_checkpoint
from mnistcli.tables import written

# checks.EXPORT_FORMATS -> (Keras's name for it, what it writes into the run dir)
KERAS_FORMATS = {
    "saved_model": ("tf_saved_model", "saved_model"),
    "litert": ("litert", "model.tflite"),
}


def export(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """Write `cfg.ckpt` in `cfg.format` into `run_dir` (saved_model/ or model.tflite); return
    where and its signature."""
    checks.check_export(cfg)
    model = load_checkpoint(cfg.ckpt)
    keras_format, name = KERAS_FORMATS[cfg.format]
    target = Path(run_dir) / name
    tmp = target.with_name(f".tmp{os.getpid()}.{target.name}")  # LiteRT wants the .tflite suffix
    shutil.rmtree(tmp, ignore_errors=True)
    model.export(str(tmp), format=keras_format, verbose=False)
    os.replace(tmp, target)
    shape = ", ".join("None" if d is None else str(d) for d in model.input_shape)
    signature = f"serve(float32 [{shape}], pixels scaled to [0, 1]) -> [None, 10] probabilities"
    written(target)
    print(f"  {signature}")
    if cfg.format == "litert":
        print(f"  score it without TensorFlow: mnist eval ckpt={target}")
    return {"path": str(target), "signature": signature}
