"""`mnist SUBCOMMAND [overrides]`: dispatch to that subcommand's @hydra.main.

Imports no TensorFlow: `mnist --help`, `mnist train --help` and config errors stay fast; each task
imports what it needs once it runs."""

from __future__ import annotations

import sys
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from mnistcli import __version__
from mnistcli.errors import UserError, fail

CONFIG_PATH = "pkg://mnistcli.conf"
SUBCOMMANDS = {
    "train": "train a model: mnist train model=lenet5 optimizer=sgd trainer.epochs=10",
    "eval": "evaluate a checkpoint on the test set: mnist eval ckpt=RUN_DIR/checkpoints/best.keras",
    "summary": "print a model's layers and parameter counts: mnist summary model=lenet5",
}
USAGE = """usage: mnist SUBCOMMAND [key=value ...] [hydra flags]

Train and evaluate the classic Keras MNIST classifiers from composed Hydra configs.

subcommands:
{rows}

`mnist SUBCOMMAND --help` shows its config groups, options and keys. Hydra's flags work with
every subcommand: -m/--multirun (sweep comma-separated values), --cfg job, --info,
hydra.run.dir=PATH. Runs are written to outputs/DATE/TIME/.
"""


def _run(task: str, cfg: DictConfig) -> dict[str, Any]:
    """Run one task in Hydra's output dir; user mistakes end in one line and exit code 2."""
    from mnistcli.runtime import quiet_tensorflow

    quiet_tensorflow()
    run_dir = HydraConfig.get().runtime.output_dir
    try:
        if task == "train":
            from mnistcli.train import train

            return train(cfg, run_dir)
        if task == "eval":
            from mnistcli.evaluate import evaluate

            return evaluate(cfg, run_dir)
        from mnistcli.summary import summary

        return summary(cfg)
    except UserError as e:
        fail(str(e))
    except KeyboardInterrupt:
        print("mnist: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


@hydra.main(config_path=CONFIG_PATH, config_name="train", version_base="1.3")
def train_task(cfg: DictConfig) -> float | None:
    metrics = _run("train", cfg)
    if metrics["status"] == "failed" and HydraConfig.get().mode != RunMode.MULTIRUN:
        print(f"mnist: training failed: {metrics.get('error')}", file=sys.stderr)
        raise SystemExit(1)
    return metrics["val"]["accuracy"]


@hydra.main(config_path=CONFIG_PATH, config_name="eval", version_base="1.3")
def eval_task(cfg: DictConfig) -> float | None:
    return _run("eval", cfg)["test"]["accuracy"]


@hydra.main(config_path=CONFIG_PATH, config_name="summary", version_base="1.3")
def summary_task(cfg: DictConfig) -> None:
    _run("summary", cfg)


TASKS = {"train": train_task, "eval": eval_task, "summary": summary_task}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `mnist` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        rows = "\n".join(f"  {name:<9}{text}" for name, text in SUBCOMMANDS.items())
        print(USAGE.format(rows=rows), end="")
        raise SystemExit(0 if args else 2)
    if args[0] in ("-V", "--version"):
        print(f"mnistcli {__version__}")
        return
    task, rest = args[0], args[1:]
    if task not in TASKS:
        fail(f"unknown subcommand '{task}'; choose one of {', '.join(TASKS)} (see mnist --help)")
    from mnistcli.overrides import preflight

    try:
        preflight(task, rest)
    except UserError as e:
        fail(str(e))
    sys.argv = [f"mnist-{task}", *rest]
    TASKS[task]()
