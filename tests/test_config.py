"""Every config group composes; the CLI's help and config errors are fast, TensorFlow-free and
end in one clear line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module

from conftest import (
    assert_user_error,
    composed,
    imports_tensorflow,
    mnist,
    mnist_imports,
    read_metrics,
)
from mnistcli.checks import CHECKS

CONF = Path(__file__).resolve().parents[1] / "conf"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "group, option",
    [
        (g, o)
        for g in ("model", "optimizer", "split", "schedule", "augment", "experiment")
        for o in options(g)
    ],
)
def test_every_group_option_composes_and_passes_checks(group: str, option: str) -> None:
    cfg = composed(f"{group}={option}")
    CHECKS["train"](cfg)
    if group in ("model", "optimizer", "split", "schedule", "augment"):
        assert cfg[group].name == option


@pytest.mark.parametrize("callback", options("callbacks"))
def test_each_callback_switches_on_alone(callback: str) -> None:
    cfg = composed(f"callbacks=[{callback}]", "schedule=constant")
    assert list(cfg.callbacks) == [callback]
    CHECKS["train"](cfg)


def test_defaults_and_overridable_callback_parameters() -> None:
    cfg = composed("callbacks.early_stopping.patience=5")
    assert list(cfg.callbacks) == ["checkpoint", "early_stopping", "terminate_on_nan"]
    assert cfg.callbacks.early_stopping.patience == 5
    assert cfg.callbacks.checkpoint.monitor == "val_loss"
    assert composed("callbacks=[]").get("callbacks") is None
    plateau = composed("callbacks=[reduce_lr]", "schedule=constant").callbacks.reduce_lr
    assert (plateau.factor, plateau.patience) == (0.2, 2)


def test_optimizer_defaults_and_lr_for_all() -> None:
    sgd = composed("optimizer=sgd").optimizer
    assert (sgd.lr, sgd.momentum, sgd.nesterov) == (0.01, 0.0, False)
    assert composed("optimizer=adam").optimizer.lr == 0.003  # the default run's
    assert composed("optimizer=rmsprop").optimizer.lr == 0.001
    for name in ("adam", "rmsprop"):
        assert composed(f"optimizer={name}", "optimizer.lr=0.05").optimizer.lr == 0.05


@pytest.mark.parametrize(
    "experiment, model, optimizer, batch, epochs, split",
    [
        ("ffnn", "ffnn", "rmsprop", 32, 100, "validation_split"),
        ("lenet5", "lenet5", "sgd", 32, 50, "validation_split"),
        ("lenet5_classic", "lenet5_classic", "adam", 128, 20, "holdout"),
        ("lenet5_bn", "lenet5_bn", "adam", 64, 30, "validation_split"),
        ("mlp_l2", "ffnn", "sgd", 128, 40, "validation_split"),
        ("cnn_v2", "cnn_v2", "adam", 64, 30, "validation_split"),
    ],
)
def test_experiment_presets_reproduce_the_notebooks(
    experiment: str, model: str, optimizer: str, batch: int, epochs: int, split: str
) -> None:
    cfg = composed(f"experiment={experiment}")
    assert cfg.model.name == model and cfg.optimizer.name == optimizer
    assert (cfg.trainer.batch_size, cfg.trainer.epochs, cfg.split.name) == (batch, epochs, split)
    assert cfg.schedule.name == "constant"
    if optimizer in ("adam", "rmsprop"):
        assert cfg.optimizer.lr == 0.001  # Keras's default, as the notebooks had it
    # a preset is a starting point: command-line overrides still win
    assert composed(f"experiment={experiment}", "trainer.epochs=1").trainer.epochs == 1


def test_cnn_v2_preset_augments_as_the_notebooks_image_data_generator() -> None:
    """ImageDataGenerator(rotation_range=10, zoom_range=0.1, width_shift_range=0.1,
    height_shift_range=0.1) drew the height's and the width's zoom apart."""
    augment = composed("experiment=cnn_v2").augment
    assert augment.name == "notebook" and not augment.keep_aspect
    assert (augment.rotation_degrees, augment.zoom, augment.shift) == (10, 0.1, 0.1)
    assert augment.fill_mode == "constant"  # the constant fill, not Keras's reflection
    # the improved presets keep the one zoom their RESULTS.md rows were made with
    assert composed("experiment=cnn_v2_wide_one_pass").augment.keep_aspect


def test_l2_sweep_preset_holds_the_whole_study() -> None:
    """15 jobs: np.linspace(1e-6, 1e-3, 5) x seeds 0-2 on the 500-300 MLP, Hinton's line."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    with initialize_config_module("mnistcli.conf", version_base="1.3"):
        cfg = compose("train", overrides=["experiment=l2_sweep"], return_hydra_config=True)
    params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()]
    (jobs,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(params), None)
    assert len(jobs) == 15
    l2s = sorted({float(job[0].split("=")[1]) for job in jobs})
    assert l2s == pytest.approx(list(np.linspace(1e-6, 1e-3, 5)), rel=1e-12)
    assert sorted({job[1] for job in jobs}) == ["seed=0", "seed=1", "seed=2"]
    assert list(cfg.model.hidden) == [500, 300] and cfg.model.activation == "relu"
    assert (cfg.optimizer.name, cfg.optimizer.lr, cfg.trainer.batch_size) == ("sgd", 0.1, 128)
    assert cfg.trainer.epochs == 40
    assert cfg.report.reference == {"notebook (best)": 0.9833, "Hinton (2012)": 0.9847}


def test_cnn_v2_wide_is_the_improved_recipe_on_a_wider_net() -> None:
    wide, improved = composed("experiment=cnn_v2_wide"), composed("experiment=cnn_v2_improved")
    assert (wide.model.width, improved.model.width) == (1.5, 1.0)
    wide.model.width = 1.0
    assert wide == improved


def test_cnn_v2_one_pass_is_the_improved_recipe_augmented_in_one_pass() -> None:
    one_pass, improved = (
        composed("experiment=cnn_v2_one_pass"),
        composed("experiment=cnn_v2_improved"),
    )
    assert improved.augment.name == "notebook" and "one_pass" not in improved.augment
    assert one_pass.augment == {**improved.augment, "name": "one_pass", "one_pass": True,
                                "elastic_alpha": 0, "elastic_sigma": 4}  # fmt: skip
    one_pass.augment = improved.augment
    assert one_pass == improved


def test_every_preset_that_averages_weights_gives_them_their_own_batch_norm_statistics() -> None:
    """RESULTS.md's rows of these presets were all made again once trainer.ema_bn_images existed,
    so none pins Keras's way (0) any more; plain runs recompute the statistics too."""
    trainers = {e: composed(f"experiment={e}").trainer for e in options("experiment")}
    averaging = {e: t.ema_bn_images for e, t in trainers.items() if t.ema}
    assert list(averaging) == ["cnn_v2_improved", "cnn_v2_one_pass", "cnn_v2_wide",
                               "cnn_v2_wide_one_pass", "cnn_v3", "lenet5_bn_improved",
                               "mlp_improved"]  # fmt: skip
    assert set(averaging.values()) == {5000}
    assert composed().trainer.ema_bn_images == 5000
    assert composed("experiment=lenet5_bn_improved").augment.name == "one_pass"


def test_cnn_v2_wide_one_pass_is_the_one_pass_recipe_on_the_wider_net() -> None:
    wide, one_pass = (
        composed("experiment=cnn_v2_wide_one_pass"),
        composed("experiment=cnn_v2_one_pass"),
    )
    assert (wide.model.width, one_pass.model.width) == (1.5, 1.0)
    assert wide.augment.name == "one_pass"
    wide.model.width = 1.0
    assert wide == one_pass


def test_top_help_lists_subcommands(tmp_path: Path) -> None:
    proc = mnist("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for sub in ("train", "eval", "summary", "report"):
        assert f"\n  {sub} " in proc.stdout
    assert "mnist train resume=" in proc.stdout


def test_train_help_shows_groups_and_options(tmp_path: Path) -> None:
    proc = mnist("train", "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for text in (
        "model: cnn_v2, cnn_v3, ffnn, lenet5, lenet5_bn, lenet5_classic, strided_cnn",
        "optimizer:",
        "split:",
    ):
        assert text in proc.stdout
    assert not (tmp_path / "outputs").exists()


def test_info_shows_the_packaged_search_path(tmp_path: Path) -> None:
    proc = mnist("train", "--info", "searchpath", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "pkg://mnistcli.conf" in proc.stdout


@pytest.mark.parametrize("task", ["eval", "predict", "export", "report"])
def test_cfg_job_lists_the_keys_before_the_required_ones_are_given(
    task: str, tmp_path: Path
) -> None:
    """The one-line errors say "`mnist eval --cfg job` lists the keys": it must, with the values
    that have to be given shown as Hydra shows them, ???."""
    proc = mnist(task, "--cfg", "job", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert ("path: ???" if task == "report" else "ckpt: ???") in proc.stdout
    assert_user_error(mnist(task, "--cfg", "job", "nokey=1", cwd=tmp_path), "no key nokey")


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["train", "--help"],
        ["train", "model=nope"],
        ["eval", "ckpt=missing.keras"],
        ["report", "missing"],
        ["predict", "images=a.png"],
        ["export", "ckpt=missing.keras"],
        ["summary", "diagram=net.txt"],
        ["train", "-m", "experiment=l2_sweep", "optimizer.lr=0"],
        ["train", "model=lenet5", "+model.width=2"],
        ["train", "+trainer.epoch=3"],
        ["eval", "--cfg", "job"],
    ],
)
def test_no_tensorflow_import(args: list[str], tmp_path: Path) -> None:
    _, imported = mnist_imports(*args, cwd=tmp_path)
    assert "hydra" in imported  # the trace is real
    assert not imports_tensorflow(imported)


@pytest.mark.parametrize(
    "args, words",
    [
        (["train", "model=nope"], ["unknown model 'nope'", "lenet5_bn"]),
        (["train", "optimizer=nope"], ["unknown optimizer 'nope'", "sgd"]),
        (["train", "experiment=nope"], ["unknown experiment 'nope'"]),
        (["train", "trainer.epochz=3"], ["no key trainer.epochz", "did you mean trainer.epochs?"]),
        (["train", "trainer.lr=0.1"], ["did you mean optimizer.lr?"]),  # the same name elsewhere
        (["train", "epochs=3"], ["did you mean trainer.epochs?"]),
        # a key added with + that nothing would read: refused, not ignored in silence
        (["train", "+trainer.epoch=3"], ["+trainer.epoch=3 would do nothing", "trainer.epochs?"]),
        (["train", "augment=notebook", "+augment.zooom=0.2"], ["did you mean augment.zoom?"]),
        (["train", "augment=elastic", "augment.elastic_sigma=0"], ["augment.elastic_sigma", "> 0"]),
        (["train", "augment=one_pass", "augment.fill_mode=reflect"], ["fill_mode", "constant"]),
        (["train", "augment=notebook", "augment.keep_aspect=no"], ["keep_aspect", "true or false"]),
        (["train", "+foo=1"], ["no key foo", "--cfg job"]),
        (["eval", "+ckp=run/checkpoints/best.keras"], ["no key ckp", "did you mean ckpt?"]),
        (["train", "+experiment=fast"], ["experiment is chosen already", "experiment=NAME"]),
        (["train", "trainer.epochs=ten"], ["trainer.epochs", "'ten'"]),
        (["train", "trainer.epochs=0"], ["trainer.epochs"]),
        (["train", "trainer.batch_size=-1"], ["trainer.batch_size"]),
        (["train", "optimizer.lr=0"], ["optimizer.lr"]),
        (["train", "model.l2=-1"], ["model.l2"]),
        (["train", "model=ffnn", "model.dropout=1"], ["model.dropout"]),
        (["summary", "model=ffnn", "model.activation=foo"], ["model.activation", "'foo'", "relu"]),
        (["train", "model.batchnorm=fused"], ["model.batchnorm", "fast, keras", "'fused'"]),
        (
            ["train", "model=lenet5", "+model.width=2"],
            ["model lenet5 has no key width", "takes l2"],
        ),
        (["train", "split.fraction=1.5"], ["split.fraction"]),
        (["train", "callbacks=null"], ["callbacks=null", "early_stopping", "callbacks=[]"]),
        (["train", "model=null"], ["model=null", "lenet5_bn", "pass one of them"]),
        (["train", "experiment=null"], ["experiment=null", "leave experiment= out"]),
        (["train", "hydra/launcher=null"], ["hydra/launcher=null", "mnist train --help"]),
        (["eval", "augment=null"], ["mnist eval has no config group augment"]),
        (["train", "~model"], ["no model is chosen", "model=lenet5_bn"]),
        (["train", "model=3"], ["model=3 names no model", "lenet5_bn"]),
        (["train", "trainer=fast"], ["trainer=fast: trainer is a section", "trainer.epochs="]),
        (["eval", "data=2"], ["data=2: data is a section", "data.path="]),
        (["train", "data.limit=10"], ["data.limit=10 is less than one batch", "batch_size=128"]),
        (["train", "data.limit=0"], ["data.limit must be a whole number >= 1"]),
        (["train", "data.limit=500", "split=holdout"], ["holds out the last 10000", "only 500"]),
        (["train", "data.limit=200", "split.fraction=0.001"], ["no training or no validation"]),
        (["train", "logger=tensorboard", "logger.update_freq=foo"], ["epoch, batch or"]),
        (["train", "logger=tensorboard", "logger.histogram_freq=-1"], ["logger.histogram_freq"]),
        (["train", "logger=tensorboard", "logger.write_graph=maybe"], ["true or false"]),
        (["train", "data.path=/no/such/file.npz"], ["data.path", "does not exist"]),
        (["train", "device=tpu"], ["device"]),
        (["train", "trainer.precision=fp8"], ["trainer.precision", "mixed_bfloat16"]),
        (["train", "trainer.jit_compile=maybe"], ["trainer.jit_compile"]),
        (["train", "trainer.steps_per_execution=0"], ["trainer.steps_per_execution"]),
        (["train", "runtime.threads=0"], ["runtime.threads"]),
        (["train", "trainer.shards=0"], ["trainer.shards", "auto or a whole number"]),
        (["train", "trainer.shards=2", "runtime.logical_cpus=2"], ["trainer.shards=1"]),
        (["train", "callbacks=[reduce_lr]"], ["reduce_lr", "schedule=constant"]),
        (["train", "+optimizer.clipnorm=abc"], ["optimizer.clipnorm", "'abc'", "=1.0"]),
        (["train", "optimizer=sgd", "optimizer.nesterov=yes"], ["optimizer.nesterov=false"]),
        (["train", "+callbacks.checkpoint.every=2"], ["checkpoint has no key every", "monitor"]),
        (["train", "callbacks.checkpoint.mode=auto"], ["callbacks.checkpoint.mode", "min, max"]),
        (["train", "callbacks=[early_stopping]", "callbacks.early_stopping.mode=up"], ["auto"]),
        (["train", "trainer.deterministic=maybe"], ["trainer.deterministic", "true or false"]),
        (
            ["train", "callbacks=[reduce_lr]", "schedule=constant", "callbacks.reduce_lr.min_lr=x"],
            ["callbacks.reduce_lr.min_lr", "number or true/false", "min_lr=0.0"],
        ),
        (["train", "-m", "seed=0,1", "model=lenet5,nope"], ["unknown model 'nope'"]),
        (
            ["train", "-m", "model=ffnn,lenet5", "model.hidden=[64]"],
            ["in the sweep's job model=lenet5 model.hidden=[64]: ", "no key model.hidden"],
        ),
        (["frobnicate"], ["unknown subcommand"]),
        (["eval", "ckpt=runs/a=b"], ["cannot parse the override", "quote", "ckpt='runs/a=b'"]),
        (["train", "seed=0,1"], ["seed=0,1: a comma sweeps", "mnist train -m seed=0,1"]),
        (["-sc"], ["install=SHELL", "mnist -sc install=bash"]),
        (["train", "-sc", "install=tcsh"], ["bash, zsh, fish", "'install=tcsh'"]),
        (["--shell-completion=nope"], ["--shell-completion takes", "'nope'"]),
        (["eval"], ["ckpt="]),
        (["eval", "ckpt=missing.keras"], ["missing.keras", "does not exist"]),
        (["eval", "ckpt=."], ["folder with no checkpoints/best.keras or model.tflite"]),
        (["export", "ckpt=."], ["folder with no checkpoints/best.keras in it", "run's dir"]),
    ],
)
def test_user_errors_are_one_line(args: list[str], words: list[str], tmp_path: Path) -> None:
    assert_user_error(mnist(*args, cwd=tmp_path), *words)
    assert not (tmp_path / "outputs").exists()


def test_unwritable_output_folder_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    assert_user_error(mnist("train", "hydra.run.dir=afile/run", cwd=tmp_path), "is a file")
    proc = mnist("train", "-m", "seed=0,1", "hydra.sweep.dir=afile/x", cwd=tmp_path)
    assert_user_error(proc, "hydra.sweep.dir")
    # a folder access() says is writable but that takes no new folders (Linux's /proc)
    proc = mnist("show", "hydra.run.dir=/proc/mnist-run", cwd=tmp_path)
    assert_user_error(proc, "cannot create folders in /proc", "set hydra.run.dir elsewhere")


def test_a_folder_holding_other_files_is_not_a_run_dir(tmp_path: Path) -> None:
    """hydra.run.dir=. in a project's folder would mix the run's files with the project's and
    write over its curves.png; a sweep's folder likewise (summary.csv, report.md)."""
    (tmp_path / "curves.png").write_bytes(b"mine")
    (tmp_path / ".hidden").write_text("")
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = mnist("train", "hydra.run.dir=.", cwd=tmp_path)
    assert_user_error(
        proc, "hydra.run.dir=. already holds other files (curves.png)", "new or empty"
    )
    proc = mnist("train", "-m", "seed=0,1", "hydra.sweep.dir=.", cwd=tmp_path)
    assert_user_error(proc, "hydra.sweep.dir=. already holds other files")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "curves.png").read_bytes() == b"mine"
    (tmp_path / "empty").mkdir()  # a new or empty folder (hidden files aside) is fine
    (tmp_path / "empty" / ".keep").write_text("")
    proc = mnist("show", "hydra.run.dir=empty", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_multirun_flag_may_follow_overrides(tmp_path: Path) -> None:
    """`mnist train seed=0,1 -m ...` is a sweep, as with -m first (Hydra's parser alone refused
    overrides on both sides of it): here the sweep's own folder is the one checked."""
    (tmp_path / "afile").write_text("")
    proc = mnist("train", "seed=0,1", "-m", "hydra.sweep.dir=afile/x", cwd=tmp_path)
    assert_user_error(proc, "hydra.sweep.dir")


def test_bad_data_file_is_one_line(tmp_path: Path) -> None:
    """The npz is read (and refused) by the job: one line, exit 2; the run dir Hydra made has the
    reason in its train.log and a metrics.json that says it failed, so `mnist report` lists it as
    failed rather than as a run to resume, and resuming it is refused."""
    x = np.zeros((300, 28, 28), np.uint8)
    np.savez(tmp_path / "bad.npz", x_train=x, y_train=np.full(300, 11, np.uint8),
             x_test=x[:10], y_test=np.zeros(10, np.uint8))  # fmt: skip
    proc = mnist("train", "data.path=bad.npz", "hydra.run.dir=run", cwd=tmp_path)
    assert_user_error(proc, "bad.npz", "0-9")
    message = proc.stderr.strip()[len("mnist: error: ") :]
    (line,) = (tmp_path / "run" / "train.log").read_text().splitlines()
    assert "[mnistcli.run][ERROR] - " in line and line.endswith(message)
    record = read_metrics(tmp_path / "run")
    assert (record["status"], record["error"]) == ("failed", message)
    assert record["config"]["data"]["path"] == "bad.npz"
    report = mnist("report", "run", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "mnist train: lenet5_bn (failed)" in report.stdout and "bad.npz" in report.stdout
    assert "resume" not in report.stdout + report.stderr
    assert_user_error(mnist("train", "resume=run", cwd=tmp_path), "run failed", "new run")


@pytest.mark.parametrize(
    "override, words",
    [
        ("+optimizer.foo=1", ["optimizer adam (Adam)", "foo", "+optimizer"]),
        ("+callbacks.early_stopping.foo=1", ["callbacks.early_stopping", "foo", "+callbacks"]),
    ],
)
def test_a_key_keras_does_not_take_is_one_line(
    override: str, words: list[str], tmp_path: Path
) -> None:
    """optimizer and callbacks keys go to their Keras class, which refuses one it does not take
    (+optimizer.clipnorm=1.0 works): after TensorFlow loads, but one line all the same."""
    proc = mnist("train", override, "data.limit=1000", "hydra.run.dir=run", cwd=tmp_path)
    assert_user_error(proc, *words)
    assert read_metrics(tmp_path / "run")["status"] == "failed"  # not a run to resume


def test_keys_added_for_keras_reach_it(tmp_path: Path) -> None:
    """EarlyStopping's start_from_epoch leaves its `best` unset for the first epochs: the
    per-epoch resume state must cope (it was a traceback)."""
    proc = mnist("train", "model=ffnn", "+optimizer.clipnorm=1.0", "data.limit=1000",
                 "+callbacks.early_stopping.start_from_epoch=2", "trainer.epochs=2",
                 "hydra.run.dir=run", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    m = read_metrics(tmp_path / "run")
    assert m["status"] == "completed" and m["epochs_completed"] == 2
    assert m["config"]["optimizer"]["clipnorm"] == 1.0
    assert m["config"]["callbacks"]["early_stopping"]["start_from_epoch"] == 2


def test_bad_checkpoints_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "folder.keras").mkdir()
    (tmp_path / "text.keras").write_text("not a zip")
    assert_user_error(mnist("eval", "ckpt=folder.keras", cwd=tmp_path), "folder")
    assert_user_error(mnist("eval", "ckpt=text.keras", cwd=tmp_path), "not a Keras archive")
    (tmp_path / "sweep" / "3" / "checkpoints").mkdir(parents=True)
    (tmp_path / "sweep" / "3" / "checkpoints" / "best.keras").write_text("")
    assert_user_error(mnist("eval", "ckpt=sweep", cwd=tmp_path), "one job's dir, e.g. sweep/3")
