"""The training loss: cross-entropy on integer labels, with optional label smoothing (Keras's
sparse cross-entropy has none, its one-hot cross-entropy has it)."""

from __future__ import annotations

from typing import Any

import keras

from mnistcli.data import NUM_CLASSES


@keras.saving.register_keras_serializable(package="mnistcli")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Categorical cross-entropy against one_hot(label) smoothed by `label_smoothing`."""

    def __init__(self, label_smoothing: float = 0.0, **kwargs: Any) -> None:
        super().__init__(name=kwargs.pop("name", "smoothed_sparse_crossentropy"), **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true: Any, y_pred: Any) -> Any:
        labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
        return keras.losses.categorical_crossentropy(
            keras.ops.one_hot(labels, NUM_CLASSES), y_pred, label_smoothing=self.label_smoothing
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def training_loss(label_smoothing: float) -> str | keras.losses.Loss:
    """Keras's sparse cross-entropy, or the smoothed one when label_smoothing > 0."""
    if label_smoothing:
        return SmoothedSparseCrossentropy(label_smoothing)
    return "sparse_categorical_crossentropy"
