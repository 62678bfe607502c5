"""`mnist train` at another commit against this checkout, by turns, in one run on one machine:
for a change that is no config knob (bench/knob.py measures knobs). Not a test: it prints a
table; BENCHMARKS.md records one with its command.

    python bench/against.py 3c75eb7 model=lenet5_bn optimizer=adam trainer.epochs=2
    python bench/against.py HEAD~1 experiment=fast --repeats 5

The commit is checked out into a temporary git worktree, whose mnistcli package (configs
included) comes first on the path of its runs. wall is the process's, start to exit; start-up
is the run's own (process start to the end of its first training step); epoch 1 includes the
train step's tracing, later epochs do not. Medians over the repeats."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench import HERE, measure


def worktree(rev: str, into: Path) -> None:
    """A checkout of `rev` in `into`, its conf/ where the installed package keeps it."""
    subprocess.run(["git", "-C", str(HERE.parent), "worktree", "add", "--detach", str(into), rev],
                   check=True, capture_output=True)  # fmt: skip
    (into / "mnistcli" / "conf").symlink_to(into / "conf")


def run(code: Path, overrides: list[str], cwd: Path, tag: str) -> dict:
    run_dir = cwd / tag
    cmd = [sys.executable, "-m", "mnistcli", "train", *overrides, f"hydra.run.dir={run_dir}"]
    wall, rss, _ = measure(cmd, cwd, code)
    m = json.loads((run_dir / "metrics.json").read_text())
    seconds = [row["seconds"] for row in m["history"]]
    return {"wall": wall, "startup": m["timing"]["startup_seconds"], "first": seconds[0],
            "later": statistics.median(seconds[1:]) if len(seconds) > 1 else float("nan"),
            "acc": m["test"]["accuracy"], "rss": rss}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the commit to measure against, e.g. HEAD~1")
    parser.add_argument("overrides", nargs="*", help="overrides for mnist train")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    console = Console(width=max(120, Console().width))
    cwd = Path(tempfile.mkdtemp(prefix="mnist-against-"))
    codes = {args.rev: cwd / "code", "this checkout": HERE.parent}
    rows: dict[str, list[dict]] = {name: [] for name in codes}
    try:
        worktree(args.rev, codes[args.rev])  # inside: a failure after `git worktree add` removes it
        for i in range(args.repeats):  # by turns, so drift in the machine hits both alike
            for k, (name, code) in enumerate(codes.items()):
                rows[name].append(run(code, args.overrides, cwd, f"{k}-{i}"))
                r = rows[name][-1]
                console.print(f"#{i + 1} {name}: wall {r['wall']:.2f} s, start-up "
                              f"{r['startup']:.2f} s, epoch 1 {r['first']:.2f} s", highlight=False)  # fmt: skip
    finally:
        subprocess.run(["git", "-C", str(HERE.parent), "worktree", "remove", "--force",
                        str(cwd / "code")], check=False)  # fmt: skip

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in rows[name])

    title = f"mnist train {' '.join(args.overrides)}: median of {args.repeats}"
    table = Table(title=escape(title))  # overrides such as callbacks=[checkpoint] are no markup
    for col in ("code", "wall s", "start-up s", "epoch 1 s", "later epochs s", "test acc", "MiB"):
        table.add_column(col, justify="right")
    for name in codes:
        table.add_row(name, *(f"{med(name, k):.2f}" for k in ("wall", "startup", "first", "later")),
                      f"{med(name, 'acc'):.2%}", f"{med(name, 'rss'):,.0f}")  # fmt: skip
    old, new = codes
    table.add_row("this / " + old, *(f"{med(new, k) / med(old, k):.2f}x"
                                     for k in ("wall", "startup", "first", "later")), "", "")  # fmt: skip
    console.print(table)
    console.print(
        f"rerun: python bench/against.py {args.rev} {' '.join(args.overrides)} "
        f"--repeats {args.repeats}",
        highlight=False,
        markup=False,
    )


if __name__ == "__main__":
    main()
