"""`mnist SUBCOMMAND [overrides]`: dispatch to that subcommand's @hydra.main.

Imports no TensorFlow: `mnist --help`, `mnist train --help` and config errors stay fast; each task
imports what it needs once it runs."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mnistcli import RUN_LOG, __version__, completion
from mnistcli.errors import UserError, fail
from mnistcli.runtime import sweep_job
from mnistcli.signals import interruptible, orphaned

log = logging.getLogger(__name__)
CONFIG_PATH = "pkg://mnistcli.conf"
SUBCOMMANDS = {
    "train": "train a model: mnist train model=lenet5 optimizer=sgd trainer.epochs=10",
    "eval": "evaluate a checkpoint on the test set: mnist eval ckpt=RUN_DIR (its best.keras)",
    "predict": "the digit in image files: mnist predict ckpt=PATH images=[a.png,b.jpg] (or a folder)",
    "show": "draw MNIST digits (digits.png, one digit's pixel values): mnist show show.n=20",
    "summary": "print a model's layers and parameter counts: mnist summary model=lenet5",
    "report": "summarise a sweep or folder of runs (table, report.csv/json/png): mnist report PATH",
    "export": "a checkpoint as a SavedModel or LiteRT model: mnist export ckpt=PATH format=litert",
}
USAGE = """usage: mnist SUBCOMMAND [key=value ...] [hydra flags]

Train and evaluate the classic Keras MNIST classifiers from composed Hydra configs.

subcommands:
{rows}

`mnist SUBCOMMAND --help` shows its config groups, options and keys. Hydra's flags work with
every subcommand but report: -m/--multirun (sweep comma-separated values), --cfg job, --info,
hydra.run.dir=PATH. Runs are written to outputs/DATE/TIME/ (sweeps: outputs/multirun/...).

  mnist train resume=outputs/DATE/TIME    continue a killed or interrupted run (Ctrl-C, SIGTERM)
  mnist train -m experiment=l2_sweep      a sweep; its folder gets summary.csv and report.png
  mnist train -m hydra/launcher=joblib ...   jobs in parallel (submitit_slurm: on a cluster)
  mnist train -m hparams_search=optuna    Optuna search over lr, l2 and dropout
  mnist train logger=tensorboard          also TensorBoard logs: tensorboard --logdir outputs
  eval "$(mnist -sc install=bash)"        tab completion of subcommands, groups, options, keys
                                          (zsh: after bashcompinit; fish: install=fish | source)
"""


def _in_sweep() -> bool:
    return sweep_job() is not None


# Each task's module and function, imported only when it runs (most import TensorFlow).
RUNNERS = {
    "train": ("mnistcli.train", "train"),
    "eval": ("mnistcli.evaluate", "evaluate"),
    "predict": ("mnistcli.predict", "predict"),
    "show": ("mnistcli.show", "show"),
    "export": ("mnistcli.export", "export"),
    "report": ("mnistcli.report", "report_task"),
    "summary": ("mnistcli.summary", "summary"),
}
WITHOUT_TENSORFLOW = ("report", "show")


def _needs_tensorflow(task: str, cfg: DictConfig) -> bool:
    """Whether the task will import TensorFlow: all do but report, show, and eval or predict of
    a LiteRT export (which LiteRT runs)."""
    from mnistcli import litert

    if task in WITHOUT_TENSORFLOW:
        return False
    return not (task in litert.TASKS and litert.is_litert(str(cfg.get("ckpt") or "")))


def _held(task: str, run_dir: str) -> contextlib.AbstractContextManager:
    """A training job holds its run dir from its first moment, before TensorFlow loads, so that
    `mnist report` counts it as running, not as stopped, while it starts (train() holds it too)."""
    from mnistcli.artifacts import claimed

    return claimed(run_dir) if task == "train" else contextlib.nullcontext()


def _dispatch(task: str, cfg: DictConfig, run_dir: str) -> dict[str, Any]:
    module, function = RUNNERS[task]
    return getattr(importlib.import_module(module), function)(cfg, run_dir)


def _run(task: str, cfg: DictConfig) -> dict[str, Any]:
    """Run one task in Hydra's output dir. A user's mistake ends in one line and exit code 2; in a
    sweep, a job that fails for any reason is recorded as failed and the sweep goes on."""
    from mnistcli import litert
    from mnistcli.checks import checkpoint_file
    from mnistcli.runtime import cpu_share, quiet_tensorflow

    if cfg.get("ckpt"):  # ckpt=RUN_DIR: the checkpoint in it, as metrics.json will record
        cfg.ckpt = checkpoint_file(str(cfg.ckpt), litert=task in litert.TASKS)
    hydra_cfg = HydraConfig.get()
    run_dir = hydra_cfg.runtime.output_dir
    try:
        with interruptible(), _held(task, run_dir):
            if _needs_tensorflow(task, cfg):
                quiet_tensorflow()
            if "runtime" in cfg and cfg.runtime.get("threads") is None:
                cfg.runtime.threads = cpu_share(hydra_cfg.get("launcher"))
            return _dispatch(task, cfg, run_dir)
    except BrokenPipeError:
        _reader_left()
    except KeyboardInterrupt as e:
        hint = f"; continue it with: mnist train resume={run_dir}" if task == "train" else ""
        print(f"mnist: interrupted{hint}", file=sys.stderr)
        code = getattr(e, "exit_code", 130)
        if orphaned():  # a sweep's worker whose parent was killed: no more jobs will come
            _exit_now(code, worker=True)
        raise SystemExit(code) from None
    except Exception as e:
        from mnistcli.artifacts import RunDir, record_failure

        if not _in_sweep():
            if isinstance(e, UserError):
                if task == "train":  # the run dir Hydra made says why it holds no run
                    RUN_LOG.error(str(e))
                    if not cfg.get("resume"):  # a new run: failed, not one to resume (a
                        # resumption that fails keeps its record, to be resumed once fixed)
                        record_failure(RunDir(run_dir).metrics_json, task, cfg, str(e))
                fail(str(e))
            raise
        error = str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"
        log.error("job failed: %s", error, exc_info=not isinstance(e, UserError))
        return record_failure(RunDir(run_dir).metrics_json, task, cfg, error)


@hydra.main(config_path=CONFIG_PATH, config_name="train", version_base="1.3")
def train_task(cfg: DictConfig) -> float | None:
    """Train; return the validation accuracy (the objective a sweeper such as Optuna maximises),
    or None for a failed job, which a sweeper records as a failed trial."""
    metrics = _run("train", cfg)
    if metrics["status"] == "failed":
        if _in_sweep():
            return None
        print(f"mnist: training failed: {metrics.get('error')}", file=sys.stderr)
        raise SystemExit(1)
    return metrics["val"]["accuracy"]


@hydra.main(config_path=CONFIG_PATH, config_name="eval", version_base="1.3")
def eval_task(cfg: DictConfig) -> float | None:
    return (_run("eval", cfg).get("test") or {}).get("accuracy")


@hydra.main(config_path=CONFIG_PATH, config_name="predict", version_base="1.3")
def predict_task(cfg: DictConfig) -> None:
    failed = _run("predict", cfg).get("failed")
    if failed and not _in_sweep():
        print(
            f"mnist: {len(failed)} image(s) could not be read: {', '.join(failed)}", file=sys.stderr
        )
        raise SystemExit(1)


def _task(name: str) -> Callable[[], None]:
    """The @hydra.main of a subcommand that only runs (no return value, exit code 0 or 2)."""

    @hydra.main(config_path=CONFIG_PATH, config_name=name, version_base="1.3")
    def task(cfg: DictConfig) -> None:
        _run(name, cfg)

    return task


TASKS = {
    "train": train_task,
    "eval": eval_task,
    "predict": predict_task,
    **{name: _task(name) for name in ("show", "summary", "report", "export")},
}


def _path_argument(args: list[str]) -> list[str]:
    """`mnist report PATH ...`: the first bare argument is the path; pass it as `path='PATH'`."""
    takes_value = {"--cfg", "-c", "--package", "-p", "--info", "-i", "--config-name", "-cn",
                   "--config-path", "-cp", "--config-dir", "-cd"}  # fmt: skip
    for i, arg in enumerate(args):
        if i and args[i - 1] in takes_value:
            continue
        if not arg.startswith("-") and "=" not in arg:
            from mnistcli.overrides import quoted

            return [*args[:i], f"path={quoted(arg)}", *args[i + 1 :]]
    return args


def _multirun_first(args: list[str]) -> list[str]:
    """`mnist train model=lenet5 -m seed=0,1,2` as `mnist train -m model=lenet5 seed=0,1,2`:
    Hydra's parser takes its overrides in one run, so -m between two of them was an error."""
    flags = ("-m", "--multirun")
    return [a for a in args if a in flags] + [a for a in args if a not in flags]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `mnist` console script."""
    try:
        _main(argv)
    except BrokenPipeError:
        _reader_left()
    except SystemExit as e:
        _exit_now(e.code)
        raise
    _exit_now(0)


def _reader_left() -> NoReturn:
    """Stop quietly when whoever reads stdout has gone (`mnist report PATH | head`): exit 141,
    as a shell pipeline's writer does, with no traceback."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    raise SystemExit(141) from None


def _exit_now(code: int | str | None, worker: bool = False) -> None:
    """End a process that imported TensorFlow without the interpreter's teardown, which takes
    1.5-2 s there (`python -c "import tensorflow"`: 7.1 s; with os._exit after the import: 4.9 s).
    Everything is written by then: log handlers are flushed and closed, then stdout and stderr.
    Not in a process with joblib's workers (a parallel sweep), whose shutdown stops them, unless
    it is an orphaned `worker` itself."""
    if not worker and ("tensorflow" not in sys.modules or "joblib" in sys.modules):
        return
    if isinstance(code, str):
        print(code, file=sys.stderr)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code if isinstance(code, int) else int(code is not None))


def _main(argv: list[str] | None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        rows = "\n".join(f"  {name:<9}{text}" for name, text in SUBCOMMANDS.items())
        print(USAGE.format(rows=rows), end="")
        raise SystemExit(0 if args else 2)
    if args[0] in ("-V", "--version"):
        print(f"mnistcli {__version__}")
        return
    if completion.requested(args):
        try:
            completion.complete(args, TASKS)
        except UserError as e:
            fail(str(e))
        return
    task, rest = args[0], _multirun_first(args[1:])
    if task not in TASKS:
        fail(f"unknown subcommand '{task}'; choose one of {', '.join(TASKS)} (see mnist --help)")
    if task == "report":
        rest = _path_argument(rest)
    if task == "train":
        from mnistcli.resume import AlreadyCompleted, resume_arguments

        try:
            rest = resume_arguments(rest)
        except UserError as e:
            fail(str(e))
        except AlreadyCompleted as e:
            print(f"mnist: {e} has already completed; nothing to resume")
            return
    from mnistcli.overrides import preflight

    try:
        rest = preflight(task, rest)
    except UserError as e:
        fail(str(e))
    sys.argv = [f"mnist {task}", *rest]  # the command as Hydra's own help writes it
    TASKS[task]()
