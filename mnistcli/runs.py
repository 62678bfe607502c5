"""The training runs under a folder: find each run dir without leaving the folder, read what it
recorded, and tell which config values differ between runs."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnistcli.artifacts import being_trained
from mnistcli.errors import UserError

MISSING = "-"  # a key one run's config does not have
# Config keys that say where and how a run ran, not what it trained: a resumption may change them
# (resume.py), and runs that differ only in them are the same run made twice.
WHERE_AND_HOW = ("resume", "device", "runtime")


@dataclass
class Run:
    """One train run: its dir, its metrics.json ({} if it wrote none), its flat config, Hydra's
    choice per config group ({"experiment": "lenet5", "model": "lenet5", ...}) and the command
    line overrides it was started with."""

    path: Path
    metrics: dict[str, Any]
    config: dict[str, Any]
    choices: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    running: bool = False  # a process trains in it right now (holds its dir): new or resumed

    @property
    def status(self) -> str:
        return self.metrics.get("status") or "no metrics"

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def unfinished(self) -> bool:
        """Still running, or stopped: it has not written its metrics.json (yet)."""
        return not self.metrics

    @property
    def stopped(self) -> bool:
        """Unfinished and no process trains it: killed (SIGKILL, out of memory, a lost machine)
        or ended by an error before it could record one; `mnist train resume=` continues it."""
        return self.unfinished and not self.running

    @property
    def interrupted(self) -> bool:
        """Stopped by Ctrl-C or SIGTERM, after recording so, and not resumed since: `mnist train
        resume=` continues it."""
        return self.status == "interrupted" and not self.running

    @property
    def failed(self) -> bool:
        """It ended with an error (a NaN loss, a broken file, ...), recorded in its metrics.json."""
        return self.status == "failed"

    @property
    def resumable(self) -> bool:
        """Interrupted, or stopped without a record: `mnist train resume=` continues it."""
        return self.interrupted or self.stopped

    def value(self, key: str) -> Any:
        """A config value ("model.l2") or, failing that, a config group's choice ("experiment")."""
        return self.config.get(key, self.choices.get(key, MISSING))

    def score(self, split: str, name: str) -> float | None:
        """metrics[split][name], e.g. score("val", "accuracy"); None when not recorded."""
        return (self.metrics.get(split) or {}).get(name)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"model": {"l2": 0.1}} -> {"model.l2": 0.1}; lists stay whole values."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _inside(root: Path, path: Path) -> bool:
    """True if `path`, with every link resolved, lies inside `root` (no escape through links)."""
    return path.resolve().is_relative_to(root.resolve())


def _read_json(root: Path, path: Path) -> dict[str, Any]:
    if not path.is_file() or not _inside(root, path):
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_config(root: Path, run_dir: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    if isinstance(metrics.get("config"), dict):
        return flatten(metrics["config"])
    config = _read_yaml(root, run_dir / ".hydra" / "config.yaml")
    return flatten(config) if isinstance(config, dict) else {}


def _read_yaml(root: Path, path: Path) -> Any:
    """A YAML file Hydra wrote (interpolations left as written); None if missing or damaged."""
    if not path.is_file() or not _inside(root, path):
        return None
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception:  # a damaged file: the run still counts, without these values
        return None


def _read_hydra(root: Path, run_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """Hydra's record of the run: the config group choices and the task's overrides."""
    hydra = _read_yaml(root, run_dir / ".hydra" / "hydra.yaml")
    choices = ((hydra or {}).get("hydra") or {}).get("runtime", {}).get("choices") or {}
    overrides = _read_yaml(root, run_dir / ".hydra" / "overrides.yaml")
    choices = {k: v for k, v in choices.items() if not k.startswith("hydra/")}
    return choices, [str(o) for o in overrides] if isinstance(overrides, list) else []


def is_run_dir(path: Path) -> bool:
    return (path / "metrics.json").is_file() or (path / ".hydra" / "config.yaml").is_file()


def find_runs(root: str | Path) -> list[Run]:
    """Every train run dir under `root` (itself included), in path order. Walks without following
    links, skips hidden folders (.hydra, .submitit) and never reads a file outside `root`."""
    root = Path(root)
    runs = []
    for here, dirs, _ in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        run_dir = Path(here)
        if not is_run_dir(run_dir):
            continue
        dirs.clear()  # a run's own subfolders (checkpoints) hold no runs
        metrics = _read_json(root, run_dir / "metrics.json")
        config = _read_config(root, run_dir, metrics)
        if metrics.get("task", "train") == "train" and (metrics or "trainer.epochs" in config):
            # a resumed run keeps its 'interrupted' metrics.json until it ends
            running = metrics.get("status") != "completed" and being_trained(run_dir)
            runs.append(Run(run_dir, metrics, config, *_read_hydra(root, run_dir), running))
    return sorted(runs, key=lambda r: _natural(r.path.relative_to(root)))


def _natural(path: Path) -> tuple:
    """Sort key: multirun job dirs 2 before 10."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in path.parts)


def varying_keys(runs: list[Run], skip: Sequence[str] = ()) -> list[str]:
    """The config keys whose values are not the same in every run, in config order, but for
    those under the top-level names in `skip` ("runtime" skips runtime.threads)."""
    keys: dict[str, None] = {}
    for run in runs:
        keys.update(dict.fromkeys(run.config))
    return [
        k
        for k in keys
        if k.split(".")[0] not in skip
        and len({hashable(r.config.get(k, MISSING)) for r in runs}) > 1
    ]


def hashable(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, list | dict) else value


def existing_folder(path: str) -> Path:
    """A folder the user named, which must exist."""
    p = Path(path).expanduser()
    if not p.is_dir():
        what = "is a file" if p.exists() else "does not exist"
        raise UserError(f"{path} {what}; give a run dir or a sweep folder, e.g. outputs/multirun")
    return p
