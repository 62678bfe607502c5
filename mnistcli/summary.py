"""`mnist summary model=NAME`: the Keras layer table, as the notebooks print with model.summary()."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from mnistcli import checks
from mnistcli.models import build_model, count_trainable


def summary(cfg: DictConfig) -> dict[str, Any]:
    """Print the layer table of the model `cfg.model` composes; return its parameter counts."""
    checks.check_summary(cfg)
    model = build_model(**OmegaConf.to_container(cfg.model))
    model.summary()
    return {
        "model": model.name,
        "params": model.count_params(),
        "trainable_params": count_trainable(model),
    }
