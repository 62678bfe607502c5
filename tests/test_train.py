"""Real short trainings through the installed `mnist` command, on real MNIST (data.limit)."""

from __future__ import annotations

import csv
import datetime
import math
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import (
    MNIST,
    assert_real_png,
    assert_user_error,
    composed,
    mnist,
    model_from,
    read_metrics,
    write_idx,
)
from mnistcli.data import load
from mnistcli.evaluate import load_checkpoint, most_confident_mistakes


def test_run_dir_layout_and_metrics(quick_run: Path) -> None:
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}/\d{2}-\d{2}-\d{2}", "/".join(quick_run.parts[-2:]))
    assert quick_run.parent.parent.name == "outputs"
    for name in ("config.yaml", "overrides.yaml", "hydra.yaml"):
        assert (quick_run / ".hydra" / name).is_file()
    assert (quick_run / "checkpoints" / "best.keras").is_file()
    assert (quick_run / "checkpoints" / "last.keras").is_file()
    assert not list(quick_run.rglob(".*.tmp*"))  # no temporary files left behind
    assert_real_png(quick_run / "curves.png", 1000, 400)

    m = read_metrics(quick_run)
    assert (m["task"], m["status"], m["model"]) == ("train", "completed", "lenet5")
    assert m["params"] == m["trainable_params"] == 303_626
    assert (m["seed"], m["epochs_completed"], m["best_epoch"]) == (0, 1, 1)
    assert m["data"]["source"] == "shipped"
    assert m["data"]["sha256"].startswith("06af5dfe73b7")
    assert (m["data"]["train"], m["data"]["val"], m["data"]["test"]) == (1600, 400, 10000)
    assert 0.0 <= m["untrained_test_accuracy"] < 0.3
    assert 0.6 < m["test"]["accuracy"] <= 1.0 and 0 < m["test"]["loss"] < 2.3
    assert 0.6 < m["val"]["accuracy"] <= 1.0
    assert m["val"]["loss"] == m["history"][0]["val_loss"]
    assert m["test_used_for_selection"] is False
    assert m["timing"]["train_seconds"] > 0 and m["timing"]["samples_per_second"] > 0
    assert m["timing"]["startup_seconds"] > 0  # process start to the first step's end
    assert m["device"] == {**m["device"], "type": "cpu", "count": 1, "xla": False}  # convolutions
    cores = min(len(os.sched_getaffinity(0)), 2)  # the test run's own share, at most
    assert m["device"]["shards"] == m["device"]["threads"] >= cores  # trainer.shards=auto
    assert set(m["versions"]) == {"python", "tensorflow", "keras", "mnistcli"}
    assert m["versions"]["keras"].startswith("3.")
    assert m["config"]["model"]["name"] == "lenet5" and m["config"]["data"]["limit"] == 2000

    # train.log: the run's set-up, its epoch line and its outcome (the console shows the same)
    lines = (quick_run / "train.log").read_text().splitlines()
    log = [line.split(" - ", 1)[1] for line in lines if "[mnistcli.run][INFO]" in line]
    assert log[0].startswith("lenet5 (303,626 params), seed 0: 1 epoch of batch 128 on 1,600")
    shards = m["device"]["shards"]
    precision = m["device"]["precision"]  # float32, or bfloat16 on a CPU that has it natively
    assert (f"{precision}, {shards} shards, " in log[0]) == (shards > 1)
    assert log[1].startswith("epoch 1/1  loss ") and "val_acc" in log[1]
    assert log[2] == (
        f"completed after 1 epoch (best 1): val accuracy {m['val']['accuracy']:.2%}, test "
        f"accuracy {m['test']['accuracy']:.2%}, {m['timing']['train_seconds']:.1f} s in fit"
    )
    with open(quick_run / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and rows[0]["epoch"] == "1"
    assert math.isclose(float(rows[0]["val_accuracy"]), m["val"]["accuracy"])


def test_eval_agrees_with_train(quick_run: Path, tmp_path: Path) -> None:
    ckpt = quick_run / "checkpoints" / "best.keras"
    proc = mnist("eval", f"ckpt={ckpt}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "all" in proc.stdout and "per" not in proc.stderr
    assert f"checkpoint {ckpt}\n" in proc.stdout  # whole, on one line: a path to copy
    (eval_dir,) = [p.parent for p in (tmp_path / "outputs").glob("*/*/metrics.json")]
    e, t = read_metrics(eval_dir), read_metrics(quick_run)
    assert e["task"] == "eval" and e["status"] == "completed"
    assert e["test"]["accuracy"] == t["test"]["accuracy"]
    assert math.isclose(e["test"]["loss"], t["test"]["loss"], rel_tol=1e-6)
    confusion = np.array(e["confusion_matrix"])
    assert confusion.shape == (10, 10) and confusion.sum() == 10000
    assert math.isclose(np.trace(confusion) / 10000, e["test"]["accuracy"])
    per_class = confusion.diagonal() / confusion.sum(axis=1)
    np.testing.assert_allclose(e["per_class_accuracy"], per_class)
    for name in ("confusion_matrix.png", "errors.png"):
        assert_real_png(eval_dir / name, 600, 500)
        assert f"written: {eval_dir / name}" in proc.stdout

    # the run dir for its best checkpoint
    proc = mnist("eval", f"ckpt={quick_run}", "hydra.run.dir=by_dir", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    by_dir = read_metrics(tmp_path / "by_dir")
    assert by_dir["ckpt"] == str(ckpt.resolve()) and by_dir["test"] == e["test"]


def test_errors_png_shows_the_most_confident_mistakes_first() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.99, 0.01]])
    y = np.array([1, 1, 1, 0, 0])  # wrong: 0 (0.9), 2 (0.6), 3 (0.7)
    assert most_confident_mistakes(probs, y, 10).tolist() == [0, 3, 2]
    assert most_confident_mistakes(probs, y, 2).tolist() == [0, 3]


def test_eval_refuses_a_checkpoint_of_the_wrong_shape(tmp_path: Path) -> None:
    import keras

    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])  # fmt: skip
    model.save(tmp_path / "cifar.keras")
    assert_user_error(mnist("eval", "ckpt=cifar.keras", cwd=tmp_path), "(28, 28, 1)")
    (tmp_path / "cut.keras").write_bytes((tmp_path / "cifar.keras").read_bytes()[:2000])
    assert_user_error(mnist("eval", "ckpt=cut.keras", cwd=tmp_path), "cut.keras")


def test_a_checkpoint_with_python_code_is_refused_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keras

    marker = tmp_path / "pwned"
    monkeypatch.setenv("PWNED", str(marker))  # where the layer's code writes, if it ever runs
    code = keras.layers.Lambda(
        lambda x: (open(__import__("os").environ["PWNED"], "w").close(), x)[1]
    )
    model = keras.Sequential([keras.Input((28, 28, 1)), code, keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])  # fmt: skip
    marker.unlink()  # building the model ran it once, here in the test
    model.save(tmp_path / "lambda.keras")
    proc = mnist("eval", "ckpt=lambda.keras", cwd=tmp_path)
    assert_user_error(proc, "lambda.keras", "Lambda", "safe mode")
    assert not marker.exists()


def test_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path: Path) -> None:
    """The config's run dir is a timestamp to the second, so a run started while that folder is
    taken (a run from the same second: two terminals, a shell loop with `&`) gets TIME-2, not
    the other run's folder (where it wrote over its config) and not an error."""
    now = datetime.datetime.now()
    taken = [now + datetime.timedelta(seconds=s) for s in range(30)]
    taken = [tmp_path / "outputs" / t.strftime("%Y-%m-%d") / t.strftime("%H-%M-%S") for t in taken]
    for folder in taken:
        (folder / ".hydra").mkdir(parents=True)
        (folder / ".hydra" / "config.yaml").write_text("someone else's run\n")
    proc = mnist("train", "model=ffnn", "model.hidden=[32]", "trainer.epochs=1", "data.limit=500",
                 cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (run,) = {p.parent for p in tmp_path.glob("outputs/*/*/metrics.json")}
    assert run.name.endswith("-2") and run.with_name(run.name[:-2]) in taken
    assert f"{run}/curves.png" in proc.stdout
    assert all((f / ".hydra" / "config.yaml").read_text() == "someone else's run\n" for f in taken)
    assert "model=ffnn" in (run / ".hydra" / "overrides.yaml").read_text()
    # three at once (`mnist show`, which needs no TensorFlow): three folders
    show = [subprocess.Popen([MNIST, "show", f"show.index={i}"], cwd=tmp_path, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(3)]  # fmt: skip
    for proc in show:
        assert proc.wait(timeout=120) == 0, proc.communicate()
    shown = {p.parent for p in tmp_path.glob("outputs/*/*-show*/digit_*.png")}
    assert len(shown) == 3


def test_commands_given_the_same_new_run_dir_at_once_run_one_at_most(tmp_path: Path) -> None:
    """Three `mnist show` (no TensorFlow: they start together) named the same new hydra.run.dir:
    one runs there, the other two are refused (one line, exit 2) instead of writing their config
    over its .hydra/ and their pictures beside its."""
    procs = [subprocess.Popen([MNIST, "show", f"show.index={i}", "hydra.run.dir=run"], cwd=tmp_path,
                              text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(3)]  # fmt: skip
    ended = [(proc, *proc.communicate(timeout=120)) for proc in procs]
    (winner,) = [i for i, (proc, _, _) in enumerate(ended) if proc.returncode == 0]
    for proc, _, stderr in ended:
        if proc.returncode != 0:
            assert proc.returncode == 2 and len(stderr.strip().splitlines()) == 1, stderr
            assert "hydra.run.dir" in stderr and "Traceback" not in stderr
    assert f"show.index={winner}" in (tmp_path / "run" / ".hydra" / "overrides.yaml").read_text()
    assert [p.name for p in (tmp_path / "run").glob("digit_*.png")] == [f"digit_{winner}.png"]
    sweeps = [subprocess.Popen([MNIST, "show", "-m", f"show.index={i},{i + 3}", "hydra.sweep.dir=sw"],
                               cwd=tmp_path, text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE) for i in range(2)]  # fmt: skip
    codes = sorted(proc.wait(timeout=120) for proc in sweeps)
    assert codes == [0, 2], [proc.communicate() for proc in sweeps]
    assert len({p.name for p in (tmp_path / "sw").glob("*/digit_*.png")}) == 2
    (tmp_path / "started" / ".hydra").mkdir(parents=True)  # a command stopped while starting
    proc = mnist("show", "hydra.run.dir=started", cwd=tmp_path)
    assert_user_error(proc, "another mnist command is starting in started", "remove")


def test_used_run_dir_is_not_overwritten(quick_run: Path, tmp_path: Path) -> None:
    before = (quick_run / "metrics.json").read_bytes()
    proc = mnist("train", f"hydra.run.dir={quick_run}", "data.limit=2000", cwd=tmp_path)
    assert_user_error(proc, "already holds a run")
    assert (quick_run / "metrics.json").read_bytes() == before


def test_idx_folder_warnings_and_summary_table(tmp_path: Path) -> None:
    """An IDX folder as data; split=test and more threads than cores each warn, on the console
    and in train.log."""
    real = load(None)
    arrays = {"x_train": real.x_train[:1000], "y_train": real.y_train[:1000],
              "x_test": real.x_test[:500], "y_test": real.y_test[:500]}  # fmt: skip
    folder = write_idx(tmp_path / "idx", arrays)
    cores = len(os.sched_getaffinity(0))
    proc = mnist(
        "train", "model=ffnn", "model.hidden=[64]", "split=test", "trainer.epochs=2",
        f"data.path={folder}", f"runtime.threads={cores + 1}", "hydra.run.dir=run", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    log = (tmp_path / "run" / "train.log").read_text()  # flushed at exit
    for warning in ("test set validates", f"runtime.threads={cores + 1} is more than the {cores}"):
        assert warning in proc.stdout + proc.stderr and warning in log
    assert "mnist train: ffnn (completed)" in proc.stdout
    assert "epoch 2/2" in proc.stdout
    m = read_metrics(tmp_path / "run")
    assert m["test_used_for_selection"] is True
    assert (m["data"]["train"], m["data"]["val"], m["data"]["test"]) == (1000, 500, 500)
    assert m["data"]["source"] == str(folder.resolve())
    assert m["epochs_completed"] == 2 and len(m["history"]) == 2


def test_diverging_run_is_recorded_as_failed(tmp_path: Path) -> None:
    proc = mnist(
        "train", "model=ffnn", "optimizer=sgd", "optimizer.lr=1e12", "schedule=constant",
        "data.limit=1000", "trainer.epochs=3", "hydra.run.dir=run", cwd=tmp_path,
    )  # fmt: skip
    m = read_metrics(tmp_path / "run")
    assert m["status"] == "failed" and "NaN" in m["error"]
    assert m["epochs_completed"] == 1  # terminate_on_nan stopped the first epoch
    assert (tmp_path / "run" / "checkpoints" / "last.keras").is_file()
    assert proc.returncode == 1 and "training failed" in proc.stderr
    last = (tmp_path / "run" / "train.log").read_text().splitlines()[-1]
    assert "[mnistcli.run][WARNING] - failed after 1 epoch" in last and "lower optimizer.lr" in last


def test_run_without_callbacks_tests_its_last_weights(tmp_path: Path) -> None:
    """callbacks=[]: no checkpoint picks a best epoch, so the last epoch's weights are tested."""
    proc = mnist(
        "train", "model=ffnn", "model.hidden=[32]", "callbacks=[]", "data.limit=1000",
        "trainer.epochs=2", "hydra.run.dir=run", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    m = read_metrics(tmp_path / "run")
    assert (m["status"], m["epochs_completed"], m["best_epoch"]) == ("completed", 2, None)
    assert m["device"]["xla"] is True  # jit_compile=auto: a model without convolutions, on a CPU
    assert "float32, XLA, " in (tmp_path / "run" / "train.log").read_text()
    assert m["val"]["accuracy"] == m["history"][-1]["val_accuracy"]
    assert m["test"]["accuracy"] > m["untrained_test_accuracy"] + 0.25  # trained weights, tested
    assert not (tmp_path / "run" / "checkpoints" / "best.keras").exists()
    assert (tmp_path / "run" / "checkpoints" / "last.keras").is_file()  # resume still works
    assert "best" not in proc.stdout
    last = (tmp_path / "run" / "train.log").read_text().splitlines()[-1]
    assert "[mnistcli.run][INFO] - completed after 2 epochs: val accuracy" in last
    # a run dir with no best.keras: eval names the file it has
    proc = mnist("eval", "ckpt=run", cwd=tmp_path)
    assert_user_error(proc, "no checkpoints/best.keras", "pass run/checkpoints/last.keras")


def test_multirun_goes_to_outputs_multirun(tmp_path: Path) -> None:
    proc = mnist(
        "train", "-m", "model=ffnn", "model.hidden=[32]", "seed=0,1", "data.limit=1000",
        "trainer.epochs=1", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    runs = sorted((tmp_path / "outputs" / "multirun").glob("*/*/*/metrics.json"))
    assert [p.parent.name for p in runs] == ["0", "1"]
    seeds = [read_metrics(p.parent)["seed"] for p in runs]
    assert seeds == [0, 1]
    assert read_metrics(runs[0].parent)["history"] != read_metrics(runs[1].parent)["history"]


def test_mirrored_strategy_on_two_logical_cpus(tmp_path: Path) -> None:
    proc = mnist(
        "train", "model=lenet5", "runtime.logical_cpus=2", "data.limit=1000",
        "trainer.epochs=1", "hydra.run.dir=run", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    m = read_metrics(tmp_path / "run")
    assert m["device"]["count"] == 2 and m["device"]["strategy"] == "MirroredStrategy"
    assert m["status"] == "completed" and m["test"]["accuracy"] > 0.5
    assert m["timing"]["steps_per_execution"] == 1  # Keras's multi-step call fails there
    assert m["device"]["shards"] == 1  # the logical devices split the batch already
    # TensorFlow's INFO lines for each all-reduce ("Reduce to ... then broadcast to") stay out
    assert "[tensorflow]" not in proc.stdout + (tmp_path / "run" / "train.log").read_text()


@pytest.mark.slow
def test_default_run_reaches_99_percent(tmp_path: Path) -> None:
    """`mnist train` with no overrides: the README's main job (0.5-2.5 minutes on 2 cores)."""
    proc = mnist("train", "hydra.run.dir=run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert read_metrics(tmp_path / "run")["test"]["accuracy"] >= 0.99


@pytest.mark.slow
def test_fast_experiment_reaches_99_percent(tmp_path: Path) -> None:
    """`experiment=fast` (3 epochs of strided_cnn, about 30 s here): >= 99.0% on the official
    test set, validated on training images only."""
    proc = mnist("train", "experiment=fast", "hydra.run.dir=run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    m = read_metrics(tmp_path / "run")
    assert m["model"] == "strided_cnn" and m["epochs_completed"] == 3
    assert m["test_used_for_selection"] is False and m["data"]["val"] == 5000
    assert m["test"]["accuracy"] >= 0.99


@pytest.mark.parametrize(
    ("most", "steps", "calls_of"),
    [(128, 750, 125), (128, 1500, 125), (128, 215, 43), (8, 750, 6), (128, 13, 13), (128, 131, 1),
     (1, 750, 1)],
)  # fmt: skip
def test_steps_per_execution_divides_the_epoch(most: int, steps: int, calls_of: int) -> None:
    from mnistcli.pipeline import steps_per_execution

    assert steps_per_execution(most, steps) == calls_of


def test_calls_end_where_epochs_end(tmp_path: Path) -> None:
    """10 steps per call on 25-step epochs (1,600 images, batch 64) become 5, and the epochs are
    exactly those of one step per call (Keras alone would train epoch 1 for 3 calls: 30 steps)."""
    runs = {}
    for per_call in (1, 10):
        proc = mnist(
            "train", "model=ffnn", "trainer.batch_size=64", "data.limit=2000", "trainer.epochs=2",
            f"trainer.steps_per_execution={per_call}", f"hydra.run.dir=run{per_call}", cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        runs[per_call] = read_metrics(tmp_path / f"run{per_call}")
    assert runs[10]["timing"]["steps_per_execution"] == 5
    assert ", 5 steps per call" in (tmp_path / "run10" / "train.log").read_text()
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert [r[key] for r in runs[10]["history"]] == [r[key] for r in runs[1]["history"]]
    assert runs[10]["test"] == runs[1]["test"]


@pytest.mark.parametrize(
    ("overrides", "device"),
    [(["model=lenet5_bn", "optimizer=adam"], {}), (["model=ffnn", "optimizer=rmsprop"], {}),
     (["model=lenet5", "optimizer=sgd", "trainer.ema=0.999"], {}),
     (["model=lenet5", "trainer.precision=mixed_bfloat16"], {}),
     (["model=lenet5_bn"], {"type": "gpu", "compute_capability": (8, 0)})],  # mixed_float16
)  # fmt: skip
def test_fit_makes_no_variables(overrides: list[str], device: dict) -> None:
    """The compiled model has every variable its train step updates before fit (the
    optimizer's slots, the weight average, the loss scale on a GPU, the accuracy's totals): one
    made inside the step's first trace makes TensorFlow trace the step again (1.4 s of
    lenet5_bn's start-up)."""
    import keras
    import tensorflow as tf

    from mnistcli import pipeline
    from mnistcli.precision import set_precision
    from mnistcli.train import _compiled_model

    cfg = composed(*overrides)
    keras.backend.clear_session()
    set_precision(cfg.trainer.precision, {"type": "cpu", **device}, cfg.model)
    made = []

    def creator(next_creator: Any, **kwargs: Any) -> Any:
        made.append(kwargs.get("name"))
        return next_creator(**kwargs)

    data = load()
    train = pipeline.inference(data.x_train[:64], data.y_train[:64], 16)
    try:
        model = _compiled_model(cfg, {"type": "cpu", **device}, steps=4, per_execution=2)
        with tf.variable_creator_scope(creator):
            history = model.fit(train, epochs=1, steps_per_epoch=4, shuffle=False, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert made == []
    assert history.history["accuracy"][0] > 0  # the accuracy's totals are the ones updated
    scaled = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == bool(device)


CPU, GPU = {"type": "cpu"}, {"type": "gpu"}


@pytest.mark.parametrize(
    ("overrides", "device", "xla"),
    [(["model=ffnn"], CPU, True), (["model=ffnn", "model.hidden=[500,300]"], CPU, True),
     (["model=lenet5"], CPU, False), (["model=lenet5_bn"], CPU, False),
     (["model=cnn_v2"], CPU, False), (["model=ffnn"], GPU, "auto"),
     (["model=ffnn", "trainer.jit_compile=false"], CPU, False),
     (["model=lenet5", "trainer.jit_compile=true"], CPU, True),
     (["model=ffnn", "trainer.deterministic=true"], CPU, False)],
)  # fmt: skip
def test_auto_xla_on_a_cpu_for_models_without_convolutions(
    overrides: list[str], device: dict, xla: bool | str
) -> None:
    """trainer.jit_compile=auto: XLA on a CPU where it trained faster (the dense nets), not where
    its convolutions are slower than oneDNN's; Keras's own choice on GPUs ("auto")."""
    from mnistcli.runtime import use_xla

    cfg = composed(*overrides)
    assert use_xla(cfg.trainer, model_from(*overrides), device) == xla


def test_no_auto_xla_under_a_distribution_strategy() -> None:
    """As Keras: a model compiled in a strategy's scope (several GPUs, logical CPUs) gets none."""
    import tensorflow as tf

    from mnistcli.runtime import use_xla

    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        assert use_xla(composed().trainer, model_from("model=ffnn"), CPU) is False


def test_first_step_end_is_estimated_from_the_second_call(monkeypatch) -> None:
    """With 10 steps per call ending at t=100 s and t=101 s, the first step ended at 99.1 s; when
    the second call is in another epoch, the first call's end (100 s) stands."""
    from types import SimpleNamespace

    from mnistcli import callbacks

    for second_epoch, first_step in ((0, 99.1), (1, 100.0)):
        cb = callbacks.FirstStep()
        cb.set_model(SimpleNamespace(steps_per_execution=10))
        for now, epoch in ((100.0, 0), (101.0, second_epoch), (102.0, second_epoch)):
            monkeypatch.setattr(callbacks.time, "time", lambda now=now: now)
            cb.on_epoch_begin(epoch)
            cb.on_train_batch_end(9)
        assert cb.ended == pytest.approx(first_step)


def test_speed_knobs_train_a_working_model(tmp_path: Path) -> None:
    """bfloat16 compute, XLA off, 4 steps per call into TensorFlow: still a real training. Its
    checkpoint keeps bfloat16 to go on training in, and is scored in float32: train's test,
    `mnist eval` and a LiteRT export all give the same accuracy."""
    proc = mnist(
        "train", "model=lenet5", "trainer.precision=mixed_bfloat16", "trainer.jit_compile=false",
        "trainer.steps_per_execution=4", "data.limit=2000", "trainer.epochs=1",
        "hydra.run.dir=run", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    m = read_metrics(tmp_path / "run")
    assert m["device"]["precision"] == "mixed_bfloat16"
    assert m["config"]["trainer"]["steps_per_execution"] == 4
    assert m["test"]["accuracy"] > 0.6

    ckpt = tmp_path / "run" / "checkpoints" / "best.keras"
    trained = load_checkpoint(ckpt, with_optimizer=True)  # as it trained, to go on training
    assert trained.layers[0].compute_dtype == "bfloat16"
    assert trained.layers[-1].compute_dtype == "float32"  # the softmax stays float32
    model = load_checkpoint(ckpt)  # to score: in float32, as train tested it
    assert {layer.compute_dtype for layer in model.layers} == {"float32"}
    x = load().x_test[:200, ..., None] / 255.0
    bf16, f32 = trained.predict(x, verbose=0), model.predict(x, verbose=0)
    assert 1e-5 < np.abs(bf16 - f32).max() < 0.05  # the same weights, computed apart

    # eval, and a LiteRT export (whose kernels have no bfloat16), score it as train did
    proc = mnist("eval", f"ckpt={ckpt}", "hydra.run.dir=ev", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = mnist("export", f"ckpt={ckpt}", "format=litert", "hydra.run.dir=lite", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = mnist("eval", "ckpt=lite/model.tflite", "hydra.run.dir=ev_lite", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for ev in ("ev", "ev_lite"):
        assert read_metrics(tmp_path / ev)["test"]["accuracy"] == m["test"]["accuracy"]
