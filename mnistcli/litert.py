"""A LiteRT (.tflite) export of a checkpoint (`mnist export format=litert`), run by Google's LiteRT
interpreter: `mnist eval` and `mnist predict` score one without importing TensorFlow."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnistcli.data import INPUT_SHAPE, NUM_CLASSES
from mnistcli.errors import UserError
from mnistcli.runtime import native_stderr

SUFFIX = ".tflite"
TASKS = ("eval", "predict")  # the subcommands that take a .tflite as ckpt=


# written by LiteRT's C++ logger when it first allocates tensors; no setting turns it off
# (TF_CPP_MIN_LOG_LEVEL does not reach it)
DELEGATE_NOTICE = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


def is_litert(path: str | Path) -> bool:
    return Path(path).suffix.lower() == SUFFIX


class LiteRTModel:
    """A .tflite classifier of 28x28 images: `probabilities(x)` of uint8 images, as the Keras
    model it was exported from gives them (inputs scaled to [0, 1] here, as in the pipeline)."""

    def __init__(self, path: str | Path, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        self.name = self.path.stem
        self.params = None  # not kept apart from the graph's other constants in a .tflite
        try:
            self.interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
        except (ValueError, RuntimeError) as e:
            raise UserError(
                f"cannot load {path} as a LiteRT model ({str(e).strip().splitlines()[0]}); pass a "
                ".tflite file that `mnist export format=litert` wrote"
            ) from None
        (self.input,) = self.interpreter.get_input_details()
        (self.output,) = self.interpreter.get_output_details()
        shape_in = tuple(self.input["shape_signature"][1:])
        shape_out = tuple(self.output["shape_signature"][1:])
        if shape_in != INPUT_SHAPE or shape_out != (NUM_CLASSES,):
            raise UserError(
                f"{path} takes inputs {shape_in} and gives {shape_out} outputs; MNIST needs "
                f"{INPUT_SHAPE} in, ({NUM_CLASSES},) out"
            )
        self.batch = 0

    def probabilities(self, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """Class probabilities, shape (len(x), 10), of uint8 images x, shape (n, 28, 28)."""
        out = np.empty((len(x), NUM_CLASSES), np.float32)
        for start in range(0, len(x), batch_size):
            chunk = x[start : start + batch_size, ..., None].astype(np.float32) / 255.0
            if len(chunk) != self.batch:
                self.interpreter.resize_tensor_input(self.input["index"], list(chunk.shape))
                with native_stderr(keep=lambda line: line.strip() != DELEGATE_NOTICE):
                    self.interpreter.allocate_tensors()
                self.batch = len(chunk)
            self.interpreter.set_tensor(self.input["index"], chunk)
            self.interpreter.invoke()
            out[start : start + len(chunk)] = self.interpreter.get_tensor(self.output["index"])
        return out
