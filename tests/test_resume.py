"""Interrupted and killed runs: what they leave, and `mnist train resume=RUN_DIR` continuing
them to exactly the uninterrupted run's result (with trainer.deterministic=true)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import MNIST, assert_user_error, mnist, read_metrics

RUN = ["model=lenet5_bn", "data.limit=3000", "trainer.epochs=4", "trainer.deterministic=true"]
# with the improved presets' knobs, whose state (the weight average with its own batch-norm
# statistics, the schedule, the augmentation's draws) must resume too
RUN += ["schedule=one_cycle", "trainer.ema=0.9", "trainer.label_smoothing=0.1", "augment=notebook"]


def without_seconds(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def weights(path: Path) -> list[np.ndarray]:
    from mnistcli.evaluate import load_checkpoint

    return load_checkpoint(path).get_weights()


def start(cwd: Path, run_dir: str) -> subprocess.Popen:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.Popen(
        [MNIST, "train", *RUN, f"hydra.run.dir={run_dir}"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def after_first_epoch(proc: subprocess.Popen, run_dir: Path, extra: float) -> None:
    """Wait until the first epoch is on disk, then `extra` seconds more (into the second)."""
    deadline = time.monotonic() + 300
    while not (run_dir / "history.csv").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(extra)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("whole")
    proc = mnist("train", *RUN, "hydra.run.dir=run", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return cwd / "run"


def assert_same_run(resumed: Path, whole: Path) -> None:
    r, w = read_metrics(resumed), read_metrics(whole)
    assert r["status"] == "completed" and r["epochs_completed"] == w["epochs_completed"] == 4
    assert without_seconds(r["history"]) == without_seconds(w["history"])
    assert r["best_epoch"] == w["best_epoch"] and r["test"] == w["test"]
    lines = (resumed / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["epoch", "1", "2", "3", "4"]
    for name in ("last.keras", "best.keras"):
        for a, b in zip(
            weights(resumed / "checkpoints" / name),
            weights(whole / "checkpoints" / name),
            strict=True,
        ):
            np.testing.assert_array_equal(a, b)


def test_sigkill_mid_epoch_then_resume(uninterrupted: Path, tmp_path: Path) -> None:
    proc = start(tmp_path, "run")
    after_first_epoch(proc, tmp_path / "run", extra=0.3)
    proc.kill()
    proc.wait()
    run = tmp_path / "run"
    assert not (run / "metrics.json").exists()  # killed before the end: no chance to write it
    for path in (run / "history.csv", run / "checkpoints" / "state.json"):
        assert path.read_text().endswith("\n")
    weights(run / "checkpoints" / "last.keras")  # loads: complete
    resumed = mnist("train", "resume=run", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert read_metrics(run)["resumed_from_epoch"][0] >= 1
    assert_same_run(run, uninterrupted)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_stops_records_interrupted_then_resume(
    signum: int, code: int, uninterrupted: Path, tmp_path: Path
) -> None:
    proc = start(tmp_path, "run")
    after_first_epoch(proc, tmp_path / "run", extra=0.0)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "resume=" in stderr and "Traceback" not in stderr
    m = read_metrics(tmp_path / "run")
    assert m["status"] == "interrupted" and 1 <= m["epochs_completed"] < 4
    assert len(m["history"]) == m["epochs_completed"]
    done = m["epochs_completed"]
    log = (tmp_path / "run" / "train.log").read_text().splitlines()
    assert f"interrupted after {done} epoch" in log[-1] and "mnist train resume=" in log[-1]
    resumed = mnist("train", "resume=run", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(tmp_path / "run", uninterrupted)
    log = (tmp_path / "run" / "train.log").read_text().splitlines()  # appended to, not replaced
    again = [i for i, line in enumerate(log) if f"resuming after epoch {done}" in line]
    assert len(again) == 1 and "interrupted" in log[again[0] - 1]
    epochs = [line.split(" - ", 1)[1].split("  ")[0] for line in log[again[0] + 1 : -1]]
    assert epochs == [f"epoch {n}/4" for n in range(done + 1, 5)]
    assert "completed after 4 epochs" in log[-1]


def test_resume_refuses_a_run_that_is_still_training(tmp_path: Path) -> None:
    """`resume=` of a run another process is training (a second terminal, a cluster job still running):
    two trainers would write the same checkpoints and history. Refused until that one ends."""
    job = ["model=ffnn", "data.limit=3000", "trainer.epochs=300", "hydra.run.dir=run"]
    first = subprocess.Popen([MNIST, "train", *job], cwd=tmp_path, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        after_first_epoch(first, tmp_path / "run", extra=0.0)
        proc = mnist("train", "resume=run", cwd=tmp_path)
        assert_user_error(proc, "run is being trained right now", "stop it (Ctrl-C)")
        assert first.poll() is None  # the first goes on, untouched
    finally:
        first.terminate()
        first.communicate(timeout=60)
    assert first.returncode == 143 and read_metrics(tmp_path / "run")["status"] == "interrupted"
    from mnistcli.artifacts import check_unclaimed

    check_unclaimed(tmp_path / "run")  # let go when it ended: it may be resumed now


def test_a_resumption_stopped_by_a_user_error_stays_resumable(tmp_path: Path) -> None:
    """A new run that a user error stops is recorded as failed (tests/test_config.py); a
    resumption that one stops (here: the run's data file was cut short since) keeps the run's
    record as it was, so it can be resumed once the file is mended."""
    from mnistcli.data import SHIPPED

    shutil.copy(SHIPPED, tmp_path / "m.npz")
    job = ["model=ffnn", "data.path=m.npz", "data.limit=3000", "trainer.epochs=300"]
    first = subprocess.Popen([MNIST, "train", *job, "hydra.run.dir=run"], cwd=tmp_path, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    after_first_epoch(first, tmp_path / "run", extra=0.0)
    first.terminate()
    first.communicate(timeout=60)
    recorded = (tmp_path / "run" / "metrics.json").read_bytes()
    assert json.loads(recorded)["status"] == "interrupted"
    (tmp_path / "m.npz").write_bytes((tmp_path / "m.npz").read_bytes()[:1000])
    proc = mnist("train", "resume=run", cwd=tmp_path)
    assert_user_error(proc, "m.npz is not an npz file, or is cut short")
    assert (tmp_path / "run" / "metrics.json").read_bytes() == recorded


def resumed(tmp_path: Path, times: int) -> subprocess.Popen:
    """`mnist train resume=run` in the background, once train.log shows it (the run's `times`-th
    resumption) has finished an epoch."""
    proc = subprocess.Popen([MNIST, "train", "resume=run"], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (
        (log := (tmp_path / "run" / "train.log").read_text()).count(" params), seed ") > times
        and "] - epoch " in log.rsplit(" params), seed ", 1)[1]
    ):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    return proc


def test_report_tells_a_running_run_from_a_stopped_one(tmp_path: Path) -> None:
    """A run a process trains right now, from its first moment (still loading TensorFlow) on, or
    resumed, is running; once that process is killed the run is stopped (no metrics.json), once
    stopped by SIGTERM interrupted, and the report says how to continue either. Asking does not
    disturb the trainer."""
    job = ["model=ffnn", "data.limit=3000", "trainer.epochs=300", "hydra.run.dir=run"]
    first = subprocess.Popen([MNIST, "train", *job], cwd=tmp_path, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "run" / ".hydra" / "config.yaml").exists():
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.02)
        proc = mnist("report", "run", cwd=tmp_path)
        assert not (tmp_path / "run" / "history.csv").exists()  # it was asked while starting
        assert proc.returncode == 0, proc.stderr
        assert "1 run, 0 failed, 1 running" in " ".join(proc.stdout.split())
        assert "resume=" not in proc.stdout
        report = json.loads((tmp_path / "run" / "report.json").read_text())
        assert (report["running"], report["stopped"], report["resumable"]) == (1, 0, [])
        after_first_epoch(first, tmp_path / "run", extra=0.0)  # it went on, undisturbed
        assert first.poll() is None
    finally:
        first.kill()  # SIGKILL: no chance to write metrics.json
        first.communicate(timeout=60)
    assert not (tmp_path / "run" / "metrics.json").exists()
    proc = mnist("report", "run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "1 run, 0 failed, 1 stopped" in " ".join(proc.stdout.split())
    assert "  mnist train resume=run\n" in proc.stdout
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert (report["running"], report["stopped"], report["resumable"]) == (0, 1, ["run"])
    assert "| 1 (1 stopped) |" in (tmp_path / "run" / "report.md").read_text()
    again = resumed(tmp_path, 1)
    again.terminate()  # SIGTERM: recorded as interrupted
    again.communicate(timeout=60)
    proc = mnist("report", ".", cwd=tmp_path)  # the folder's table (of one run dir: its summary)
    assert "1 run, 0 failed, 1 interrupted" in " ".join(proc.stdout.split())
    assert "  mnist train resume=run\n" in proc.stdout
    again = resumed(tmp_path, 2)  # its metrics.json says interrupted until it ends
    try:
        proc = mnist("report", ".", cwd=tmp_path)
        assert "1 run, 0 failed, 1 running" in " ".join(proc.stdout.split())
        assert "resume=" not in proc.stdout
        report = json.loads((tmp_path / "report.json").read_text())
        assert (report["running"], report["interrupted"], report["resumable"]) == (1, 0, [])
        curves = (tmp_path / "run" / "curves.png").stat().st_mtime_ns
        proc = mnist("report", "run", cwd=tmp_path)  # the run's own summary
        assert proc.returncode == 0, proc.stderr
        said = " ".join(proc.stdout.split())
        assert "(running; before it was resumed: interrupted)" in said
        assert "run is being trained right now (resumed)" in said
        assert (tmp_path / "run" / "curves.png").stat().st_mtime_ns == curves  # the trainer's
    finally:
        again.kill()
        again.communicate(timeout=60)


def test_a_file_system_without_locks_trains_unguarded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where flock fails (some network mounts: ENOLCK), training goes on without the hold and
    the report cannot tell running from stopped; neither raises."""
    import errno

    from mnistcli import artifacts

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(artifacts.fcntl, "flock", no_locks)
    artifacts.check_unclaimed(tmp_path)
    with artifacts.claimed(tmp_path / "."):
        assert not artifacts.being_trained(tmp_path / "..")
    assert not artifacts.being_trained(tmp_path)


def test_resuming_a_completed_run_does_nothing(uninterrupted: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in uninterrupted.rglob("*") if p.is_file()}
    proc = mnist("train", f"resume={uninterrupted}", cwd=uninterrupted.parent)
    assert proc.returncode == 0, proc.stderr
    assert "already completed" in proc.stdout
    assert {p: p.stat().st_mtime_ns for p in uninterrupted.rglob("*") if p.is_file()} == before


def test_resume_refuses_changes_and_non_runs(uninterrupted: Path, tmp_path: Path) -> None:
    cwd = uninterrupted.parent
    assert_user_error(mnist("train", "resume=run", "model=ffnn", cwd=cwd), "drop model=ffnn")
    assert_user_error(mnist("train", "resume=run", "trainer.epochs=9", cwd=cwd), "trainer.epochs")
    assert_user_error(mnist("train", "-m", "resume=run", cwd=cwd), "drop -m")
    assert_user_error(mnist("train", "resume=nowhere", cwd=tmp_path), "no such run dir")
    (tmp_path / "folder").mkdir()
    assert_user_error(mnist("train", "resume=folder", cwd=tmp_path), "not the run dir")


def test_resume_of_a_sweep_folder_names_a_job_it_can_resume(
    uninterrupted: Path, tmp_path: Path
) -> None:
    for job in ("0", "1", "2"):
        shutil.copytree(uninterrupted, tmp_path / "sweep" / job)
    record = read_metrics(uninterrupted)

    def job_status(job: str, status: str) -> None:
        (tmp_path / "sweep" / job / "metrics.json").write_text(
            json.dumps({**record, "status": status})
        )

    job_status("1", "failed")  # resuming it is refused: it is not the one to name
    job_status("2", "interrupted")
    proc = mnist("train", "resume=sweep", cwd=tmp_path)
    assert_user_error(proc, "sweep is a sweep's folder", "resume=sweep/2")
    from mnistcli.artifacts import claimed

    with claimed(tmp_path / "sweep" / "2"):  # as its trainer would: job 2 is running again
        proc = mnist("train", "resume=sweep", cwd=tmp_path)
    assert_user_error(proc, "being trained right now, and 1 failed", "let them finish")
    job_status("2", "completed")
    proc = mnist("train", "resume=sweep", cwd=tmp_path)
    assert_user_error(proc, "unfinished jobs failed (sweep/1 first", "start new runs")
    job_status("1", "completed")
    proc = mnist("train", "resume=sweep", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "sweep (a sweep: all 3 jobs) has already completed" in proc.stdout


def test_deterministic_runs_are_identical(uninterrupted: Path, tmp_path: Path) -> None:
    proc = mnist("train", *RUN, "hydra.run.dir=again", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    again, first = read_metrics(tmp_path / "again"), read_metrics(uninterrupted)
    assert without_seconds(again["history"]) == without_seconds(first["history"])
    assert again["test"] == first["test"]
    for a, b in zip(weights(tmp_path / "again" / "checkpoints" / "last.keras"),
                    weights(uninterrupted / "checkpoints" / "last.keras"), strict=True):  # fmt: skip
        np.testing.assert_array_equal(a, b)


SECOND_SIGNAL = """
import os, signal, sys, time
from mnistcli.signals import Interrupted, interruptible
with interruptible():
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    except Interrupted as e:
        print("first", e.exit_code, flush=True)
        os.kill(os.getpid(), signal.SIGINT)  # while cleaning up: out at once
        time.sleep(5)
        print("cleanup finished", flush=True)
"""


def test_a_second_signal_exits_at_once(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", SECOND_SIGNAL], capture_output=True, text=True,
                          cwd=tmp_path, timeout=30)  # fmt: skip
    assert proc.stdout == "first 143\n", proc.stderr
    assert proc.returncode == 130 and time.monotonic() - started < 5


SECOND_SIGNAL_IN_A_CALL = """
import os, signal, threading, time
import tensorflow as tf
from mnistcli.signals import interruptible

@tf.function
def long_call():  # one call into TensorFlow that takes many minutes
    body = lambda i, x: (i + 1, x * 0.5 + 1.0)
    return tf.while_loop(lambda i, x: i < 10**9, body, (0, tf.constant(1.0)))

def twice():
    time.sleep(2)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGINT)

with interruptible():
    long_call.get_concrete_function()
    threading.Thread(target=twice, daemon=True).start()
    print("calling", flush=True)
    long_call()
    print("the call ended", flush=True)
"""


def test_a_second_signal_exits_during_a_long_call_into_tensorflow(tmp_path: Path) -> None:
    """Python's own handlers wait for the call to end (a train call of steps_per_execution
    steps); the second signal must not."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", SECOND_SIGNAL_IN_A_CALL], capture_output=True,
                          text=True, cwd=tmp_path, timeout=120)  # fmt: skip
    assert proc.stdout == "calling\n", proc.stderr
    assert proc.returncode == 130 and time.monotonic() - started < 60


CTRL_C_IN_A_CALL_AS_THE_PARENT_GOES = """
import hashlib, multiprocessing, os, signal, time
from mnistcli.signals import Interrupted, interruptible

def job():
    try:
        with interruptible():
            with open("ready", "w") as f:
                f.write(str(os.getpid()))
            hashlib.pbkdf2_hmac("sha256", b"x", b"y", 12_000_000)  # one long call, as into TF
            time.sleep(60)
    except Interrupted as e:
        with open("recorded", "w") as f:
            f.write(str(e.exit_code))

if __name__ == "__main__":
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))  # as a parallel sweep's parent
    worker = multiprocessing.Process(target=job)
    worker.start()
    worker.join()
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_ctrl_c_stops_a_worker_once_though_its_parent_is_gone_first(tmp_path: Path) -> None:
    """Ctrl-C reaches a sweep's parent and its workers at once; the parent exits at once. A
    worker inside a long call into TensorFlow runs its handler only when the call ends, and by
    then it has seen its parent go: that must not count as a second signal (which exits with no
    record, as test_stopping_a_parallel_sweep_stops_its_jobs[ctrl-c] sometimes found)."""
    (tmp_path / "parent.py").write_text(CTRL_C_IN_A_CALL_AS_THE_PARENT_GOES)
    parent = subprocess.Popen([sys.executable, "parent.py"], cwd=tmp_path,
                              start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 30
    while not (tmp_path / "ready").exists() or not (tmp_path / "ready").read_text():
        assert time.monotonic() < deadline and parent.poll() is None
        time.sleep(0.05)
    worker = int((tmp_path / "ready").read_text())
    try:
        time.sleep(0.3)  # inside the long call
        os.killpg(parent.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        assert parent.wait(timeout=10) == 130
        while running(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not running(worker)
        assert (tmp_path / "recorded").read_text() == "130"  # stopped by the Ctrl-C, and said so
    finally:
        if running(worker):
            os.kill(worker, signal.SIGKILL)


DEFERRED_AND_SWALLOWED = """
import os, signal, time
from mnistcli.signals import Interrupted, deferred, interruptible, raise_if_stopped
with interruptible():
    try:
        with deferred():  # an epoch's files: the stop waits for them
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)
            print("files written", flush=True)
    except Interrupted as e:
        print("then stopped", e.exit_code, flush=True)
with interruptible():
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    except:  # noqa: E722 (as Keras's saving code does)
        print("swallowed", flush=True)
    try:
        raise_if_stopped()  # the next training step
    except Interrupted as e:
        print("stopped anyway", e.exit_code, flush=True)
"""


def test_a_stop_waits_for_the_epochs_files_and_cannot_be_swallowed(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", DEFERRED_AND_SWALLOWED], capture_output=True,
                          text=True, cwd=tmp_path, timeout=30)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "files written", "then stopped 143", "swallowed", "stopped anyway 130",
    ]  # fmt: skip


def children(pid: int) -> set[int]:
    """The processes whose parent is `pid` (Linux's /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("how", ["kill", "ctrl-c"])
def test_stopping_a_parallel_sweep_stops_its_jobs(how: str, tmp_path: Path) -> None:
    """`kill` on a joblib sweep's parent, or Ctrl-C in its terminal (SIGINT to the whole process
    group): every worker records 'interrupted' and exits, none goes on training orphaned. Ctrl-C
    ends the parent with one line and exit 130, not a traceback from inside joblib (whose abort
    would SIGKILL the workers before they recorded anything)."""
    job = ["model=ffnn", "data.limit=3000", "trainer.epochs=300", "callbacks=[checkpoint]"]
    with open(tmp_path / "stderr", "w") as stderr:
        parent = subprocess.Popen(
            [MNIST, "train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *job,
             "seed=0,1", "hydra.sweep.dir=sweep"],
            cwd=tmp_path, env={**os.environ, "HYDRA_FULL_ERROR": "0"},
            stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
        )  # fmt: skip
    workers: set[int] = set()
    try:
        for run in ("0", "1"):
            after_first_epoch(parent, tmp_path / "sweep" / run, extra=0.0)
        workers = children(parent.pid)
        assert len(workers) >= 2
        if how == "kill":
            parent.terminate()
        else:
            os.killpg(parent.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        parent.wait(timeout=30)
        deadline = time.monotonic() + 90
        while any(running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(running(pid) for pid in workers)
        for run in ("0", "1"):
            m = read_metrics(tmp_path / "sweep" / run)
            assert m["status"] == "interrupted" and 1 <= m["epochs_completed"] < 300
    finally:
        for pid in workers | {parent.pid}:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
    if how == "ctrl-c":
        said = (tmp_path / "stderr").read_text()
        assert parent.returncode == 130, said
        assert "mnist: interrupted; the running jobs record it and stop" in said
        assert "Traceback" not in said and "leaked" not in said, said
