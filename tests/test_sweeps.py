"""Real multiruns through the installed `mnist` command: job by job, the sweep summary, `mnist
report`, failing jobs, and Hydra's joblib, submitit and Optuna plugins."""

from __future__ import annotations

import csv
import json
import math
import shutil
import statistics
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import (
    assert_real_png,
    assert_user_error,
    imports_tensorflow,
    mnist,
    mnist_imports,
    read_metrics,
)
from mnistcli.report import command
from mnistcli.runs import Run, find_runs
from mnistcli.runtime import cpu_share, usable_cpus

# Two jobs at once under joblib get half the cores each; the sequential sweep uses as many, so
# both run the same float operations in the same order and must agree exactly.
THREADS = max(1, usable_cpus() // 2)
SHORT = ["model=ffnn", "model.hidden=[32]", "data.limit=1000", "trainer.epochs=1"]
GRID = ["model.l2=1e-6,1e-3", "seed=0,1"]


def sweep_dir(cwd: Path) -> Path:
    (folder,) = (cwd / "outputs" / "multirun").glob("*/*")
    return folder


def job_metrics(folder: Path) -> list[dict]:
    jobs = sorted((p for p in folder.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    return [read_metrics(job) for job in jobs]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 L2 factors x 2 seeds, 1 epoch on 1,000 images, one process (Hydra's basic launcher)."""
    cwd = tmp_path_factory.mktemp("sweep")
    proc = mnist("train", "-m", *SHORT, *GRID, f"runtime.threads={THREADS}", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    assert "mnist report: 4 runs, 0 failed" in proc.stdout
    return sweep_dir(cwd)


def test_each_job_runs_its_own_combination(sweep: Path) -> None:
    jobs = job_metrics(sweep)
    grid = [(m["config"]["model"]["l2"], m["seed"]) for m in jobs]
    assert grid == [(1e-6, 0), (1e-6, 1), (1e-3, 0), (1e-3, 1)]
    assert all(m["status"] == "completed" and m["epochs_completed"] == 1 for m in jobs)
    assert all(m["device"]["threads"] == THREADS for m in jobs)
    # its own seed: the two seeds start from different weights
    assert jobs[0]["untrained_test_accuracy"] != jobs[1]["untrained_test_accuracy"]


def test_summary_has_one_row_per_job(sweep: Path) -> None:
    jobs = job_metrics(sweep)
    with open(sweep / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [row["job"] for row in rows] == ["0", "1", "2", "3"]
    assert set(rows[0]) >= {"model.l2", "seed", "status", "val_accuracy", "val_loss",
                            "test_accuracy", "test_loss", "epochs", "seconds"}  # fmt: skip
    assert "model.hidden" not in rows[0]  # only the values that vary
    for row, m in zip(rows, jobs, strict=True):
        assert float(row["model.l2"]) == m["config"]["model"]["l2"]
        assert int(row["seed"]) == m["seed"]
        assert row["status"] == "completed"
        assert float(row["val_accuracy"]) == m["val"]["accuracy"]
        assert float(row["test_accuracy"]) == m["test"]["accuracy"]
        assert float(row["test_loss"]) == m["test"]["loss"]
        assert int(row["epochs"]) == 1 and float(row["seconds"]) > 0
    as_json = json.loads((sweep / "summary.json").read_text())
    assert [(r["job"], r["seed"], r["val_accuracy"]) for r in as_json] == [
        (m_job, m["seed"], m["val"]["accuracy"]) for m_job, m in zip("0123", jobs, strict=True)
    ]


def test_a_job_equals_the_same_run_alone(sweep: Path, tmp_path: Path) -> None:
    """The last job ran after three others in the same process; alone it gives the same."""
    last = job_metrics(sweep)[3]
    proc = mnist(
        "train", *SHORT, "model.l2=1e-3", "seed=1", f"runtime.threads={THREADS}",
        "hydra.run.dir=alone", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    alone = read_metrics(tmp_path / "alone")
    strip = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in strip} for r in alone["history"]] == [
        {k: v for k, v in r.items() if k not in strip} for r in last["history"]
    ]
    assert alone["test"] == last["test"]
    assert alone["untrained_test_accuracy"] == last["untrained_test_accuracy"]


def test_report_groups_replicates_and_plots_the_factor(sweep: Path, tmp_path: Path) -> None:
    proc = mnist("report", str(sweep), "report.reference={Hinton: 0.9847}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((sweep / "report.json").read_text())
    assert report["params"] == ["model.l2"] and report["replicates"] == ["seed"]
    assert (report["runs"], report["failed"]) == (4, 0)
    assert report["references"] == {"Hinton": 0.9847}
    jobs = job_metrics(sweep)
    for group, members in zip(report["groups"], (jobs[:2], jobs[2:]), strict=True):
        assert group["runs"] == 2 and group["failed"] == 0
        for split in ("val", "test"):
            values = [m[split]["accuracy"] for m in members]
            assert math.isclose(group[f"{split}_accuracy"]["mean"], statistics.fmean(values))
            assert math.isclose(group[f"{split}_accuracy"]["std"], statistics.stdev(values))
            shown = f"{statistics.fmean(values):.2%} ± {statistics.stdev(values):.2%}"
            assert shown in proc.stdout
    best = max(report["groups"], key=lambda g: g["val_accuracy"]["mean"])
    assert [g["best"] for g in report["groups"]] == [g is best for g in report["groups"]]
    with open(sweep / "report.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["model.l2"]) for r in rows] == [1e-6, 1e-3]
    assert report["png"] == str(sweep / "report.png")
    assert_real_png(sweep / "report.png")
    # more parameters than an 80-column terminal has room for as columns: one wrapped config
    # column holds them, and every group's results are shown whole
    keys = "[model.l2,model.hidden,model.dropout,optimizer.lr,trainer.epochs,data.limit,seed]"
    copy = tmp_path / "copy"  # its report files are rewritten: leave the shared sweep's alone
    shutil.copytree(sweep, copy)
    proc = mnist("report", str(copy), f"report.group_by={keys}", cwd=tmp_path,
                 env={"COLUMNS": "80"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "┃ config " in proc.stdout and "data.limit=1000" in proc.stdout
    for group in json.loads((copy / "report.json").read_text())["groups"]:
        assert f"{group['test_accuracy']['mean']:.2%} │" in proc.stdout


def test_report_averages_only_runs_that_differ_in_the_seed(sweep: Path, tmp_path: Path) -> None:
    """Grouped by a key the runs share (report=results: by experiment preset, and these runs
    have none), the two L2 factors still make two groups: the factor joins the grouping keys.
    And a run resumed elsewhere (it records resume=, another device and thread count) is still
    a replicate of its group."""
    copy = tmp_path / "copy"  # its report files are rewritten: leave the shared sweep's alone
    shutil.copytree(sweep, copy)
    proc = mnist("report", str(copy), "report=results", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((copy / "report.json").read_text())
    assert report["params"] == ["experiment", "model.l2"]
    assert [(g["params"]["model.l2"], g["runs"]) for g in report["groups"]] == [
        (1e-6, 2),
        (1e-3, 2),
    ]
    resumed = copy / "3" / "metrics.json"
    record = json.loads(resumed.read_text())
    where = {"resume": str(resumed.parent), "device": "cpu", "runtime": {"threads": THREADS + 1}}
    record["config"].update(where)
    resumed.write_text(json.dumps(record))
    proc = mnist("report", str(copy), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((copy / "report.json").read_text())
    assert report["params"] == ["model.l2"]
    assert [g["runs"] for g in report["groups"]] == [2, 2]


def test_a_sweep_never_writes_over_an_earlier_one(sweep: Path, tmp_path: Path) -> None:
    """As a single run refuses a run dir that holds a run, a sweep refuses a folder that holds
    a sweep: its jobs 0, 1, ... would have been overwritten one by one."""
    before = {f: f.stat().st_mtime_ns for f in sweep.rglob("*") if f.is_file()}
    proc = mnist("train", "-m", "seed=0,1", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert_user_error(proc, "already holds a sweep", f"resume={sweep}")
    assert {f: f.stat().st_mtime_ns for f in sweep.rglob("*") if f.is_file()} == before


def test_report_names_no_run_has_are_one_line(sweep: Path, tmp_path: Path) -> None:
    """A misspelt group_by or replicates name was read as a value no run has: one group of
    everything, or every run its own group. Now one line names the nearest real one."""
    before = (sweep / "report.json").read_text()
    proc = mnist("report", str(sweep), "report.group_by=[model.l3]", cwd=tmp_path)
    assert_user_error(proc, "report.group_by names model.l3", "did you mean model.l2?")
    proc = mnist("report", str(sweep), "report.replicates=[sed]", cwd=tmp_path)
    assert_user_error(proc, "report.replicates names sed", "did you mean seed?")
    assert (sweep / "report.json").read_text() == before  # nothing was rewritten


def test_report_of_one_run_dir(quick_run: Path, tmp_path: Path) -> None:
    proc = mnist("report", str(quick_run), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "mnist train: lenet5 (completed)" in proc.stdout
    assert_real_png(quick_run / "curves.png")
    assert not (tmp_path / "outputs").exists()  # report writes only into the folder it reads


def test_report_mistakes_are_one_line(tmp_path: Path) -> None:
    assert_user_error(mnist("report", cwd=tmp_path), "mnist report")
    assert_user_error(mnist("report", "nowhere", cwd=tmp_path), "nowhere", "does not exist")
    (tmp_path / "empty").mkdir()
    assert_user_error(mnist("report", "empty", cwd=tmp_path), "no training runs")
    proc = mnist("report", "empty", "report.reference=high", cwd=tmp_path)
    assert_user_error(proc, "report.reference")


def test_failed_jobs_are_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    (tmp_path / "garbage.npz").write_bytes(b"not an npz at all" * 100)
    proc = mnist(
        "train", "-m", *SHORT, "optimizer=sgd", "schedule=constant", "trainer.epochs=2",
        "optimizer.lr=1e12,0.05", "data.path=null,garbage.npz", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "mnist: 3 of 4 jobs failed (0, 1, 3)" in proc.stderr
    assert "Traceback" not in proc.stderr
    folder = sweep_dir(tmp_path)
    jobs = job_metrics(folder)
    assert [m["status"] for m in jobs] == ["failed", "failed", "completed", "failed"]
    assert "NaN" in jobs[0]["error"]
    assert "garbage.npz" in jobs[1]["error"] and jobs[1]["config"]["optimizer"]["lr"] == 1e12
    assert jobs[2]["epochs_completed"] == 2 and jobs[2]["test"]["accuracy"] > 0.3
    with open(folder / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["status"] for r in rows] == ["failed", "failed", "completed", "failed"]
    assert "garbage.npz" in rows[3]["error"]
    report = json.loads((folder / "report.json").read_text())
    assert (report["runs"], report["failed"]) == (4, 3)


def test_joblib_launcher_gives_the_sequential_results(sweep: Path, tmp_path: Path) -> None:
    proc = mnist("train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *SHORT, *GRID,
                 cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for job in range(4):  # the jobs' epoch lines interleave: each says whose it is
        assert f"#{job} epoch 1/1  loss" in proc.stdout
    for job in range(4):  # and each job's own train.log has its lines
        log = (sweep_dir(tmp_path) / str(job) / "train.log").read_text()
        assert "][INFO] - epoch 1/1  loss" in log and "completed after 1 epoch" in log
    parallel, sequential = job_metrics(sweep_dir(tmp_path)), job_metrics(sweep)
    assert [m["device"]["threads"] for m in parallel] == [THREADS] * 4
    for p, s in zip(parallel, sequential, strict=True):
        assert (p["seed"], p["config"]["model"]["l2"]) == (s["seed"], s["config"]["model"]["l2"])
        assert p["test"] == s["test"] and p["val"] == s["val"]


def test_submitit_local_launcher(tmp_path: Path) -> None:
    """The path a SLURM sweep takes (hydra/launcher=submitit_slurm), on submitit's local executor."""
    proc = mnist("train", "-m", "hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=1",
                 *SHORT, "seed=0,1", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    folder = sweep_dir(tmp_path)
    jobs = job_metrics(folder)
    assert [(m["status"], m["seed"], m["device"]["threads"]) for m in jobs] == [
        ("completed", 0, 1),
        ("completed", 1, 1),
    ]
    assert (folder / ".submitit").is_dir() and (folder / "summary.csv").is_file()


def test_optuna_search_runs_three_trials(tmp_path: Path) -> None:
    proc = mnist("train", "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=3", *SHORT,
                 cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    folder = sweep_dir(tmp_path)
    jobs = job_metrics(folder)
    assert len(jobs) == 3 and all(m["status"] == "completed" for m in jobs)
    for m in jobs:
        assert 1e-4 <= m["config"]["optimizer"]["lr"] <= 1e-1
        assert 1e-7 <= m["config"]["model"]["l2"] <= 1e-3
        assert 0.0 <= m["config"]["model"]["dropout"] <= 0.6
    assert len({m["config"]["optimizer"]["lr"] for m in jobs}) == 3  # three different trials
    result = OmegaConf.load(folder / "optimization_results.yaml")
    best = max(jobs, key=lambda m: m["val"]["accuracy"])
    assert result["best_value"] == best["val"]["accuracy"]  # the objective mnist train returned
    assert result["best_params"]["optimizer.lr"] == best["config"]["optimizer"]["lr"]


def test_sweep_mistakes_are_caught_before_any_job(tmp_path: Path) -> None:
    proc = mnist("train", "-m", "hparams_search=optuna", "model=lenet5", cwd=tmp_path)
    assert_user_error(proc, "model.dropout")
    proc = mnist("train", "-m", "experiment=l2_sweep", "optimizer.lr=-1", cwd=tmp_path)
    assert_user_error(proc, "optimizer.lr")
    proc = mnist("train", "-m", "seed=0,1", "--cfg", "job", cwd=tmp_path)
    assert_user_error(proc, "--multirun", "--cfg")
    proc = mnist("train", "-m", "seed=0,1", "report.group_by=[experimnt]", cwd=tmp_path)
    assert_user_error(proc, "report.group_by names experimnt", "did you mean experiment?")
    no_slurm = {"PATH": str(Path(sys.executable).parent)}  # no srun on it, whatever this host has
    proc = mnist("train", "-m", "hydra/launcher=submitit_slurm", "seed=0", cwd=tmp_path,
                 env=no_slurm)  # fmt: skip
    assert_user_error(proc, "submitit_slurm", "no srun", "hydra/launcher=joblib")
    proc = mnist("train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=0", "seed=0,1",
                 cwd=tmp_path)  # fmt: skip
    assert_user_error(proc, "hydra.launcher.n_jobs=0 runs no jobs")
    for setting, words in (("n_trials=0", "hydra.sweeper.n_trials must be"),
                           ("direction=minimize", "must be maximize")):  # fmt: skip
        proc = mnist("train", "-m", "hparams_search=optuna", f"hydra.sweeper.{setting}",
                     cwd=tmp_path)  # fmt: skip
        assert_user_error(proc, words)  # Optuna's own errors came after the sweep had begun
    assert not (tmp_path / "outputs").exists()


JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


@pytest.mark.parametrize(
    "launcher, share",
    [
        ({}, None),  # the basic launcher: one job at a time, all cores
        ({"_target_": JOBLIB, "n_jobs": -1}, 1),  # joblib's default: one job per core
        ({"_target_": JOBLIB, "n_jobs": 2}, max(1, usable_cpus() // 2)),
        ({"_target_": JOBLIB, "n_jobs": 1}, usable_cpus()),
        ({"_target_": "x.SlurmLauncher", "cpus_per_task": 8}, 8),
    ],
)
def test_cpu_share(launcher: dict, share: int | None) -> None:
    assert cpu_share(launcher) == share


def test_report_imports_no_tensorflow(sweep: Path, tmp_path: Path) -> None:
    proc, imported = mnist_imports("report", str(sweep), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "matplotlib" in imported  # the trace is real: it drew report.png
    assert not imports_tensorflow(imported)


def test_reading_a_folder_never_leaves_it(tmp_path: Path) -> None:
    """Runs reached through links (a linked run dir, a linked metrics.json) are not read."""
    outside = tmp_path / "outside"
    (outside / "run").mkdir(parents=True)
    record = {"task": "train", "status": "completed", "config": {"seed": 0, "trainer": {}}}
    (outside / "run" / "metrics.json").write_text(json.dumps(record))
    folder = tmp_path / "sweep"
    (folder / "0").mkdir(parents=True)
    (folder / "0" / "metrics.json").write_text(json.dumps({**record, "config": {"seed": 1}}))
    (folder / "1").symlink_to(outside / "run")
    (folder / "2").mkdir()
    (folder / "2" / "metrics.json").symlink_to(outside / "run" / "metrics.json")
    runs = find_runs(folder)
    assert [r.path.name for r in runs] == ["0"]  # 1 and 2 lead outside: not read
    assert runs[0].config == {"seed": 1}


def test_report_by_experiment_writes_the_results_table(tmp_path: Path) -> None:
    """RESULTS.md's way: runs of two presets, 2 seeds each, grouped by preset (report=results):
    one row each with the preset's published number, mean ± std and the command to rerun it."""
    short = ["data.limit=1000", "trainer.epochs=1", f"runtime.threads={THREADS}"]
    proc = mnist("train", "-m", "experiment=ffnn,mlp_l2", "seed=0,1", *short, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    folder = sweep_dir(tmp_path)
    # the sweep's own report groups by the choice that differs, not by every value it sets
    assert json.loads((folder / "report.json").read_text())["params"] == ["experiment"]
    proc = mnist("report", str(folder), "report=results", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((folder / "report.json").read_text())
    assert report["params"] == ["experiment"]
    by_name = {g["params"]["experiment"]: g for g in report["groups"]}
    assert sorted(by_name) == ["ffnn", "mlp_l2"]
    assert by_name["ffnn"]["reference"] == {"notebook": 0.9729}
    assert by_name["mlp_l2"]["reference"] == {"notebook (best)": 0.9833, "Hinton (2012)": 0.9847}
    jobs = job_metrics(folder)  # ffnn seed 0, 1, then mlp_l2 seed 0, 1
    md = (folder / "report.md").read_text()
    for name, members in (("ffnn", jobs[:2]), ("mlp_l2", jobs[2:])):
        assert [m["config"]["model"]["hidden"] for m in members] == (
            [[512, 512]] * 2 if name == "ffnn" else [[500, 300]] * 2
        )
        values = [m["test"]["accuracy"] for m in members]
        shown = f"{100 * statistics.fmean(values):.2f} ± {100 * statistics.stdev(values):.2f}%"
        command = f"mnist train -m experiment={name} {' '.join(short)} seed=0,1"
        (row,) = [line for line in md.splitlines() if line.startswith(f"| {name} |")]
        assert shown in row and f"`{command}`" in row and "| 2 | 1 |" in row, row
    assert "notebook 97.29%" in md and "Hinton (2012) 98.47%" in md


def test_interrupted_and_stopped_runs_are_not_failed(sweep: Path, tmp_path: Path) -> None:
    """A job stopped by Ctrl-C or SIGTERM says so in its metrics.json; one killed outright has
    none and no process trains it. Neither failed: the report counts them apart and prints the
    command that continues each."""
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy)
    (copy / "3" / "metrics.json").unlink()
    record = json.loads((copy / "1" / "metrics.json").read_text())
    (copy / "1" / "metrics.json").write_text(json.dumps({**record, "status": "interrupted"}))
    proc = mnist("report", str(copy), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    title = "4 runs, 0 failed, 1 interrupted, 1 stopped"
    assert title in " ".join(proc.stdout.split())
    for job in ("1", "3"):
        assert f"  mnist train resume={copy / job}\n" in proc.stdout
    report = json.loads((copy / "report.json").read_text())
    assert report["resumable"] == [str(copy / "1"), str(copy / "3")]
    counts = [(g["runs"], g["failed"], g["interrupted"], g["stopped"]) for g in report["groups"]]
    assert counts == [(2, 0, 1, 0), (2, 0, 0, 1)]
    md = (copy / "report.md").read_text()
    assert "| 2 (1 interrupted) |" in md and "| 2 (1 stopped) |" in md


def test_the_command_column_holds_what_every_replicate_shares() -> None:
    """Replicates started separately (one with a thread override, seeds out of order) give one
    command: the overrides all of them had, the seeds gathered and sorted."""
    started = [
        ["experiment=lenet5", "runtime.threads=1", "seed=2"],
        ["experiment=lenet5", "seed=0"],
        ["experiment=lenet5", "runtime.threads=1", "seed=10"],
    ]
    runs = [Run(Path(str(i)), {}, {}, overrides=o) for i, o in enumerate(started)]
    assert command(runs, ["seed"]) == "mnist train -m experiment=lenet5 seed=0,2,10"
    assert command(runs[1:2], ["seed"]) == "mnist train experiment=lenet5 seed=0"
