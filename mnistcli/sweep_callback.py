"""The Hydra callback around a `mnist train -m` sweep. Before the first job of a parallel one:
Ctrl-C handling that lets its workers record that they stopped. After the last job: summary.csv
and summary.json (one row per job), the grouped report (mnist report), and exit code 1 when any
job failed."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from mnistcli import artifacts
from mnistcli.runs import Run, find_runs, varying_keys
from mnistcli.signals import end_sweep_on_ctrl_c

SWEEP_FAILED_EXIT = 1
LOKY_TRACKER_WARNINGS = "ignore::UserWarning:joblib.externals.loky.backend.resource_tracker"


def summary_rows(root: Path, runs: list[Run]) -> list[dict[str, Any]]:
    """One row per job: its dir, the config values that vary, status, scores, epochs, seconds."""
    keys = varying_keys(runs)
    rows = []
    for run in runs:
        m = run.metrics
        row = {"job": str(run.path.relative_to(root))}
        row.update({k: run.config.get(k) for k in keys})
        row.update(
            status=run.status,
            val_accuracy=run.score("val", "accuracy"),
            val_loss=run.score("val", "loss"),
            test_accuracy=run.score("test", "accuracy"),
            test_loss=run.score("test", "loss"),
            epochs=m.get("epochs_completed"),
            seconds=(m.get("timing") or {}).get("train_seconds"),
            error=m.get("error", ""),
        )
        rows.append(row)
    return rows


def write_summary(root: Path, runs: list[Run]) -> list[dict[str, Any]]:
    """Write summary.csv and summary.json into the sweep folder `root`; return the rows."""
    rows = summary_rows(root, runs)
    artifacts.write_csv(root / "summary.csv", rows)
    artifacts.write_text(root / "summary.json", json.dumps(rows, indent=2) + "\n")
    return rows


class SweepReport(Callback):
    """Hydra calls on_multirun_start and on_multirun_end in the launching process, before the
    first job and once every job has returned."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if "joblib" in str(config.hydra.launcher.get("_target_", "")):
            root = Path(config.hydra.sweep.dir)
            # loky's resource tracker (joblib starts it next) warns of "leaked" semaphores when
            # this process ends first (Ctrl-C, kill); it removes them itself, so that is noise
            os.environ["PYTHONWARNINGS"] = ",".join(
                filter(None, [os.environ.get("PYTHONWARNINGS"), LOKY_TRACKER_WARNINGS])
            )
            end_sweep_on_ctrl_c(
                f"mnist: interrupted; the running jobs record it and stop. Continue each with "
                f"mnist train resume={root}/N (`mnist report {root}` lists them)"
            )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from mnistcli.report import report_runs

        root = Path(config.hydra.sweep.dir)
        runs = find_runs(root)
        if not runs:
            return
        rows = write_summary(root, runs)
        settings = OmegaConf.to_container(config.get("report") or OmegaConf.create(), resolve=True)
        report_runs(root, settings, Console(), runs)
        failed = [row["job"] for row in rows if row["status"] != "completed"]
        print(f"mnist: sweep summary: {root / 'summary.csv'}", flush=True)
        if failed:
            print(
                f"mnist: {len(failed)} of {len(rows)} jobs failed ({', '.join(failed)}); their "
                f"errors are in {root / 'summary.csv'} and each job's metrics.json",
                file=sys.stderr,
                flush=True,
            )
            raise SystemExit(SWEEP_FAILED_EXIT)
