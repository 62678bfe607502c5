"""Config values checked before TensorFlow loads: a mistake becomes one UserError line naming the
key, what it must be, and an example of a good value."""

from __future__ import annotations

import difflib
import importlib.util
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from mnistcli.data import existing_path, split_at
from mnistcli.errors import UserError
from mnistcli.runs import existing_folder, flatten

CONFIG_MODULE = "mnistcli.conf"  # the shipped configs (conf/ in the source tree)
DEVICES = ("auto", "cpu", "gpu")
BATCHNORMS = ("fast", "keras")  # mnistcli.models.BATCHNORMS' names; tests/test_layers.py checks
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
AUGMENT_FILL_MODES = ("constant", "nearest", "reflect", "wrap")  # Keras's preprocessing layers'
EXPORT_FORMATS = ("saved_model", "litert")
MONITORS = ("val_loss", "val_accuracy", "loss", "accuracy")
CHECKPOINT_KEYS = ("monitor", "mode")  # callbacks.checkpoint's (conf/callbacks/checkpoint.yaml)
SAVED_MODEL = "saved_model/saved_model.pb"  # in an export run's dir (mnist export)
# keras.activations' element-wise functions by name (all but glu, which halves a layer's width,
# and threshold, which needs arguments); tests/test_models.py checks the list against Keras.
ACTIVATIONS = (
    "relu", "tanh", "sigmoid", "elu", "selu", "gelu", "silu", "swish", "leaky_relu", "relu6",
    "celu", "mish", "softplus", "softsign", "exponential", "linear", "hard_sigmoid", "hard_silu",
    "hard_swish", "hard_tanh", "hard_shrink", "soft_shrink", "tanh_shrink", "log_sigmoid",
    "sparse_plus", "sparse_sigmoid", "squareplus", "softmax", "log_softmax", "sparsemax",
)  # fmt: skip


def _get(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=None)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _bad(key: str, want: str, got: Any, example: str) -> UserError:
    return UserError(f"{key} must be {want}, got {got!r}; e.g. {key}={example}")


def whole(cfg: DictConfig, key: str, low: int, example: str, optional: bool = False) -> None:
    v = _get(cfg, key)
    if v is None and optional:
        return
    if not _is_int(v) or v < low:
        raise _bad(key, f"a whole number >= {low}", v, example)


def number(
    cfg: DictConfig,
    key: str,
    ok: Callable[[float], bool],
    want: str,
    example: str,
    optional: bool = False,
) -> None:
    v = _get(cfg, key)
    if v is None and optional:
        return
    if not _is_number(v) or not ok(v):
        raise _bad(key, want, v, example)


def one_of(cfg: DictConfig, key: str, choices: tuple[str, ...]) -> None:
    v = _get(cfg, key)
    if v not in choices:
        raise _bad(key, f"one of {', '.join(choices)}", v, choices[0])


def shipped(name: str) -> DictConfig:
    """conf/NAME.yaml as shipped in the package (`train`, `model/ffnn`), unresolved; empty when
    there is no such file."""
    spec = resources.files(CONFIG_MODULE) / f"{name}.yaml"
    return OmegaConf.create(spec.read_text() if spec.is_file() else "{}")


def model_keys(name: str) -> list[str] | None:
    """The keys conf/model/NAME.yaml declares (the knobs of that model's builder, and `name`);
    None when there is no such model config."""
    return list(shipped(f"model/{name}")) or None


def _check_model(cfg: DictConfig) -> None:
    name = _get(cfg, "model.name")
    if name is None:
        raise UserError("no model is chosen (~model?); choose one: model=lenet5_bn")
    takes = model_keys(name) if isinstance(name, str) else None
    unknown = [k for k in (cfg.model if takes else ()) if k not in takes]
    if unknown:
        raise UserError(
            f"model {name} has no key {', '.join(unknown)}; it takes "
            f"{', '.join(k for k in takes if k != 'name')} (drop the +model override)"
        )
    number(cfg, "model.l2", lambda v: v >= 0, "a number >= 0 (0 = no weight decay)", "1e-4")
    number(cfg, "model.dropout", lambda v: 0 <= v < 1, "a number in [0, 1)", "0.2", optional=True)
    number(cfg, "model.width", lambda v: 0 < v <= 16, "a number in (0, 16]", "1.5", optional=True)
    if _get(cfg, "model.activation") is not None:
        one_of(cfg, "model.activation", ACTIVATIONS)
    if _get(cfg, "model.batchnorm") is not None:
        one_of(cfg, "model.batchnorm", BATCHNORMS)
    hidden = _get(cfg, "model.hidden")
    if hidden is not None and (
        not isinstance(hidden, ListConfig) or not all(_is_int(w) and w >= 1 for w in hidden)
    ):
        raise _bad("model.hidden", "a list of layer widths >= 1", hidden, "[512,512]")


def _check_optimizer(cfg: DictConfig) -> None:
    number(cfg, "optimizer.lr", lambda v: v > 0, "a number > 0", "0.01")
    number(
        cfg, "optimizer.momentum", lambda v: 0 <= v < 1, "a number in [0, 1)", "0.9", optional=True
    )
    _numbers_or_flags("optimizer", _get(cfg, "optimizer") or {}, exclude=("name",),
                      defaults=shipped(f"optimizer/{_get(cfg, 'optimizer.name')}"))  # fmt: skip


def _numbers_or_flags(
    section: str, params: Any, exclude: tuple[str, ...], defaults: Any = None
) -> None:
    """Values that go to a Keras class as they are (+optimizer.clipnorm=1.0,
    callbacks.reduce_lr.min_lr): all its knobs take numbers, true/false or null. Keras checks the
    names; a string would only fail mid-training (at the first step, or at a plateau). `defaults`:
    the option's config as shipped, whose values make the examples."""
    for key, value in params.items():
        if key not in exclude and value is not None and not isinstance(value, int | float):
            default = (defaults or {}).get(key)  # the value the option ships with, if any
            example = str(default).lower() if isinstance(default, int | float) else "1.0"
            raise _bad(f"{section}.{key}", "a number or true/false", value, example)


def _check_split(cfg: DictConfig) -> None:
    number(cfg, "split.fraction", lambda v: 0 < v < 1, "a number in (0, 1)", "0.2", optional=True)
    whole(cfg, "split.val_size", 1, "10000", optional=True)
    limit = _get(cfg, "data.limit")
    if limit is not None and "split" in cfg:  # data.limit=150 split=holdout: too few to split
        params = {k: v for k, v in OmegaConf.to_container(cfg.split).items() if k != "name"}
        split_at(cfg.split.name, limit, **params)


def _check_callbacks(cfg: DictConfig) -> None:
    checkpoint = _get(cfg, "callbacks.checkpoint")
    extra = [k for k in checkpoint or () if k not in CHECKPOINT_KEYS]
    if extra:  # mnist's own callback (callbacks.RunRecorder), not a Keras class
        raise UserError(
            f"callbacks.checkpoint has no key {extra[0]}; it takes "
            f"{' and '.join(CHECKPOINT_KEYS)} (drop the +callbacks.checkpoint override)"
        )
    if checkpoint is not None:
        one_of(cfg, "callbacks.checkpoint.mode", ("min", "max"))
    for name, params in (_get(cfg, "callbacks") or {}).items():
        if _get(cfg, f"callbacks.{name}.monitor") is not None:
            one_of(cfg, f"callbacks.{name}.monitor", MONITORS)
        if _get(cfg, f"callbacks.{name}.mode") is not None:
            one_of(cfg, f"callbacks.{name}.mode", ("min", "max", "auto"))
        whole(cfg, f"callbacks.{name}.patience", 0, "5", optional=True)
        number(
            cfg, f"callbacks.{name}.factor", lambda v: 0 < v < 1, "a number in (0, 1)", "0.2",
            optional=True,
        )  # fmt: skip
        _numbers_or_flags(f"callbacks.{name}", params or {}, exclude=("monitor", "mode"),
                          defaults=shipped(f"callbacks/{name}").get(name))  # fmt: skip


def _check_schedule(cfg: DictConfig) -> None:
    if _get(cfg, "schedule.name") != "constant" and _get(cfg, "callbacks.reduce_lr") is not None:
        raise UserError(
            "reduce_lr cannot change a scheduled learning rate; use schedule=constant with "
            "reduce_lr, or drop reduce_lr from callbacks"
        )
    for key in ("schedule.alpha", "schedule.final_factor"):
        number(cfg, key, lambda v: 0 <= v <= 1, "a number in [0, 1]", "0.0", optional=True)
    number(
        cfg, "schedule.warmup", lambda v: 0 <= v < 1, "a fraction in [0, 1)", "0.3", optional=True
    )
    number(cfg, "schedule.div_factor", lambda v: v >= 1, "a number >= 1", "25", optional=True)


def _check_augment(cfg: DictConfig) -> None:
    if _get(cfg, "augment.name") in (None, "none"):
        return
    number(cfg, "augment.rotation_degrees", lambda v: 0 <= v <= 180, "degrees in [0, 180]", "10")
    for key in ("augment.zoom", "augment.shift"):
        number(cfg, key, lambda v: 0 <= v < 1, "a fraction in [0, 1)", "0.1")
    one_of(cfg, "augment.fill_mode", AUGMENT_FILL_MODES)
    keep_aspect = _get(cfg, "augment.keep_aspect")
    if not isinstance(keep_aspect, bool | None):
        raise _bad("augment.keep_aspect", "true or false", keep_aspect, "false")
    if _get(cfg, "augment.one_pass") and _get(cfg, "augment.fill_mode") != "constant":
        raise UserError(
            f"augment.fill_mode={_get(cfg, 'augment.fill_mode')}: augment={_get(cfg, 'augment.name')} "
            "fills with black (constant) only; drop it, or use augment=notebook for Keras's fill modes"
        )
    number(cfg, "augment.elastic_alpha", lambda v: v >= 0, "pixels >= 0", "34", optional=True)
    number(cfg, "augment.elastic_sigma", lambda v: v > 0, "pixels > 0", "4", optional=True)


def _check_logger(cfg: DictConfig) -> None:
    if _get(cfg, "logger.name") != "tensorboard":
        return
    whole(cfg, "logger.histogram_freq", 0, "1")
    if not isinstance(_get(cfg, "logger.write_graph"), bool):
        raise _bad("logger.write_graph", "true or false", _get(cfg, "logger.write_graph"), "true")
    freq = _get(cfg, "logger.update_freq")
    if freq not in ("epoch", "batch") and not (_is_int(freq) and freq >= 1):
        raise _bad("logger.update_freq", "epoch, batch or a number of batches >= 1", freq, "100")


def _check_sweep_report(cfg: DictConfig) -> None:
    """The report a sweep writes when it ends: its settings, and names that this config has."""
    _check_report_settings(cfg)
    groups = [d.name for d in resources.files(CONFIG_MODULE).iterdir() if d.is_dir()]
    known = [*flatten(OmegaConf.to_container(cfg, resolve=False)), *groups]
    known = [k for k in known if not k.startswith("_")]  # __pycache__
    check_report_names(cfg.report.group_by, cfg.report.replicates, known, "mnist train's config")


def _check_data_path(cfg: DictConfig) -> None:
    path = _get(cfg, "data.path")
    if path is not None:
        existing_path(str(path))


def _check_runtime(cfg: DictConfig) -> None:
    one_of(cfg, "device", DEVICES)
    whole(cfg, "runtime.logical_cpus", 1, "2")
    whole(cfg, "runtime.threads", 1, "2", optional=True)


def check_train(cfg: DictConfig) -> None:
    """Check a composed `train` config; raise UserError at the first bad value."""
    whole(cfg, "seed", 0, "0")
    whole(cfg, "trainer.epochs", 1, "10")
    whole(cfg, "trainer.batch_size", 1, "64")
    whole(cfg, "trainer.steps_per_execution", 1, "8")
    one_of(cfg, "trainer.precision", PRECISIONS)
    if not isinstance(_get(cfg, "trainer.deterministic"), bool):
        raise _bad(
            "trainer.deterministic", "true or false", _get(cfg, "trainer.deterministic"), "true"
        )
    if _get(cfg, "trainer.jit_compile") not in (True, False, "auto"):
        raise _bad(
            "trainer.jit_compile", "auto, true or false", _get(cfg, "trainer.jit_compile"), "auto"
        )
    shards = _get(cfg, "trainer.shards")
    if shards != "auto" and not (_is_int(shards) and shards >= 1):
        raise _bad("trainer.shards", "auto or a whole number >= 1", shards, "auto")
    whole(cfg, "data.limit", 1, "2000", optional=True)
    limit, batch = _get(cfg, "data.limit"), _get(cfg, "trainer.batch_size")
    if limit is not None and limit < batch:
        raise UserError(
            f"data.limit={limit} is less than one batch (trainer.batch_size={batch}); "
            f"raise data.limit or lower trainer.batch_size"
        )
    number(cfg, "trainer.label_smoothing", lambda v: 0 <= v < 1, "a number in [0, 1)", "0.1")
    number(
        cfg,
        "trainer.ema",
        lambda v: 0 < v < 1,
        "null (off) or a number in (0, 1)",
        "0.999",
        optional=True,
    )
    whole(cfg, "trainer.ema_bn_images", 0, "5000")
    _check_model(cfg)
    _check_optimizer(cfg)
    _check_split(cfg)
    _check_callbacks(cfg)
    _check_schedule(cfg)
    _check_augment(cfg)
    _check_logger(cfg)
    _check_sweep_report(cfg)
    _check_data_path(cfg)
    _check_runtime(cfg)
    devices = _get(cfg, "runtime.logical_cpus")
    if shards != "auto" and shards > 1 and devices > 1:
        raise UserError(
            f"trainer.shards={shards} with runtime.logical_cpus={devices}: the logical devices "
            "split each batch already; set trainer.shards=1"
        )


def checkpoint_file(path: str, litert: bool = False) -> str:
    """`path`, or for a folder the checkpoint a run left there: a train run's (or its checkpoints
    folder's) best.keras, else, where LiteRT may run it, an export run's model.tflite. A folder
    holding none of them, and any other path, is returned as it is."""
    folder = Path(path).expanduser()
    if folder.is_dir():
        inside = [folder / "checkpoints" / "best.keras", folder / "best.keras"]
        for file in inside + ([folder / "model.tflite"] if litert else []):
            if file.is_file():
                return str(file)
    return path


def check_checkpoint(path: str, task: str = "train", litert: bool = False) -> Path:
    """A checkpoint path must name an existing .keras archive (a zip file), or with `litert` also
    a LiteRT export (a .tflite flatbuffer); or a folder that checkpoint_file finds one in."""
    p = Path(checkpoint_file(path, litert)).expanduser()
    if not p.exists():
        raise UserError(
            f"checkpoint {path} does not exist; pass ckpt=RUN_DIR (a train run's dir) or "
            "ckpt=RUN_DIR/checkpoints/best.keras"
        )
    if p.is_dir() and ((p / "saved_model.pb").is_file() or (p / SAVED_MODEL).is_file()):
        raise UserError(
            f"{path} is a SavedModel export, for serving, which mnist {task} does not read; pass "
            "the .keras checkpoint it came from" + (" or a LiteRT export" if litert else "")
        )
    if p.is_dir() and not litert and (p / "model.tflite").is_file():
        p = p / "model.tflite"  # an export run's dir: refused below as the LiteRT file it holds
    if p.is_dir():
        kinds = "checkpoints/best.keras or model.tflite" if litert else "checkpoints/best.keras"
        jobs = sorted(job.parent.parent for job in p.glob("*/checkpoints/best.keras"))
        fix = f"one job's dir, e.g. {jobs[0]}" if jobs else "a train run's dir or the file itself"
        if (p / "checkpoints" / "last.keras").is_file():  # a run with no checkpoint callback
            fix = f"{p / 'checkpoints' / 'last.keras'}, its last epoch's weights"
        raise UserError(f"checkpoint {path} is a folder with no {kinds} in it; pass {fix}")
    if p.suffix.lower() == ".tflite":
        if not litert:
            raise UserError(
                f"{path} is a LiteRT export, which mnist {task} cannot use; pass the .keras "
                "checkpoint it came from"
            )
        with open(p, "rb") as fh:
            if fh.read(8)[4:] != b"TFL3":  # a TFLite flatbuffer's file identifier
                raise UserError(
                    f"{path} is not a LiteRT model (.tflite flatbuffer); pass one that "
                    "`mnist export format=litert` wrote"
                )
        return p
    if not zipfile.is_zipfile(p):
        raise UserError(
            f"checkpoint {path} is not a Keras archive (.keras zip file); pass one that "
            "`mnist train` wrote"
        )
    return p


def _check_ckpt(cfg: DictConfig, task: str) -> None:
    if OmegaConf.is_missing(cfg, "ckpt") or not _get(cfg, "ckpt"):
        raise UserError(
            f"{task} needs a checkpoint: mnist {task} ckpt=RUN_DIR/checkpoints/best.keras"
        )
    from mnistcli import litert

    check_checkpoint(str(cfg.ckpt), task, litert=task in litert.TASKS)


def check_eval(cfg: DictConfig) -> None:
    """Check a composed `eval` config; raise UserError at the first bad value."""
    _check_ckpt(cfg, "eval")
    whole(cfg, "batch_size", 1, "1000")
    whole(cfg, "errors", 0, "40")
    _check_data_path(cfg)
    _check_runtime(cfg)


def check_summary(cfg: DictConfig) -> None:
    """Check a composed `summary` config; a diagram needs pydot and Graphviz's dot."""
    _check_model(cfg)
    diagram = _get(cfg, "diagram")
    if diagram in (False, None):
        return
    if diagram is not True and Path(str(diagram)).suffix.lower() not in (".png", ".svg", ".pdf"):
        raise _bad("diagram", "true or a .png, .svg or .pdf file", diagram, "lenet5.png")
    if shutil.which("dot") is None or importlib.util.find_spec("pydot") is None:
        raise UserError(
            "the model diagram needs Graphviz's `dot` program, which is not installed; install "
            "graphviz (Debian/Ubuntu: apt install graphviz; macOS: brew install graphviz) or drop "
            "diagram="
        )


def check_show(cfg: DictConfig) -> None:
    """Check a composed `show` config (the indices against the data once it is loaded)."""
    one_of(cfg, "show.split", ("train", "test"))
    whole(cfg, "show.n", 1, "10")
    whole(cfg, "show.index", 0, "7")
    _check_data_path(cfg)


def check_predict(cfg: DictConfig) -> None:
    """Check a composed `predict` config (each image is checked when it is read)."""
    _check_ckpt(cfg, "predict")
    if OmegaConf.is_missing(cfg, "images") or _get(cfg, "images") in (None, "", []):
        raise UserError(
            "predict needs images: mnist predict ckpt=... images=[a.png,b.jpg] (or a folder)"
        )
    from mnistcli.images import entries, image_files  # Pillow: predict's alone

    files, listed = image_files(cfg.images), ", ".join(entries(cfg.images))
    if not files:
        raise UserError(
            f"no image files in {listed}; give image files or a folder of them (png, jpg, bmp, "
            "gif, tiff, webp)"
        )
    if not any(f.exists() for f in files):  # one missing among others gets its own row
        raise UserError(f"no such file: {listed}; give image files or a folder of them")
    _check_runtime(cfg)


def check_export(cfg: DictConfig) -> None:
    """Check a composed `export` config."""
    _check_ckpt(cfg, "export")
    one_of(cfg, "format", EXPORT_FORMATS)


def check_writable(folder: str, key: str) -> None:
    """`folder` can be created (or is there) and written to: its nearest existing ancestor is a
    folder this process may write into."""
    path = Path(folder).expanduser().absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise UserError(f"cannot create {folder}: {existing} is a file; set {key} elsewhere")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"cannot write into {existing} (permission denied); set {key} elsewhere")
    try:  # what access() cannot tell: /proc, some network and FUSE mounts, no inodes left
        os.rmdir(tempfile.mkdtemp(prefix=".mnist-probe-", dir=existing))
    except OSError as e:
        raise UserError(
            f"cannot create folders in {existing} ({e.strerror}); set {key} elsewhere"
        ) from None


def check_report(cfg: DictConfig) -> None:
    """Check a composed `report` config: the folder exists, reference lines are numbers."""
    if OmegaConf.is_missing(cfg, "path") or _get(cfg, "path") is None:
        raise UserError("report needs a folder: mnist report outputs/multirun/DATE/TIME")
    existing_folder(str(cfg.path))
    check_writable(str(cfg.path), "the report's folder (it writes report.csv/json/png there)")
    _check_report_settings(cfg)


def _check_report_settings(cfg: DictConfig) -> None:
    """The `report` section's types; its names are checked by check_report_names."""
    ref = _get(cfg, "report.reference")
    values = (
        ref.values()
        if isinstance(ref, DictConfig)
        else ref
        if isinstance(ref, ListConfig)
        else [ref]
    )
    if ref is not None and not all(_is_number(v) for v in values):
        raise _bad(
            "report.reference", "a number, a list of numbers or {label: number}", ref, "0.9847"
        )
    replicates = _get(cfg, "report.replicates")
    if not isinstance(replicates, ListConfig) or not all(isinstance(k, str) for k in replicates):
        raise _bad("report.replicates", "a list of config keys", replicates, "[seed]")
    group_by = _get(cfg, "report.group_by")
    if group_by is not None and (
        not isinstance(group_by, ListConfig) or not all(isinstance(k, str) for k in group_by)
    ):
        raise _bad(
            "report.group_by", "null or a list of config keys or groups", group_by, "[experiment]"
        )


def check_report_names(
    group_by: Sequence[str] | None, replicates: Sequence[str], known: Iterable[str], where: str
) -> None:
    """report.group_by's and report.replicates' names must each be among `known` (config keys
    and config groups); else one line with the nearest known name. `where` says whose they are
    ("the runs under outputs/x", "mnist train's config")."""
    known = sorted(set(known))
    for setting, names in (("group_by", group_by or ()), ("replicates", replicates)):
        for name in names:
            if name not in known:
                near = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
                hint = f"did you mean {near[0]}?" if near else "e.g. model.l2, seed or experiment"
                raise UserError(
                    f"report.{setting} names {name}, which is not a config key or group of "
                    f"{where}; {hint}"
                )


CHECKS = {
    "train": check_train,
    "eval": check_eval,
    "summary": check_summary,
    "report": check_report,
    "show": check_show,
    "predict": check_predict,
    "export": check_export,
}
