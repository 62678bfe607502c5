"""One knob against the default, in one run on one machine: `mnist train experiment=E` with and
without OVERRIDES, by turns, for each preset E (issue 4: "measure both, keep what wins"). Not a
test: it prints a table; BENCHMARKS.md records one with its command.

    python bench/knob.py --knob trainer.jit_compile=true --presets ffnn mlp_l2 mlp_improved
    python bench/knob.py --knob trainer.steps_per_execution=16 --presets lenet5_bn --epochs 1
    python bench/knob.py --knob trainer.jit_compile=true --presets mlp_improved --extra model.dropout=0

images/s: "fit" is the whole `model.fit` (validation and, for XLA, compiling included), "steady"
the epochs after the first (as bench/bench.py); wall is the process's, from start to exit.
Medians over the repeats; ratio is knob / default in this run."""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import MNIST, measure, steady


def run(preset: str, epochs: int, cwd: Path, tag: str, overrides: list[str]) -> dict:
    run_dir = cwd / tag
    cmd = [MNIST, "train", f"experiment={preset}", f"trainer.epochs={epochs}",
           f"hydra.run.dir={run_dir}", *overrides]  # fmt: skip
    wall, rss, _ = measure(cmd, cwd)
    m = json.loads((run_dir / "metrics.json").read_text())
    return {"ips": m["timing"]["samples_per_second"], "acc": m["test"]["accuracy"], "rss": rss,
            "wall": wall, "batch": m["config"]["trainer"]["batch_size"],
            "steady": steady([row["seconds"] for row in m["history"]])}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--knob", nargs="+", required=True, help="overrides under test")
    parser.add_argument("--presets", nargs="+", required=True, help="experiment presets")
    parser.add_argument("--extra", nargs="*", default=[], help="overrides for both runs")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    console = Console(width=max(160, Console().width))
    cwd = Path(tempfile.mkdtemp(prefix="mnist-knob-"))
    knob = " ".join(args.knob)

    both = f", both with {' '.join(args.extra)}" if args.extra else ""
    table = Table(title=f"{knob} against the default{both}, {args.epochs} epochs, median of "
                  f"{args.repeats}")  # fmt: skip
    for col in ("experiment", "batch", "default img/s: fit / steady", "knob img/s: fit / steady",
                "ratio: fit / steady", "per repeat, steady",
                "wall s: default / knob", "test acc: default / knob", "MiB: default / knob"):  # fmt: skip
        table.add_column(col, justify="right")
    for preset in args.presets:
        base, tuned = [], []
        for i in range(args.repeats):  # by turns, so drift in the machine hits both alike
            base.append(run(preset, args.epochs, cwd, f"{preset}-{i}", args.extra))
            tuned.append(
                run(preset, args.epochs, cwd, f"{preset}-knob-{i}", [*args.extra, *args.knob])
            )
            console.print(f"{preset} #{i + 1}: {base[-1]['ips']:.0f} img/s, with {knob} "
                          f"{tuned[-1]['ips']:.0f}", highlight=False)  # fmt: skip

        def med(rows: list[dict], key: str) -> float:
            return statistics.median(r[key] for r in rows)

        table.add_row(
            preset, str(base[0]["batch"]),
            f"{med(base, 'ips'):,.0f} / {med(base, 'steady'):,.0f}",
            f"{med(tuned, 'ips'):,.0f} / {med(tuned, 'steady'):,.0f}",
            f"{med(tuned, 'ips') / med(base, 'ips'):.2f}x / "
            f"{med(tuned, 'steady') / med(base, 'steady'):.2f}x",
            " / ".join(f"{t['steady'] / b['steady']:.2f}" for b, t in zip(base, tuned, strict=True)),
            f"{med(base, 'wall'):.1f} / {med(tuned, 'wall'):.1f}",
            f"{med(base, 'acc'):.2%} / {med(tuned, 'acc'):.2%}",
            f"{med(base, 'rss'):,.0f} / {med(tuned, 'rss'):,.0f}",
        )  # fmt: skip
    console.print(table)
    console.print(f"rerun: python bench/knob.py --knob {knob} --presets {' '.join(args.presets)} "
                  f"--epochs {args.epochs} --repeats {args.repeats}"
                  + (f" --extra {' '.join(args.extra)}" if args.extra else ""), highlight=False)  # fmt: skip


if __name__ == "__main__":
    main()
