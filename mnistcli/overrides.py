"""Compose what the user typed (every combination of a sweep) before Hydra runs, so that a bad
override or value ends in one line and exit code 2 instead of Hydra's multi-line report.

Imports Hydra and OmegaConf only; never TensorFlow."""

from __future__ import annotations

import difflib
import itertools
import os
import re
import shutil
import sys
from importlib import resources
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import (
    ConfigCompositionException,
    HydraException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from mnistcli.checks import CHECKS, CONFIG_MODULE, check_writable, shipped, whole
from mnistcli.errors import UserError
from mnistcli.resume import check_same_config

EXCLUSIVE_FLAGS = ("run", "multirun", "cfg", "info", "shell_completion")
RUN_DIR_TASKS = ("train", "eval", "predict", "show", "export")  # each run gets a dir of its own
HYDRA_ONLY_FLAGS = ("help", "hydra_help", "info", "shell_completion", "version")
# Sections handed to a Keras class as keyword arguments (train.py), so a key added there reaches
# it (+optimizer.clipnorm=1.0) and Keras refuses one it does not take; a model's keys are
# checked by checks.py, Hydra's by Hydra. A key added anywhere else would be read by nothing.
PASSED_ON = ("optimizer.", "callbacks.", "model.", "hydra.")
USED = (".hydra/config.yaml", "metrics.json")  # in a run dir: a run was started there


def quoted(value: str) -> str:
    """`value` as a quoted Hydra override value (a path with spaces, colons or quotes)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    return lines[0].rstrip(".") if lines else type(e).__name__


def _combinations(overrides: list[str], multirun: bool) -> list[list[str]]:
    if not multirun:
        return [overrides]
    parsed = _parsed(overrides)
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
        unknown = re.match(r"Could not override '([^']+)'", str(e))
        if unknown and "not in struct" in cause:
            key = unknown[1]
            raise UserError(
                _no_such_key(task, _without(config_name, overrides, key), key)
            ) from None
        ambiguous = re.match(r"Ambiguous value for argument '(([^=']+)=([^']*))'", str(e))
        if ambiguous:
            arg, key, value = ambiguous.groups()
            raise UserError(
                f"{arg}: a comma sweeps, which needs -m (mnist {task} -m {arg}); or quote it as "
                f"one value ({key}='{value}'), or bracket it as a list ({key}=[{value}])"
            ) from None
        twice = re.match(r"Multiple values for ([\w.]*\w)", str(e))
        if twice:
            raise UserError(
                f"{twice[1]} is chosen already; drop the + to choose another ({twice[1]}=NAME)"
            ) from None
        raise UserError(
            f"{_first_line(e)}{cause}; see `mnist {task} --help` for the groups and keys"
        ) from None
    except OverrideParseException as e:
        raise UserError(_unparsable(e)) from None
    except (HydraException, OmegaConfBaseException) as e:
        raise UserError(f"{_first_line(e)}; see `mnist {task} --help`") from None
    except ValueError:  # Hydra's defaults list refuses GROUP=null (or a number) this way
        bad = [
            o for o in _parsed(overrides) if not isinstance(o.value(), str | list) and _is_group(o)
        ]
        if not bad:
            raise
        raise UserError(_no_option(config_name, bad[0].key_or_group, bad[0].value())) from None


def _unparsable(e: OverrideParseException) -> str:
    return (
        f"cannot parse the override: {_first_line(e)}; quote a value that holds =, commas, "
        "brackets or quotes, e.g. ckpt='runs/a=b'"
    )


def _typed(value: object) -> str:
    """An override's value as typed: null for None."""
    return "null" if value is None else str(value)


def _primary(config_name: str) -> dict:
    """The task's own config file (conf/NAME.yaml) as written: its defaults list, its sections."""
    return OmegaConf.to_container(shipped(config_name))  # ??? values stay as they are


def _parsed(overrides: list[str]) -> list[Override]:
    return OverridesParser.create().parse_overrides(overrides)


def _no_option(config_name: str, group: str, value: object = None) -> str:
    """The error line for GROUP=null, or GROUP=3 (in the config `config_name`, its task's): a
    group takes an option's name, some a list of them."""
    folder = resources.files(CONFIG_MODULE) / group
    if not folder.is_dir():  # one of Hydra's own groups, e.g. hydra/launcher
        return f"{group}={_typed(value)} names no option of {group}; pass one (`mnist {config_name} --help`)"
    options = sorted(f.name[: -len(".yaml")] for f in folder.iterdir() if f.name.endswith(".yaml"))
    defaults = _primary(config_name)["defaults"]
    default = next((d[group] for d in defaults if isinstance(d, dict) and group in d), "")
    if default == "":
        return f"mnist {config_name} has no config group {group}; see `mnist {config_name} --help`"
    if isinstance(default, list):
        fix = f"a list of them, {group}=[{options[0]}] (or {group}=[] for none)"
    else:
        fix = "one of them" + (f", or leave {group}= out for none" if default is None else "")
    return f"{group}={_typed(value)} names no {group}; its options are {', '.join(options)}: pass {fix}"


def _dotted_keys(node: object, prefix: str = "") -> list[str]:
    if not isinstance(node, dict):
        return []
    keys = []
    for k, v in node.items():
        if prefix or k != "hydra":
            keys += [f"{prefix}{k}", *_dotted_keys(v, f"{prefix}{k}.")]
    return keys


def _no_such_key(task: str, cfg: DictConfig | None, key: str, added: str = "") -> str:
    """The error line for `key`, which `cfg` (the config without it) does not have, with the
    nearest key it has; `added`: the +override that tried to add it."""
    keys = _dotted_keys(OmegaConf.to_container(cfg, resolve=False)) if cfg is not None else []
    section, leaf = key.rpartition(".")[::2]
    by_leaf: dict[str, list[str]] = {}
    for k in keys:
        by_leaf.setdefault(k.rpartition(".")[2], []).append(k)
    # a near name in the same section (trainer.epoch → trainer.epochs), else the same or a near
    # name in another one (trainer.lr → optimizer.lr, epochs → trainer.epochs)
    siblings = _close(leaf, [k for k in keys if k.rpartition(".")[0] == section])
    near = [f"{section}.{n}" if section else n for n in siblings]
    near = near or [by_leaf[name][0] for name in _close(leaf, list(by_leaf))]
    what = f", so {added} would do nothing" if added else ""
    hint = f"; did you mean {near[0]}?" if near else ""
    return f"mnist {task} has no key {key}{what}{hint} (`mnist {task} --cfg job` lists the keys)"


def _close(name: str, keys: list[str]) -> list[str]:
    """The last parts of `keys` nearest `name`, best first (difflib's ratio >= 0.75)."""
    return difflib.get_close_matches(name, [k.rpartition(".")[2] for k in keys], n=1, cutoff=0.75)


def _without(config_name: str, overrides: list[str], key: str) -> DictConfig | None:
    """The config composed from `overrides` less those that set `key` (None if that fails)."""
    parsed = _parsed(overrides)
    rest = [o.input_line for o in parsed if o.key_or_group != key]
    try:
        return compose(config_name, overrides=rest, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException):
        return None


def _is_group(o: Override) -> bool:
    group = o.key_or_group
    return (
        o.package is not None or "/" in group or (resources.files(CONFIG_MODULE) / group).is_dir()
    )


def _check_sections(task: str, config_name: str, cfg: DictConfig) -> None:
    """A section of keys in the task's config (trainer, data, runtime, ...) that an override
    replaced with one value (trainer=fast), which nothing could read."""
    for key, value in _primary(config_name).items():
        if isinstance(value, dict) and key != "hydra" and not isinstance(cfg.get(key), DictConfig):
            raise UserError(
                f"{key}={_typed(cfg.get(key))}: {key} is a section of keys, not a value or a config "
                f"group; set one of its keys, e.g. {key}.{next(iter(value))}=... (`mnist {task} "
                "--cfg job` lists them)"
            )


def _check_added_keys(task: str, config_name: str, overrides: list[str]) -> None:
    """A `+key=value` that adds a key nothing reads (a typo such as +trainer.epoch=3 would
    otherwise be ignored in silence) is refused, naming the nearest key there is."""
    parsed = _parsed(overrides)
    added = [
        o for o in parsed
        if (o.is_add() or o.is_force_add()) and not _is_group(o)
        and not o.key_or_group.startswith(PASSED_ON)
    ]  # fmt: skip
    if not added:
        return
    base = _compose(task, config_name, [o.input_line for o in parsed if o not in added])
    for o in added:
        if OmegaConf.select(base, o.key_or_group, default=_ABSENT) is _ABSENT:
            raise UserError(_no_such_key(task, base, o.key_or_group, o.input_line))


def _config_sweep(hydra_cfg: DictConfig) -> dict[str, str]:
    """The sweep a config itself declares (hydra.sweeper.params), as {key: value string}."""
    params = OmegaConf.select(hydra_cfg, "sweeper.params")
    return {str(k): str(v) for k, v in params.items()} if params else {}


_ABSENT = object()


def _check_sweep_keys(cfg: DictConfig, keys: list[str]) -> None:
    """Each key a sweeper will set (unless it adds or deletes it: +key, ~key) is in the config."""
    for key in keys:
        if (
            not key.startswith(("+", "~"))
            and OmegaConf.select(cfg, key, default=_ABSENT) is _ABSENT
        ):
            raise UserError(
                f"the sweep sets {key}, which this config does not have (e.g. a model without "
                "that knob); pick options that have it, see `mnist train --cfg job ...`"
            )


def preflight(task: str, args: list[str]) -> list[str]:
    """Compose and check the config for every job `args` would run, including a sweep that the
    config itself declares (hydra.sweeper.params); raise UserError on the first mistake. Return
    the arguments to run: `args`, with the output folder pinned (fresh_folder) when it is the
    config's timestamped default. Hydra's own informational flags (--help, --info, ...) are left
    to Hydra."""
    parsed = get_args_parser().parse_args(args)
    modes = [flag for flag in EXCLUSIVE_FLAGS if getattr(parsed, flag, None)]
    if len(modes) > 1:
        raise UserError(
            f"--{modes[0]} and --{modes[1]} cannot be combined; give one of them "
            "(e.g. drop -m to print the config with --cfg job)"
        )
    if any(getattr(parsed, flag, None) for flag in HYDRA_ONLY_FLAGS):
        return args
    config_name = parsed.config_name or task
    key = "hydra.sweep.dir" if parsed.multirun else "hydra.run.dir"
    given = any(o.startswith((f"{key}=", f"+{key}=", f"++{key}=")) for o in parsed.overrides)
    default_dir = claim = None
    try:
        jobs = _combinations(parsed.overrides, parsed.multirun)
    except OverrideParseException as e:
        raise UserError(_unparsable(e)) from None
    with initialize_config_module(CONFIG_MODULE, version_base="1.3", job_name=task):
        for number, overrides in enumerate(jobs):
            try:
                cfg = _compose(task, config_name, overrides)
                _check_added_keys(task, config_name, overrides)
                _check_sections(task, config_name, cfg)
                with open_dict(cfg):
                    hydra_cfg = cfg.pop("hydra")
                if not (parsed.cfg and OmegaConf.missing_keys(cfg)):  # --cfg shows ckpt: ???
                    CHECKS[task](cfg)
            except UserError as e:
                if len(jobs) < 2:
                    raise
                # which job: `-m model=ffnn,lenet5 model.hidden=[64]` is wrong for lenet5 only
                raise UserError(f"in the sweep's job {' '.join(overrides)}: {e}") from None
            if parsed.multirun:
                if number == 0:  # what every job shares
                    _check_sweep(hydra_cfg, given)
                    if given and _basic_sweeper(hydra_cfg):  # Optuna's writes no multirun.yaml
                        claim = OmegaConf.select(hydra_cfg, "sweep.dir")
                _check_sweep_job(task, config_name, overrides, cfg, hydra_cfg)
            else:
                _check_single_run(task, cfg, hydra_cfg, bool(parsed.cfg), given)
                if given and task in RUN_DIR_TASKS and not cfg.get("resume"):
                    claim = OmegaConf.select(hydra_cfg, "run.dir")
            if number == 0 and not given and not cfg.get("resume"):
                default_dir = OmegaConf.select(
                    hydra_cfg, "sweep.dir" if parsed.multirun else "run.dir"
                )
    if parsed.cfg:
        return args
    if claim:
        _claim(str(claim), parsed.multirun)
    if default_dir is None or (task not in RUN_DIR_TASKS and not parsed.multirun):
        return args
    return [*args, f"{key}={quoted(fresh_folder(str(default_dir)))}"]


def fresh_folder(path: str) -> str:
    """`path` made now, or if it exists already, `path`-2, -3, ...: two runs started in the same
    second (two terminals, a shell loop with `&`) would get the same timestamped folder from the
    config and write over each other's files. mkdir is atomic: one process gets each name."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        candidate = path if n == 1 else f"{path}-{n}"
        try:
            os.mkdir(candidate)
            return candidate
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def _claim(folder: str, sweep: bool) -> None:
    """Make the new run dir or sweep folder the user named, with the first thing Hydra writes
    there (a run's .hydra/, a sweep's multirun.yaml), now: both are made atomically, so of two
    commands given the same folder at once one gets it, and the other is refused here instead of
    writing its config over the first's."""
    key, first = ("hydra.sweep.dir", "multirun.yaml") if sweep else ("hydra.run.dir", ".hydra")
    Path(folder).mkdir(parents=True, exist_ok=True)
    try:
        if sweep:
            os.close(os.open(Path(folder) / first, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        else:
            os.mkdir(Path(folder) / first)
    except FileExistsError:
        raise UserError(
            f"another mnist command is starting in {folder} right now (or one stopped while "
            f"starting: then remove {Path(folder) / first}); pick another {key}"
        ) from None


def _check_single_run(
    task: str, cfg: DictConfig, hydra_cfg: DictConfig, printing_config: bool, given: bool
) -> None:
    declared = _config_sweep(hydra_cfg)
    if declared and not printing_config:
        print(
            f"mnist: note: this config declares a sweep over {', '.join(declared)}; "
            "without -m only one job runs",
            file=sys.stderr,
        )
    if cfg.get("resume"):
        check_same_config(cfg, str(cfg.resume))
    elif task in RUN_DIR_TASKS:
        _check_run_dir(OmegaConf.select(hydra_cfg, "run.dir"), given)


def _basic_sweeper(hydra_cfg: DictConfig) -> bool:
    """Hydra's own sweeper (a grid of the typed values), not one that draws them (Optuna)."""
    return "BasicSweeper" in str(OmegaConf.select(hydra_cfg, "sweeper._target_"))


def _check_sweep_job(
    task: str, config_name: str, overrides: list[str], cfg: DictConfig, hydra_cfg: DictConfig
) -> None:
    """One job of the typed sweep, and the jobs a sweep the config declares adds to it."""
    declared = _config_sweep(hydra_cfg)
    if not _basic_sweeper(hydra_cfg):
        _check_sweep_keys(cfg, list(declared))  # e.g. Optuna's: values are drawn later
        return
    typed = {o.split("=", 1)[0] for o in overrides}
    extra = [f"{k}={v}" for k, v in declared.items() if k not in typed]
    for combo in _combinations(extra, multirun=True) if extra else []:
        job_cfg = _compose(task, config_name, [*overrides, *combo])
        with open_dict(job_cfg):
            job_cfg.pop("hydra")
        CHECKS[task](job_cfg)


def _check_sweep(hydra_cfg: DictConfig, given: bool) -> None:
    """What the whole sweep shares: its folder (new, if the user `given` it, and writable),
    launcher and sweeper."""
    sweep_dir = str(OmegaConf.select(hydra_cfg, "sweep.dir"))
    used = (Path(sweep_dir) / "multirun.yaml").exists() or list(
        Path(sweep_dir).glob("*/" + USED[0])
    )
    if given and used:
        raise UserError(
            f"the sweep folder {sweep_dir} already holds a sweep; pick another hydra.sweep.dir; "
            f"resume={sweep_dir} names a job it left unfinished"
        )
    if given:
        _check_no_other_files(sweep_dir, "hydra.sweep.dir")
    check_writable(sweep_dir, "hydra.sweep.dir")
    _check_launcher(hydra_cfg.launcher)
    _check_optuna(hydra_cfg.sweeper)


def _check_launcher(launcher: DictConfig) -> None:
    """What the launcher plugins would only find out once the sweep has started."""
    target = str(launcher.get("_target_"))
    if target.endswith(".SlurmLauncher") and shutil.which("srun") is None:
        raise UserError(
            "hydra/launcher=submitit_slurm submits jobs to SLURM, which this machine does not have "
            "(no srun); run it on the cluster's login node, or use hydra/launcher=joblib here"
        )
    if target.endswith(".JoblibLauncher") and launcher.get("n_jobs") == 0:
        raise UserError(
            "hydra.launcher.n_jobs=0 runs no jobs; give how many run at once, e.g. "
            "hydra.launcher.n_jobs=2 (-1: one per core, joblib's default)"
        )


def _check_optuna(sweeper: DictConfig) -> None:
    """Optuna sweeper settings it would only refuse once the study has begun."""
    if not str(sweeper.get("_target_")).endswith(".OptunaSweeper"):
        return
    settings = OmegaConf.create({"hydra": {"sweeper": OmegaConf.to_container(sweeper)}})
    whole(settings, "hydra.sweeper.n_trials", 1, "20")
    whole(settings, "hydra.sweeper.n_jobs", 1, "2")
    if sweeper.get("direction") != "maximize":
        raise UserError(
            f"hydra.sweeper.direction must be maximize (the objective is the validation "
            f"accuracy), got {sweeper.get('direction')!r}; leave it as hparams_search=optuna sets it"
        )


def _check_run_dir(run_dir: str | None, given: bool) -> None:
    """A single run's dir: writable, and if the user `given` it, not one that holds a run
    already (the config's timestamped default is made fresh: fresh_folder)."""
    if given and run_dir and any((Path(run_dir) / name).exists() for name in USED):
        raise UserError(f"the run dir {run_dir} already holds a run; pick another hydra.run.dir")
    if given and run_dir:
        _check_no_other_files(run_dir, "hydra.run.dir")
    if run_dir:
        check_writable(run_dir, "hydra.run.dir")


def _check_no_other_files(folder: str, key: str) -> None:
    """A folder the user named for a run or sweep is new or empty (hidden files aside): its
    files (train.log, checkpoints/, curves.png, summary.csv, ...) would go in among, or over,
    whatever is there, e.g. with hydra.run.dir=. in a project's folder."""
    path = Path(folder)
    there = (
        sorted(p.name for p in path.iterdir() if not p.name.startswith("."))
        if path.is_dir()
        else []
    )
    if there:
        shown = ", ".join(there[:3]) + (f" and {len(there) - 3} more" if len(there) > 3 else "")
        raise UserError(
            f"{key}={folder} already holds other files ({shown}), which the run's files would "
            f"mix with or write over; name a new or empty folder"
        )
