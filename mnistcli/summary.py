"""`mnist summary model=NAME`: the Keras layer table, as the notebooks print with model.summary();
with diagram=..., also the drawing keras.utils.plot_model makes."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import keras
from omegaconf import DictConfig, OmegaConf

from mnistcli import artifacts, checks
from mnistcli.models import build_model, count_trainable
from mnistcli.tables import written


def summary(cfg: DictConfig, run_dir: str | None = None) -> dict[str, Any]:
    """Print the layer table of the model `cfg.model` composes; return its parameter counts."""
    checks.check_summary(cfg)
    model = build_model(**OmegaConf.to_container(cfg.model))
    model.summary()
    result = {
        "model": model.name,
        "params": model.count_params(),
        "trainable_params": count_trainable(model),
    }
    if cfg.diagram:
        path = Path(f"{model.name}.png" if cfg.diagram is True else str(cfg.diagram))
        with tempfile.TemporaryDirectory() as tmp:
            drawn = Path(tmp) / f"model{path.suffix or '.png'}"
            keras.utils.plot_model(
                model, to_file=str(drawn), show_shapes=True, show_layer_activations=True, dpi=96
            )
            artifacts.write_bytes(path, drawn.read_bytes())
        written(path)
        result["diagram"] = str(path)
    return result
