"""Compose what the user typed (every combination of a sweep) before Hydra runs, so that a bad
override or value ends in one line and exit code 2 instead of Hydra's multi-line report.

Imports Hydra and OmegaConf only; never TensorFlow."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_module
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import (
    ConfigCompositionException,
    HydraException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from mnistcli.checks import CHECKS
from mnistcli.errors import UserError

CONFIG_MODULE = "mnistcli.conf"
HYDRA_ONLY_FLAGS = ("help", "hydra_help", "info", "shell_completion", "version")


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    return lines[0].rstrip(".") if lines else type(e).__name__


def _combinations(overrides: list[str], multirun: bool) -> list[list[str]]:
    if not multirun:
        return [overrides]
    parsed = OverridesParser.create().parse_overrides(overrides)
    try:
        return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    except HydraException:
        # A sweep the basic sweeper can't expand (e.g. Optuna's interval()): check the rest.
        return [[o.input_line for o in parsed if not o.is_sweep_override()]]


def _compose(task: str, config_name: str, overrides: list[str]) -> DictConfig:
    try:
        return compose(config_name, overrides=overrides, return_hydra_config=True)
    except MissingConfigException as e:
        group, _, name = (e.missing_cfg_file or "").rpartition("/")
        if e.options:
            raise UserError(
                f"unknown {group or 'config'} '{name}'; choose one of: {', '.join(e.options)}"
            ) from None
        raise UserError(f"{_first_line(e)}; see `mnist {task} --help`") from None
    except ConfigCompositionException as e:
        cause = f": {_first_line(e.__cause__)}" if e.__cause__ else ""
        raise UserError(
            f"{_first_line(e)}{cause}; see `mnist {task} --help` for the groups and keys "
            "(add a new key with +key=value)"
        ) from None
    except OverrideParseException as e:
        raise UserError(f"cannot parse the override: {_first_line(e)}") from None
    except (HydraException, OmegaConfBaseException) as e:
        raise UserError(f"{_first_line(e)}; see `mnist {task} --help`") from None


def preflight(task: str, args: list[str]) -> None:
    """Compose and check the config for every job `args` would run; raise UserError on the first
    mistake. Hydra's own informational flags (--help, --info, ...) are left to Hydra."""
    parsed = get_args_parser().parse_args(args)
    if any(getattr(parsed, flag, None) for flag in HYDRA_ONLY_FLAGS):
        return
    config_name = parsed.config_name or task
    try:
        jobs = _combinations(parsed.overrides, parsed.multirun)
    except OverrideParseException as e:
        raise UserError(f"cannot parse the override: {_first_line(e)}") from None
    with initialize_config_module(CONFIG_MODULE, version_base="1.3", job_name=task):
        for overrides in jobs:
            cfg = _compose(task, config_name, overrides)
            with open_dict(cfg):
                hydra_cfg = cfg.pop("hydra")
            CHECKS[task](cfg)
            if not parsed.multirun and task != "summary":
                _refuse_used_run_dir(OmegaConf.select(hydra_cfg, "run.dir"))


def _refuse_used_run_dir(run_dir: str | None) -> None:
    if run_dir and (Path(run_dir) / "metrics.json").exists():
        raise UserError(
            f"the run dir {run_dir} already holds a run; pick another hydra.run.dir (or wait a "
            "second for a new timestamp)"
        )
