"""`mnist report PATH`: the runs under PATH grouped by the config values that differ between them,
mean ± std over the replicates (runs that differ only in the seed), the best group by validation
accuracy marked; written as report.csv, report.json and, for one numeric parameter, report.png.
A run dir alone: that run's summary and curves.png. Reads and writes only inside PATH."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from mnistcli import artifacts, plots, tables
from mnistcli.artifacts import RunDir
from mnistcli.checks import check_report_names
from mnistcli.errors import UserError
from mnistcli.runs import (
    WHERE_AND_HOW,
    Run,
    existing_folder,
    find_runs,
    hashable,
    varying_keys,
)

SCORES = (("val", "accuracy"), ("val", "loss"), ("test", "accuracy"), ("test", "loss"))
# Not what a run trained: where and how it ran, and how its results are reported. Runs that
# differ only in these are replicates (a resumed run records resume=, and perhaps other threads).
NOT_SETTINGS = (*WHERE_AND_HOW, "report")


def references(setting: Any) -> dict[str, float]:
    """report.reference as {label: value}: a number, a list of numbers or a mapping."""
    if setting is None:
        return {}
    if isinstance(setting, Mapping):
        return {str(k): float(v) for k, v in setting.items()}
    if isinstance(setting, Sequence) and not isinstance(setting, str):
        return {f"reference {i + 1}": float(v) for i, v in enumerate(setting)}
    return {"reference": float(setting)}


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n - 1); None where there are too few values."""
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def group_runs(
    runs: list[Run], replicates: Sequence[str], group_by: Sequence[str] | None = None
) -> tuple[list[str], list[dict]]:
    """Group runs by `group_by` (config keys or config group names such as "experiment"); by
    default, by the config group choice that differs between them (experiment first: a sweep
    over experiment=a,b gives a row per preset, not one column per value the presets set), or
    where none does, by the varying config keys other than `replicates`. A group's runs differ
    in the replicates alone, so a choice or setting that still varies inside a group
    ("experiment=l2_sweep" made at several model.l2) is added to the keys. Returns those keys
    and one dict per group: params, runs, failed, interrupted, unfinished (no metrics.json yet)
    and of those running and stopped, {split}_{score}: {mean, std}, epochs, train_seconds,
    reference, command, best."""
    settings = [k for k in varying_keys(runs, skip=NOT_SETTINGS) if k not in replicates]
    choices = [k for k in _varying_choices(runs) if k not in replicates]
    params = list(group_by or choices[:1] or settings)
    candidates = [*choices, *settings]
    grouped = _grouped(runs, params)
    while split := next((k for k in candidates if k not in params and _varies(grouped, k)), None):
        params.append(split)
        grouped = _grouped(runs, params)
    groups = []
    for members in grouped.values():
        done = [r for r in members if r.completed]
        group: dict[str, Any] = {
            "params": {k: members[0].value(k) for k in params},
            "runs": len(members),
            "failed": sum(r.failed for r in members),
            "interrupted": sum(r.interrupted for r in members),
            "unfinished": sum(r.unfinished for r in members),
            "running": sum(r.running for r in members),
            "stopped": sum(r.stopped for r in members),
            "epochs": mean_std([r.metrics.get("epochs_completed") or 0 for r in done])[0],
            "train_seconds": mean_std(
                [r.metrics.get("timing", {}).get("train_seconds") or 0.0 for r in done]
            )[0],
            "reference": next((refs for r in members if (refs := _run_references(r))), {}),
            "command": command(members, replicates),
        }
        for split, name in SCORES:
            values = [v for r in done if (v := r.score(split, name)) is not None]
            mean, std = mean_std(values)
            group[f"{split}_{name}"] = {"mean": mean, "std": std}
        groups.append(group)
    groups.sort(key=lambda g: [_sortable(v) for v in g["params"].values()])
    scored = [g for g in groups if g["val_accuracy"]["mean"] is not None]
    best = max(scored, key=lambda g: g["val_accuracy"]["mean"], default=None)
    for g in groups:
        g["best"] = g is best
    return params, groups


def _varying_choices(runs: list[Run]) -> list[str]:
    """The config groups whose choice is not the same in every run, experiment first."""
    names = dict.fromkeys(k for run in runs for k in run.choices)
    varying = [k for k in names if len({hashable(r.choices.get(k)) for r in runs}) > 1]
    return sorted(varying, key=lambda k: k != "experiment")


def _grouped(runs: list[Run], params: Sequence[str]) -> dict[tuple, list[Run]]:
    grouped: dict[tuple, list[Run]] = {}
    for run in runs:
        grouped.setdefault(tuple(hashable(run.value(k)) for k in params), []).append(run)
    return grouped


def _varies(grouped: Mapping[tuple, list[Run]], key: str) -> bool:
    """True if `key` has more than one value inside some group."""
    return any(len({hashable(r.value(key)) for r in runs}) > 1 for runs in grouped.values())


def _run_references(run: Run) -> dict[str, float]:
    """The run's own report.reference (an experiment preset's published number)."""
    config = run.metrics.get("config") or {}
    return references((config.get("report") or {}).get("reference"))


def _numeric_first(value: str) -> tuple:
    """_sortable for an override's value as typed: "10" sorts as the number 10."""
    try:
        return _sortable(float(value))
    except ValueError:
        return _sortable(value)


def command(runs: Sequence[Run], replicates: Sequence[str]) -> str:
    """The command line that makes these runs: the overrides every one of them was started with
    (in the first run's order), then each replicate key with the values gathered from all of
    them, sorted (a multirun when there are several)."""
    gathered: dict[str, set[str]] = {k: set() for k in replicates}
    for run in runs:
        for override in run.overrides:
            key, _, value = override.partition("=")
            if key in gathered:
                gathered[key].add(value)
    common = [o for o in (runs[0].overrides if runs else []) if all(o in r.overrides for r in runs)]
    base = [o for o in common if o.partition("=")[0] not in gathered]
    swept = [f"{k}={','.join(sorted(v, key=_numeric_first))}" for k, v in gathered.items() if v]
    multi = ["-m"] if any(len(v) > 1 for v in gathered.values()) else []
    return " ".join(["mnist train", *multi, *base, *swept])


def _sortable(value: Any) -> tuple:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value, "")
    return (1, 0, str(value))


def _csv_rows(groups: list[dict]) -> list[dict[str, Any]]:
    rows = []
    for g in groups:
        row = {
            **g["params"],
            "runs": g["runs"],
            "failed": g["failed"],
            "interrupted": g["interrupted"],
            "unfinished": g["unfinished"],
            "running": g["running"],
            "stopped": g["stopped"],
        }
        for split, name in SCORES:
            row[f"{split}_{name}_mean"] = g[f"{split}_{name}"]["mean"]
            row[f"{split}_{name}_std"] = g[f"{split}_{name}"]["std"]
        rows.append({**row, "best": g["best"]})
    return rows


def _plot(root: Path, param: str, groups: list[dict], refs: dict[str, float]) -> Path | None:
    """report.png when the one varying parameter is numeric; else None."""
    xs = [g["params"][param] for g in groups]
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in xs):
        return None
    series = {}
    for split in ("val", "test"):
        points = [(x, g[f"{split}_accuracy"]) for x, g in zip(xs, groups, strict=True)]
        points = [(x, s) for x, s in points if s["mean"] is not None]
        series[f"{split} accuracy"] = (
            [x for x, _ in points],
            [s["mean"] for _, s in points],
            [s["std"] for _, s in points],
        )
    n = max(g["runs"] for g in groups)
    title = f"accuracy against {param} (mean ± std over up to {n} runs per value)"
    path = root / "report.png"
    artifacts.write_bytes(path, plots.sweep(param, series, refs, title))
    return path


def report_runs(
    root: Path, settings: Mapping[str, Any], console: Console, runs: list[Run] | None = None
) -> dict[str, Any]:
    """Group the runs under `root` (found there unless given), print the table, write
    report.csv/json (and png)."""
    runs = find_runs(root) if runs is None else runs
    if not runs:
        raise UserError(
            f"no training runs under {root}; give a run dir or a sweep folder "
            "(one that holds N/metrics.json)"
        )
    replicates = list(settings.get("replicates") or [])
    known = {k for run in runs for k in (*run.config, *run.choices)}
    check_report_names(settings.get("group_by"), replicates, known, f"the runs under {root}")
    params, groups = group_runs(runs, replicates, settings.get("group_by"))
    refs = references(settings.get("reference"))
    png = _plot(root, params[0], groups, refs) if len(params) == 1 else None
    result = {
        "path": str(root),
        "runs": len(runs),
        "failed": sum(r.failed for r in runs),
        "interrupted": sum(r.interrupted for r in runs),
        "unfinished": sum(r.unfinished for r in runs),
        "running": sum(r.running for r in runs),
        "stopped": sum(r.stopped for r in runs),
        "resumable": [str(r.path) for r in runs if r.resumable],
        "params": params,
        "replicates": replicates,
        "groups": groups,
        "references": refs,
        "png": str(png) if png else None,
    }
    artifacts.write_csv(root / "report.csv", _csv_rows(groups))
    artifacts.write_text(root / "report.json", json.dumps(result, indent=2) + "\n")
    artifacts.write_text(root / "report.md", markdown(result))
    tables.report_table(console, result)
    return result


def _percent(score: dict[str, float | None]) -> str:
    if score["mean"] is None:
        return "-"
    std = f" ± {100 * score['std']:.2f}" if score["std"] is not None else ""
    return f"{100 * score['mean']:.2f}{std}%"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def markdown(result: Mapping[str, Any]) -> str:
    """report.md: one row per group: its parameters, references, test and val accuracy
    (mean ± std), runs, epochs and training time (means over the finished runs), the command."""
    header = [
        *result["params"], "reference", "test accuracy", "val accuracy", "runs", "epochs",
        "training time", "command",
    ]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for g in result["groups"]:
        refs = ", ".join(f"{k} {100 * v:.2f}%" for k, v in g["reference"].items()) or "-"
        epochs = "-" if g["epochs"] is None else f"{g['epochs']:.3g}"
        notes = [f"{g[k]} {k}" for k in ("failed", "interrupted", "running", "stopped") if g[k]]
        runs = f"{g['runs']}" + (f" ({', '.join(notes)})" if notes else "")
        cells = [
            *(str(v) for v in g["params"].values()), refs, _percent(g["test_accuracy"]),
            _percent(g["val_accuracy"]), runs, epochs, _duration(g["train_seconds"]),
            f"`{g['command']}`",
        ]  # fmt: skip
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    replicates = ", ".join(result["replicates"]) or "nothing"
    return (
        f"{result['runs']} runs under {result['path']}, grouped by "
        f"{', '.join(result['params']) or 'nothing'}; mean ± std over runs that differ only in "
        f"{replicates}; epochs and training time (inside fit) are means over the finished runs.\n\n"
        + "\n".join(lines)
        + "\n"
    )


def save_curves(run: RunDir, metrics: Mapping[str, Any]) -> Path | None:
    """Write a train run's curves.png from its metrics (history, best epoch); its path, or None
    when no epoch has finished."""
    history = metrics.get("history") or []
    if not history:
        return None
    title = f"{metrics.get('model', '?')}, seed {metrics.get('seed')} ({metrics.get('status')})"
    artifacts.write_bytes(run.curves_png, plots.curves(history, metrics.get("best_epoch"), title))
    return run.curves_png


def report_run(run_dir: Path, console: Console) -> dict[str, Any]:
    """One run: its summary table and curves.png."""
    (run,) = find_runs(run_dir) or [None]
    if run is None or not run.metrics:
        raise UserError(f"{run_dir} has no metrics.json of a train run; give a finished run dir")
    if run.running:  # resumed: its metrics.json is its record up to the interruption
        before = {**run.metrics, "status": f"running; before it was resumed: {run.status}"}
        tables.train_summary(console, before, str(run_dir))
        console.print(
            f"{run_dir} is being trained right now (resumed): the table is its record from before; "
            "its curves.png is the trainer's to write"
        )
        return {"path": str(run_dir), "status": "running", "curves": None}
    tables.train_summary(console, run.metrics, str(run_dir))
    curves = save_curves(RunDir(run_dir), run.metrics)
    if curves:
        tables.written(curves)
    return {"path": str(run_dir), "status": run.status, "curves": curves and str(curves)}


def report_task(cfg: Any, run_dir: str) -> dict[str, Any]:
    """`mnist report`'s task: writes into cfg.path, not a run dir of its own."""
    return report(cfg.path, cfg.report)


def report(path: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """`mnist report PATH`: a run dir's summary, or the grouped report of the runs under PATH."""
    root = existing_folder(path)
    console = Console()
    if (root / "metrics.json").is_file():
        return report_run(root, console)
    return report_runs(root, settings, console)
