"""The `logger` config group: csv (history.csv, which every run writes anyway) or tensorboard
(Keras's TensorBoard callback into RUN_DIR/tensorboard, plus the run's config as text)."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf
from omegaconf import DictConfig, OmegaConf

from mnistcli.artifacts import RunDir


class TensorBoard(keras.callbacks.TensorBoard):
    """Keras's callback, and the composed config shown in TensorBoard's Text tab."""

    def __init__(self, run: RunDir, config_yaml: str, **settings: Any) -> None:
        super().__init__(log_dir=str(run.tensorboard), **settings)
        self.config_yaml = config_yaml

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        writer = tf.summary.create_file_writer(str(self._train_dir))
        with writer.as_default():
            tf.summary.text("config", f"```\n{self.config_yaml}\n```", step=0)
        writer.close()


def from_config(cfg: DictConfig, run: RunDir) -> list[keras.callbacks.Callback]:
    """The callbacks that `cfg.logger` asks for, logging into `run`."""
    settings = OmegaConf.to_container(cfg.logger)
    if settings.pop("name") != "tensorboard":
        return []
    return [TensorBoard(run, OmegaConf.to_yaml(cfg, resolve=True), **settings)]
