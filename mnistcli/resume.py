"""`mnist train resume=RUN_DIR`: continue a killed or interrupted run in its own dir, with its own
config, from its last finished epoch. Here: turn that into the arguments that re-run it and check
them; the training side (checkpoint, optimizer, callbacks' state) is train.py's and callbacks.py's.
Imports no TensorFlow."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mnistcli.artifacts import check_unclaimed
from mnistcli.errors import UserError
from mnistcli.runs import WHERE_AND_HOW

# What a resumed run may change: where and how it runs, never what it trains.
ALLOWED = ("device=", "runtime.", "hydra.verbose=")
DROPPED = ("resume=", "hydra.run.dir=")  # set anew for the resumed run


class AlreadyCompleted(Exception):
    """The run finished; resuming it does nothing."""


def resume_arguments(args: list[str]) -> list[str]:
    """`args` with resume=RUN_DIR replaced by everything that re-runs RUN_DIR: its recorded
    overrides, the allowed new ones, hydra.run.dir=RUN_DIR and resume=RUN_DIR. Raises UserError
    for a bad run dir or an override that would change the run, AlreadyCompleted for a run that
    has finished. `args` without resume= come back as they are."""
    given = [a for a in args if a.startswith("resume=")]
    if not given:
        return args
    run_dir = Path(given[-1].split("=", 1)[1].strip("'\""))
    if any(a in ("-m", "--multirun") for a in args):
        raise UserError("resume continues one run; drop -m")
    recorded = run_dir / ".hydra" / "overrides.yaml"
    if not recorded.is_file():
        raise UserError(_not_a_run(run_dir))
    flags, changes = [], []
    for arg in args:
        if arg.startswith("-"):
            flags.append(arg)
        elif arg.startswith(ALLOWED):
            changes.append(arg)
        elif not arg.startswith("resume="):
            raise UserError(
                f"resume continues {run_dir} with its own config; drop {arg} (only device=... "
                "and runtime.* may change), or start a new run to change it"
            )
    status = _status(run_dir)
    if status == "completed":
        raise AlreadyCompleted(str(run_dir))
    if status == "failed":
        raise UserError(f"{run_dir} failed (see its metrics.json); start a new run instead")
    check_unclaimed(run_dir)
    from mnistcli.overrides import quoted  # here: overrides imports this module

    original = [o for o in OmegaConf.load(recorded) if not str(o).startswith(DROPPED)]
    path = quoted(str(run_dir))
    return [*flags, *map(str, original), *changes, f"hydra.run.dir={path}", f"resume={path}"]


def _not_a_run(path: Path) -> str:
    """Why `path` cannot be resumed, and what to pass instead: a sweep's job dir, say (a sweep
    whose jobs all completed raises AlreadyCompleted)."""
    if not path.exists():
        return f"resume={path}: no such run dir; pass resume=outputs/DATE/TIME (a train run's dir)"
    from mnistcli.runs import find_runs  # here: runs imports artifacts, as this module does

    jobs = [job for job in find_runs(path) if job.path != path]
    if jobs:
        if all(job.completed for job in jobs):
            raise AlreadyCompleted(f"{path} (a sweep: all {len(jobs)} jobs)")
        resumable = [job.path for job in jobs if job.resumable]
        if resumable:
            more = len(resumable) - 1
            also = f" ({more} more job(s) to resume after it)" if more else ""
            return (
                f"{path} is a sweep's folder; resume one job at a time: resume={resumable[0]}{also}"
            )
        running = sum(job.running for job in jobs)
        failed = [job.path for job in jobs if job.failed]
        if running:
            also = f", and {len(failed)} failed" if failed else ""
            return (
                f"{path} is a sweep's folder whose unfinished jobs are being trained right now"
                f"{also}; let them finish"
            )
        return (
            f"{path} is a sweep's folder whose unfinished jobs failed ({failed[0]} first; see "
            "their metrics.json); start new runs for them"
        )
    return (
        f"{path} is not the run dir of a `mnist train` run (no .hydra/overrides.yaml); "
        "pass resume=outputs/DATE/TIME"
    )


def _status(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "metrics.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def check_same_config(cfg: DictConfig, run_dir: str) -> None:
    """The config composed for a resumption must be the one the run was started with (the
    shipped configs may have changed since)."""
    saved = OmegaConf.load(Path(run_dir) / ".hydra" / "config.yaml")
    now = OmegaConf.to_container(cfg, resolve=True)
    then = OmegaConf.to_container(saved, resolve=True)
    for key in WHERE_AND_HOW:  # may differ between the run and its resumption
        now.pop(key, None)
        then.pop(key, None)
    if now != then:
        differ = sorted(k for k in set(now) | set(then) if now.get(k) != then.get(k))
        raise UserError(
            f"{run_dir} was started with another config ({', '.join(differ)} differ; have the "
            "configs changed since?); start a new run"
        )
