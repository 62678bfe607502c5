"""Speed and memory of `mnist train` / `mnist eval` against the notebooks' way, in one run on one
machine (issue 4). Not a test: it prints a table; BENCHMARKS.md records one with its command.

    python bench/bench.py                   # 3 models x (notebook, mnist) x 3 repeats, 3 epochs
    python bench/bench.py --repeats 1 --epochs 1 --only lenet5
    python bench/bench.py --only --repeats 1       # only time-to-accuracy, eval and --help

Each measurement runs in its own process, one at a time; images/s is training images per second
of model.fit (validation included, as both do it each epoch), over the whole fit ("fit": its
first epoch's tracing included) and over the epochs after the first ("steady": each way's
throughput once running; start-up is timed on its own); each repeat's epoch seconds are printed
too. Peak memory is the process's maximum resident set size. Medians over the repeats; ratios
are mnist / notebook in this run."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
MNIST = str(Path(sys.executable).with_name("mnist"))
TRAIN_IMAGES = 48_000  # per epoch, both ways: validation_split=0.2 of 60,000
CASES = {  # the notebooks' settings: model, optimizer (Keras defaults), batch size
    "ffnn": ("rmsprop", 32),
    "lenet5": ("sgd", 32),
    "lenet5_bn": ("adam", 64),
}
KERAS_LR = {"adam": 0.001, "rmsprop": 0.001, "sgd": 0.01}  # the notebooks' (Keras's defaults)


def measure(cmd: list[str], cwd: Path, code: Path = HERE.parent) -> tuple[float, float, str]:
    """Run `cmd` with the mnistcli package of the checkout `code` first on the path; return wall
    seconds, peak RSS in MiB and its stdout."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(code)}
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{text[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, text


def steady(epoch_seconds: list[float]) -> float:
    """Training images per second over the epochs after the first (48,000 each: the last 20% of
    the 60,000 validate); over the one epoch when there is only one."""
    later = epoch_seconds[1:] or epoch_seconds
    return TRAIN_IMAGES * len(later) / sum(later)


def notebook(model: str, epochs: int, cwd: Path) -> dict:
    optimizer, batch = CASES[model]
    cmd = [sys.executable, str(HERE / "notebook.py"), model, optimizer, str(batch), str(epochs)]
    seconds, rss, out = measure(cmd, cwd)
    result = json.loads(out.strip().splitlines()[-1])
    return {"ips": result["images_per_second"], "acc": result["test_accuracy"], "rss": rss,
            "steady": steady(result["epoch_seconds"]), "epochs": result["epoch_seconds"]}  # fmt: skip


def mnist_train(model: str, epochs: int, cwd: Path, tag: str, extra: list[str]) -> dict:
    optimizer, batch = CASES[model]
    run_dir = cwd / tag
    cmd = [MNIST, "train", f"model={model}", f"optimizer={optimizer}", "schedule=constant",
           f"optimizer.lr={KERAS_LR[optimizer]}", f"trainer.batch_size={batch}",
           f"trainer.epochs={epochs}", "callbacks=[checkpoint]",
           "split=validation_split", f"hydra.run.dir={run_dir}", *extra]  # fmt: skip
    seconds, rss, _ = measure(cmd, cwd)
    m = json.loads((run_dir / "metrics.json").read_text())
    epoch_seconds = [row["seconds"] for row in m["history"]]
    return {"ips": m["timing"]["samples_per_second"], "acc": m["test"]["accuracy"], "rss": rss,
            "steady": steady(epoch_seconds), "epochs": epoch_seconds, "wall": seconds,
            "ckpt": run_dir / "checkpoints" / "best.keras",
            "startup": m["timing"].get("startup_seconds")}  # fmt: skip


def time_to_accuracy(cwd: Path, tag: str) -> dict:
    """`mnist train experiment=fast`: wall seconds from process start to its end (its test
    accuracy is measured at the end, so it reached it by then), and the accuracy."""
    run_dir = cwd / tag
    seconds, rss, _ = measure([MNIST, "train", "experiment=fast", f"hydra.run.dir={run_dir}"], cwd)
    m = json.loads((run_dir / "metrics.json").read_text())
    return {"seconds": seconds, "acc": m["test"]["accuracy"], "rss": rss,
            "epochs": m["epochs_completed"], "startup": m["timing"]["startup_seconds"],
            "ckpt": run_dir / "checkpoints" / "best.keras"}  # fmt: skip


def notebook_time_to_accuracy(cwd: Path, until: float) -> dict:
    """The notebooks' LeNet-5-BN recipe (adam, batch 64, validation_split 0.2, up to 30 epochs),
    evaluated on the test set after each epoch: seconds from process start until it reaches
    `until`."""
    cmd = [sys.executable, str(HERE / "notebook.py"), "lenet5_bn", "adam", "64", "30",
           "--until", str(until)]  # fmt: skip
    _, rss, out = measure(cmd, cwd)
    reached = json.loads(out.strip().splitlines()[-1])["reached"]
    return {"seconds": reached and reached["seconds"], "epoch": reached and reached["epoch"],
            "acc": reached and reached["accuracy"], "rss": rss}  # fmt: skip


def rate(row: dict) -> str:
    return f"{row['ips']:.0f} ({row['steady']:.0f})"


def median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=list(CASES))
    parser.add_argument("--extra", nargs="*", default=[], help="overrides for mnist train")
    parser.add_argument("--also", nargs="*", default=[],
                        help="overrides for a second mnist train per repeat, a row of its own")  # fmt: skip
    parser.add_argument("--skip", nargs="*", default=[], choices=["time-to-accuracy", "others"],
                        help="leave out the time-to-accuracy table or the other timings")  # fmt: skip
    args = parser.parse_args()
    console = Console(width=max(160, Console().width))
    cwd = Path(tempfile.mkdtemp(prefix="mnist-bench-"))

    table = Table(title=f"training throughput, {args.epochs} epochs, median of {args.repeats}")
    for col in ("model", "batch", "notebook img/s: fit / steady", "mnist img/s: fit / steady",
                "ratio: fit / steady", "notebook acc", "mnist acc", "notebook MiB", "mnist MiB"):  # fmt: skip
        table.add_column(col, justify="right")
    lenet5_ckpt = None
    for model in args.only:
        nb, mn, also = [], [], []
        for i in range(args.repeats):  # alternate, so drift in the machine hits all alike
            nb.append(notebook(model, args.epochs, cwd))
            mn.append(mnist_train(model, args.epochs, cwd, f"{model}-{i}", args.extra))
            line = f"{model} #{i + 1} img/s, fit (steady): notebook {rate(nb[-1])}, mnist "
            line += rate(mn[-1])
            if args.also:
                extra = [*args.extra, *args.also]
                also.append(mnist_train(model, args.epochs, cwd, f"{model}-also-{i}", extra))
                line += f", mnist {' '.join(args.also)} {rate(also[-1])}"
            console.print(line, highlight=False)
            for way, row in (("notebook", nb[-1]), ("mnist", mn[-1])):
                seconds = " ".join(f"{s:.1f}" for s in row["epochs"])
                console.print(f"    {way} epochs, s: {seconds}", highlight=False)
        if model == "lenet5":
            lenet5_ckpt = mn[0]["ckpt"]
        for name, runs in ((model, mn), (f"{model} {' '.join(args.also)}", also)):
            if runs:
                table.add_row(
                    name, str(CASES[model][1]),
                    f"{median(nb, 'ips'):,.0f} / {median(nb, 'steady'):,.0f}",
                    f"{median(runs, 'ips'):,.0f} / {median(runs, 'steady'):,.0f}",
                    f"{median(runs, 'ips') / median(nb, 'ips'):.2f}x / "
                    f"{median(runs, 'steady') / median(nb, 'steady'):.2f}x",
                    f"{median(nb, 'acc'):.2%}", f"{median(runs, 'acc'):.2%}",
                    f"{median(nb, 'rss'):,.0f}", f"{median(runs, 'rss'):,.0f}",
                )  # fmt: skip

    if args.only:
        console.print(table)
    if "time-to-accuracy" not in args.skip:
        time_to_accuracy_table(console, cwd, args.repeats)
    if "others" not in args.skip:
        other_timings(console, cwd, lenet5_ckpt)
    console.print(f"rerun: python bench/bench.py --epochs {args.epochs} --repeats {args.repeats}"
                  f" --only {' '.join(args.only)}"
                  + "".join(f" --{k} {' '.join(v)}" for k, v in
                            (("extra", args.extra), ("also", args.also), ("skip", args.skip)) if v),
                  highlight=False)  # fmt: skip


def time_to_accuracy_table(console: Console, cwd: Path, repeats: int) -> None:
    """`experiment=fast` against the notebooks' LeNet-5-BN recipe, `repeats` times each."""
    tta = Table(title=f"time to >= 99.0% test accuracy, wall from process start, {repeats} runs")
    for col in ("run", "seconds", "test acc", "epochs", "start-up s", "MiB"):
        tta.add_column(col, justify="right")
    fast, nb = [], []
    for i in range(repeats):
        fast.append(time_to_accuracy(cwd, f"fast-{i}"))
        nb.append(notebook_time_to_accuracy(cwd, 0.99))
        tta.add_row(f"mnist train experiment=fast #{i + 1}", f"{fast[-1]['seconds']:.1f}",
                    f"{fast[-1]['acc']:.2%}", str(fast[-1]["epochs"]), f"{fast[-1]['startup']:.1f}", f"{fast[-1]['rss']:,.0f}")  # fmt: skip
        tta.add_row(f"notebook lenet5_bn recipe #{i + 1}",
                    f"{nb[-1]['seconds']:.1f}" if nb[-1]["seconds"] else "not reached",
                    f"{nb[-1]['acc']:.2%}" if nb[-1]["acc"] else "-", str(nb[-1]["epoch"]),
                    "-", f"{nb[-1]['rss']:,.0f}")  # fmt: skip
    reached = [r["seconds"] for r in nb if r["seconds"]]
    if reached:
        ratio = statistics.median(reached) / median(fast, "seconds")
        tta.caption = (f"median: fast {median(fast, 'seconds'):.1f} s, notebook "
                       f"{statistics.median(reached):.1f} s: {ratio:.2f}x sooner")  # fmt: skip
    console.print(tta)


def other_timings(console: Console, cwd: Path, lenet5_ckpt: Path | None) -> None:
    """`mnist --help`, and `mnist eval` of a LeNet-5 checkpoint and of its LiteRT export."""
    if lenet5_ckpt is None:  # eval times a LeNet-5 checkpoint: one epoch on 5,000 images
        lenet5_ckpt = mnist_train("lenet5", 1, cwd, "lenet5-for-eval", ["data.limit=5000"])["ckpt"]

    other = Table(title="other timings (wall, from process start)")
    other.add_column("what")
    other.add_column("seconds", justify="right")
    other.add_column("peak MiB", justify="right")
    other.add_column("note")
    helps = [measure([MNIST, "--help"], cwd) for _ in range(5)]
    other.add_row("mnist --help", f"{statistics.median(h[0] for h in helps):.2f}",
                  f"{max(h[1] for h in helps):,.0f}", "median of 5")  # fmt: skip
    if lenet5_ckpt:
        # the checkpoint through Keras (TensorFlow), and its LiteRT export through LiteRT,
        # taking turns so that both see the same machine
        measure([MNIST, "export", f"ckpt={lenet5_ckpt}", "format=litert",
                 f"hydra.run.dir={cwd}/litert"], cwd)  # fmt: skip
        tflite = cwd / "litert" / "model.tflite"
        evals: dict[str, list] = {"keras": [], "litert": []}
        for i in range(5):
            for kind, ckpt in (("keras", lenet5_ckpt), ("litert", tflite)):
                evals[kind].append(measure([MNIST, "eval", f"ckpt={ckpt}",
                                            f"hydra.run.dir={cwd}/eval-{kind}{i}"], cwd))  # fmt: skip
        seconds = {k: statistics.median(e[0] for e in v) for k, v in evals.items()}
        for kind, what in (("keras", lenet5_ckpt.name), ("litert", "its LiteRT export")):
            note = "median of 5" + (f"; {seconds['keras'] / seconds['litert']:.2f}x sooner"
                                    if kind == "litert" else "")  # fmt: skip
            other.add_row(f"mnist eval, LeNet-5 {what}, 10,000 images", f"{seconds[kind]:.2f}",
                          f"{max(e[1] for e in evals[kind]):,.0f}", note)  # fmt: skip
    console.print(other)


if __name__ == "__main__":
    main()
