"""`mnist train`: train(cfg, run_dir) -> metrics, a plain function thin over Keras fit.

Flow: checks → data → device → model → fit (checkpoints and history each epoch) → score the best
checkpoint on the test set → metrics.json."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from mnistcli import (
    PROCESS_STARTED,
    RUN_LOG,
    artifacts,
    checks,
    loggers,
    pipeline,
    shards,
    tables,
)
from mnistcli.artifacts import RunDir
from mnistcli.augment import augmenter
from mnistcli.callbacks import AveragedWeights, FirstStep, RunRecorder, from_config, restore
from mnistcli.data import Mnist, Split, load, make_split
from mnistcli.errors import UserError
from mnistcli.evaluate import load_checkpoint, score
from mnistcli.losses import training_loss
from mnistcli.models import build_model, count_trainable
from mnistcli.optimizers import build_optimizer, learning_rate
from mnistcli.precision import in_float32, set_precision
from mnistcli.progress import RichProgress
from mnistcli.report import save_curves
from mnistcli.runtime import seed_everything, select_strategy, sweep_job, use_xla

log = logging.getLogger(__name__)
EVAL_BATCH = 1000


def _best_row(history: list[dict[str, float]], best_epoch: int | None) -> dict[str, float]:
    if not history:
        return {}
    return history[best_epoch - 1] if best_epoch else history[-1]


def _compiled_model(
    cfg: DictConfig, device: dict[str, Any], steps: int, per_execution: int
) -> keras.Model:
    """The model, compiled for `device` (XLA or not: runtime.use_xla), `steps` train steps per
    epoch, `per_execution` per call, with every variable its train step updates already made:
    Keras would make the optimizer's slots and the accuracy's totals inside the step's first
    trace, and TensorFlow then traces the step again (1.4 s of lenet5_bn's start-up with adam:
    BENCHMARKS.md)."""
    model = build_model(**OmegaConf.to_container(cfg.model))
    opt_cfg = OmegaConf.to_container(cfg.optimizer)
    total_steps = cfg.trainer.epochs * steps
    opt_cfg["lr"] = learning_rate(opt_cfg["lr"], OmegaConf.to_container(cfg.schedule), total_steps)
    model.compile(
        optimizer=build_optimizer(**opt_cfg, ema=cfg.trainer.ema),
        loss=training_loss(cfg.trainer.label_smoothing),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=use_xla(cfg.trainer, model, device),
        steps_per_execution=per_execution,
    )
    model.optimizer.build(model.trainable_variables)
    return model


def _previous_metrics(run: RunDir) -> dict[str, Any]:
    try:
        return json.loads(run.metrics_json.read_text())
    except (OSError, ValueError):
        return {}


def _start_record(
    cfg: DictConfig, model: keras.Model, split: Split, data: Mnist, device: dict, untrained: float
) -> dict[str, Any]:
    """metrics.json's fields as they stand before the first epoch."""
    return {
        "task": "train",
        "status": "running",
        "model": cfg.model.name,
        "params": model.count_params(),
        "trainable_params": count_trainable(model),
        "seed": cfg.seed,
        "epochs_completed": 0,
        "best_epoch": None,
        "val": {"accuracy": None, "loss": None},
        "test": {"accuracy": None, "loss": None},
        "untrained_test_accuracy": untrained,
        "test_used_for_selection": split.test_used_for_selection,
        "history": [],
        "timing": {
            "train_seconds": 0.0,
            "samples_per_second": 0.0,
            "steps_per_execution": model.steps_per_execution,
        },
        "device": device,
        "data": {"source": data.source, "sha256": data.sha256, **split.sizes()},
        "config": OmegaConf.to_container(cfg, resolve=True),
    }


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _start(record: dict[str, Any], cfg: DictConfig, initial_epoch: int) -> str:
    """The run's first line in train.log: what trains on what, where."""
    data, device = record["data"], record["device"]
    resumed = f", resuming after epoch {initial_epoch}" if initial_epoch else ""
    return (
        f"{record['model']} ({record['params']:,} params), seed {record['seed']}: "
        f"{_count(cfg.trainer.epochs, 'epoch')} of batch {cfg.trainer.batch_size} "
        f"on {data['train']:,} images, {data['val']:,} validating, {data['test']:,} testing; "
        f"{device.get('type')} x{device.get('count')}, {device.get('precision')}, "
        f"{'XLA, ' if device.get('xla') else ''}"
        f"{_count(device['shards'], 'shard') + ', ' if device['shards'] > 1 else ''}"
        f"{_count(record['timing']['steps_per_execution'], 'step')} per call{resumed}"
    )


def _outcome(m: dict[str, Any], run: RunDir) -> str:
    """The run's last line in train.log: how it ended and what it scored."""
    val, test = m["val"], m["test"]
    line = (
        f"{m['status']} after {_count(m['epochs_completed'], 'epoch')}"
        f"{tables.best_note(m['best_epoch'])}: "
        f"val accuracy {tables.pct(val['accuracy'])}, test accuracy {tables.pct(test['accuracy'])}, "
        f"{m['timing']['train_seconds']:.1f} s in fit"
    )
    if m.get("error"):
        line += f"; {m['error']}"
    if m["status"] == "interrupted":
        line += f"; continue with `mnist train resume={run.root}`"
    return line


_first_in_process = True  # the first run in this process counts its start-up from process start


def train(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """Train the model `cfg` composes; write checkpoints, history.csv and metrics.json into
    `run_dir`, which no other process may train in meanwhile; return the metrics."""
    with artifacts.claimed(run_dir):
        return _train(cfg, run_dir)


def _train(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    global _first_in_process
    began = PROCESS_STARTED if _first_in_process else time.time()
    _first_in_process = False
    checks.check_train(cfg)
    run = RunDir(run_dir)
    console = Console()
    data = load(cfg.data.path)
    split = make_split(data, limit=cfg.data.limit, **cfg.split)
    if split.test_used_for_selection:
        log.warning(
            "split=test: the test set validates and so selects the model; its test accuracy is "
            "not an unbiased estimate (metrics.json records test_used_for_selection: true)"
        )
    keras.backend.clear_session()  # a fresh graph: nothing carries over from a sweep's last job
    k = shards.wanted(cfg)
    strategy, device = select_strategy(
        cfg.device, cfg.runtime.logical_cpus, cfg.runtime.threads, shards=k
    )
    device["shards"] = k
    if cfg.trainer.deterministic:
        tf.config.experimental.enable_op_determinism()
    device["precision"] = set_precision(cfg.trainer.precision, device, cfg.model)
    seed_everything(cfg.seed)

    batch_size, epochs = cfg.trainer.batch_size, cfg.trainer.epochs
    steps = pipeline.steps_per_epoch(len(split.x_train), batch_size)
    per_execution = pipeline.steps_per_execution(cfg.trainer.steps_per_execution, steps)
    if strategy.num_replicas_in_sync > 1 and k > 1:
        raise UserError(
            f"trainer.shards={k} with {strategy.num_replicas_in_sync} devices: the devices split "
            "each batch already; set trainer.shards=1"
        )
    if strategy.num_replicas_in_sync > 1 and per_execution > 1:
        # Keras's multi-step call fails there ("You must feed a value for placeholder tensor"
        # inside its while loop's tf.cond; keras-team/keras#19246)
        log.info("%d replicas: 1 step per call into TensorFlow", strategy.num_replicas_in_sync)
        per_execution = 1
    resuming = bool(cfg.get("resume")) and run.last.exists()
    with strategy.scope():
        model = (
            load_checkpoint(run.last, with_optimizer=True)
            if resuming
            else _compiled_model(cfg, device, steps, per_execution)
        )
    model.steps_per_execution = per_execution  # a checkpoint's compile config has its own
    shards.shard_steps(model, k)
    device["xla"] = bool(model.jit_compile)
    entries = restore(run, model, steps) if resuming else []
    before = _previous_metrics(run) if resuming else {}
    if "untrained_test_accuracy" in before:
        untrained = before["untrained_test_accuracy"]
    else:
        untrained = score(model, split.x_test, split.y_test, EVAL_BATCH)["accuracy"]

    callbacks_cfg = OmegaConf.to_container(cfg.get("callbacks") or OmegaConf.create())
    best_by = callbacks_cfg.get("checkpoint") or {}
    stateful = from_config(callbacks_cfg)
    recorder = RunRecorder(
        run, best_by.get("monitor"), best_by.get("mode", "min"), stateful, entries
    )
    record = _start_record(cfg, model, split, data, device, untrained)
    if resuming:
        record["resumed_from_epoch"] = [*before.get("resumed_from_epoch", []), len(entries)]
    earlier_seconds = (before.get("timing") or {}).get("train_seconds", 0.0)

    def finish(status: str, seconds: float, **extra: Any) -> dict[str, Any]:
        seconds += earlier_seconds
        done = len(recorder.history)
        best = _best_row(recorder.history, recorder.best_epoch)
        record.update(status=status, epochs_completed=done, best_epoch=recorder.best_epoch, **extra)
        record["history"] = recorder.history
        record["val"] = {"accuracy": best.get("val_accuracy"), "loss": best.get("val_loss")}
        record["timing"] = {
            "train_seconds": round(seconds, 3),
            "samples_per_second": round(done * len(split.x_train) / seconds, 1) if seconds else 0.0,
            "startup_seconds": first_step.ended and round(first_step.ended - began, 3),
            "steps_per_execution": model.steps_per_execution,
        }
        written = artifacts.write_metrics(run.metrics_json, record)
        level = logging.INFO if status == "completed" else logging.WARNING
        RUN_LOG.log(level, _outcome(written, run))
        save_curves(run, written)
        return written

    initial_epoch = len(entries)
    RUN_LOG.info(_start(record, cfg, initial_epoch))
    train_ds = pipeline.training(
        split.x_train, split.y_train, batch_size, cfg.seed, epochs, initial_epoch,
        augmenter(OmegaConf.to_container(cfg.augment), cfg.seed),
    )  # fmt: skip
    val_ds = pipeline.inference(split.x_val, split.y_val, EVAL_BATCH)
    first_step = FirstStep()
    averaged = []
    if cfg.trainer.ema is not None:
        n = cfg.trainer.ema_bn_images
        clean = pipeline.inference(split.x_train[:n], split.y_train[:n], EVAL_BATCH) if n else None
        averaged = [AveragedWeights(resumed=resuming, batch_norm_batches=clean)]
    callbacks = [first_step, *stateful, *averaged, recorder, *loggers.from_config(cfg, run)]
    job = sweep_job()  # in a sweep, each epoch line says whose it is
    callbacks.append(RichProgress(console, f"#{job} " if job is not None else ""))
    started = time.perf_counter()
    try:
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps,
            verbose=0,
            callbacks=callbacks,
        )
    except KeyboardInterrupt:
        finish("interrupted", time.perf_counter() - started)
        raise
    except Exception as e:
        finish("failed", time.perf_counter() - started, error=f"{type(e).__name__}: {e}")
        raise
    seconds = time.perf_counter() - started

    diverged = any(not math.isfinite(row.get("loss", math.nan)) for row in recorder.history)
    # the model in memory already holds the best epoch's weights when that was the last one
    # (its predict function is traced, too); else the best checkpoint is loaded
    last_is_best = recorder.best_epoch in (None, len(recorder.history))
    if run.best.exists() and not last_is_best:
        best_model = shards.shard_steps(load_checkpoint(run.best), k)
    else:  # computing in float32, as load_checkpoint gives it and `mnist eval` scores it
        float32 = in_float32(model)
        best_model = model if float32 is model else shards.shard_steps(float32, k)
    if not diverged or run.best.exists():
        tested = score(best_model, split.x_test, split.y_test, EVAL_BATCH)
        record["test"] = {"accuracy": tested["accuracy"], "loss": tested["loss"]}
    extra = {"error": "the loss became NaN or infinite; lower optimizer.lr"} if diverged else {}
    metrics = finish("failed" if diverged else "completed", seconds, **extra)
    tables.train_summary(console, metrics, str(run.root))
    tables.written(run.curves_png)
    return metrics
