"""`mnist eval`: load a checkpoint (safely) and score it on the test set. `score` is also how
`mnist train` scores its best checkpoint, so both report the same numbers.

A .keras checkpoint runs through Keras (TensorFlow); a .tflite export (`mnist export
format=litert`) through LiteRT, without importing TensorFlow, which is why this module imports
Keras only where it needs it."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from mnistcli import artifacts, checks, litert, tables
from mnistcli.artifacts import RunDir
from mnistcli.data import INPUT_SHAPE, NUM_CLASSES, load
from mnistcli.errors import UserError
from mnistcli.precision import in_float32
from mnistcli.runtime import cpu_device, select_strategy, usable_cpus

if TYPE_CHECKING:
    import keras

EPSILON = 1e-7  # Keras clips probabilities by this much in its cross-entropy


class Classifier(Protocol):
    """What scoring needs of a model, whichever file it came from."""

    name: str
    params: int | None

    def probabilities(self, x: np.ndarray, batch_size: int = 1000) -> np.ndarray: ...


class KerasClassifier:
    """A Keras model as a Classifier: uint8 images in, through the training pipeline's scaling."""

    def __init__(self, model: keras.Model) -> None:
        self.model, self.name, self.params = model, model.name, model.count_params()

    def probabilities(self, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        from mnistcli import pipeline  # TensorFlow

        labels = np.zeros(len(x), np.int64)  # the pipeline pairs images with labels; unused here
        return self.model.predict(pipeline.inference(x, labels, batch_size), verbose=0)


def score_probabilities(probs: np.ndarray, y: np.ndarray) -> dict:
    """Accuracy and mean cross-entropy of class probabilities `probs` against labels `y`; also
    the predicted labels and the probabilities."""
    predicted = probs.argmax(axis=1)
    p_true = np.clip(probs[np.arange(len(y)), y], EPSILON, 1.0 - EPSILON)
    return {
        "accuracy": float((predicted == y).mean()),
        "loss": float(-np.log(p_true).mean()),
        "predicted": predicted,
        "probabilities": probs,
    }


def score(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> dict:
    """score_probabilities of a Keras `model` on uint8 images `x`, labels `y`."""
    return score_probabilities(KerasClassifier(model).probabilities(x, batch_size), y)


def load_classifier(cfg: DictConfig) -> tuple[Classifier, dict[str, Any]]:
    """The model `cfg.ckpt` holds, ready to score images, and the device it runs on: a .tflite
    export through LiteRT (TensorFlow never loads), a .keras checkpoint through Keras."""
    if litert.is_litert(cfg.ckpt):
        if cfg.device == "gpu":
            raise UserError(
                f"device=gpu, but LiteRT runs {cfg.ckpt} on the CPU here; use device=auto, or "
                "pass the .keras checkpoint it came from"
            )
        threads = cfg.runtime.threads or usable_cpus()
        return litert.LiteRTModel(cfg.ckpt, threads), {**cpu_device(threads), "runtime": "litert"}
    _, device = select_strategy(cfg.device, cfg.runtime.logical_cpus, cfg.runtime.threads)
    return KerasClassifier(load_checkpoint(cfg.ckpt)), device


def load_checkpoint(path: str | Path, with_optimizer: bool = False) -> keras.Model:
    """Load a .keras checkpoint in safe mode (no arbitrary code) and check its input shape. It
    computes in float32 (precision.in_float32), whatever precision it trained in; `with_optimizer`:
    as it trained, compiled, with the optimizer's saved state (to go on training)."""
    import keras

    import mnistcli.layers  # noqa: F401  (registers its layers, which checkpoints name)
    import mnistcli.losses  # noqa: F401  (and its loss, which compiled ones name)

    p = checks.check_checkpoint(str(path))
    try:
        model = keras.models.load_model(p, compile=with_optimizer, safe_mode=True)
    except Exception as e:  # Keras raises many types for a bad archive
        if "safe_mode" in str(e):
            layer = re.search(r"`(\w+)` layer", str(e))
            raise UserError(
                f"checkpoint {path} carries Python code ({layer.group(1) if layer else 'a custom'} "
                "layer), which mnist never runs: checkpoints load in Keras's safe mode; pass a "
                ".keras file that `mnist train` wrote"
            ) from None
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"cannot load checkpoint {path} ({reason}); pass a .keras file that `mnist train` wrote"
        ) from None
    if tuple(model.input_shape[1:]) != INPUT_SHAPE or model.output_shape[-1] != NUM_CLASSES:
        raise UserError(
            f"checkpoint {path} takes inputs {model.input_shape[1:]} and gives "
            f"{model.output_shape[-1]} outputs; MNIST needs {INPUT_SHAPE} in, {NUM_CLASSES} out"
        )
    return model if with_optimizer else in_float32(model)


def evaluate(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """Evaluate cfg.ckpt on the test set; write metrics.json into `run_dir`; return the metrics."""
    checks.check_eval(cfg)
    run = RunDir(run_dir)
    data = load(cfg.data.path)
    started = time.perf_counter()
    model, device = load_classifier(cfg)
    result = score_probabilities(model.probabilities(data.x_test, cfg.batch_size), data.y_test)
    y, predicted = data.y_test, result["predicted"]
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=int)
    np.add.at(confusion, (y, predicted), 1)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    record = {
        "task": "eval",
        "status": "completed",
        "ckpt": str(Path(cfg.ckpt).resolve()),
        "model": model.name,
        "params": model.params,
        "test": {"accuracy": result["accuracy"], "loss": result["loss"]},
        "per_class_accuracy": [float(a) for a in per_class],
        "confusion_matrix": confusion.tolist(),
        "timing": {"eval_seconds": round(time.perf_counter() - started, 3)},
        "device": device,
        "data": {"source": data.source, "sha256": data.sha256, "test": len(data.x_test)},
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    record = artifacts.write_metrics(run.metrics_json, record)
    pictures = _save_pictures(run.root, data.x_test, y, result["probabilities"], confusion, cfg)
    console = Console()
    tables.eval_summary(console, record, str(run.root))
    tables.written(*pictures)
    return record


def most_confident_mistakes(probs: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    """Indices of at most `n` misclassified examples, the most confident prediction first
    (ties in index order)."""
    predicted, confidence = probs.argmax(axis=1), probs.max(axis=1)
    wrong = np.flatnonzero(predicted != y)
    return wrong[np.argsort(-confidence[wrong], kind="stable")][:n]


def _save_pictures(
    root: Path, x: np.ndarray, y: np.ndarray, probs: np.ndarray, confusion: np.ndarray,
    cfg: DictConfig,
) -> list[Path]:  # fmt: skip
    """confusion_matrix.png, and unless cfg.errors is 0 errors.png: the most confident mistakes
    first."""
    from mnistcli import plots

    name = "/".join(Path(cfg.ckpt).parts[-3:])
    predicted, confidence = probs.argmax(axis=1), probs.max(axis=1)
    wrong = int(confusion.sum() - np.trace(confusion))
    shown = most_confident_mistakes(probs, y, cfg.errors)
    title = f"{wrong} of {len(y)} test images misclassified ({name})"
    if len(shown) < wrong:
        title += f", the {len(shown)} most confident"
    files = {"confusion_matrix.png": plots.confusion_matrix(confusion, f"test set, {name}")}
    if cfg.errors:  # errors=0: no errors.png
        files["errors.png"] = plots.errors(
            x[shown], y[shown], predicted[shown], confidence[shown], title
        )
    for file, png in files.items():
        artifacts.write_bytes(root / file, png)
    return [root / file for file in files]
