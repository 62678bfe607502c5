"""Where a notebook's one printed test accuracy sits: a notebook preset's recipe trained the
notebooks' way (bench/notebook.py: the arrays into model.fit, validation_split 0.2, the preset's
model, optimizer, learning rate, batch and epochs, Keras's defaults otherwise), the test set scored
after every epoch, per seed. A notebook prints one number from one run, from its last epoch or from
a best epoch it does not name; this shows how far that number moves between seeds and between
epochs, so a gap to it can be read against that spread.

    python bench/notebook_spread.py lenet5_bn --seeds 0 1 2
    python bench/notebook_spread.py mlp_l2 --seeds 0 1 2 --case model.l2=1e-6 --case model.l2=1e-3
    python bench/notebook_spread.py mlp_l2 --validation-split 0    # trained on all 60,000 images

Per case (the preset with its overrides) and seed: the test accuracy of the last epoch (what a
notebook prints after fit), of the best val_loss epoch (what the preset's checkpoint keeps), and
the highest of any epoch (what a number picked by looking at the test set after every epoch
would be), beside the preset's report.reference. The test set selects nothing in the product;
here it is only looked at. A diagnostic, not a test; RESULTS.md records its tables."""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from hydra import compose, initialize_config_module  # noqa: E402
from notebook import TestEachEpoch, arrays, fit_notebook_way  # noqa: E402  (the notebooks' way)
from omegaconf import DictConfig, OmegaConf  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from mnistcli.checks import CONFIG_MODULE  # noqa: E402
from mnistcli.models import build_model  # noqa: E402
from mnistcli.optimizers import build_optimizer  # noqa: E402
from mnistcli.report import mean_std, references  # noqa: E402


def recipe(experiment: str, overrides: list[str]) -> DictConfig:
    """The preset composed as `mnist train experiment=... overrides` would; only a notebook's
    recipe (no augmentation, schedule, smoothing, averaging or callback that changes training,
    such as early stopping) can be trained the notebooks' way."""
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}", *overrides])
    notebook_way = (
        cfg.split.name == "validation_split"
        and cfg.split.fraction == 0.2
        and cfg.augment.name == "none"
        and cfg.schedule.name == "constant"
        and not cfg.trainer.label_smoothing
        and cfg.trainer.ema is None
        and set(cfg.get("callbacks") or {}) <= {"checkpoint", "terminate_on_nan"}
    )
    if not notebook_way:
        raise SystemExit(
            f"experiment={experiment} needs more than bench/notebook.py's plain fit (another split, "
            "augmentation, a schedule, smoothing, averaging or early stopping); try lenet5_bn, "
            "mlp_l2 or lenet5"
        )
    return cfg


def run(cfg: DictConfig, seed: int, data: tuple, split: float) -> dict[str, list[float]]:
    """One seed: validation loss (if `split`) and test accuracy after every epoch."""
    _, _, x_test, y_test = data
    curve: dict[str, list[float]] = {"val_loss": [], "test": []}

    def then(epoch: int, accuracy: float, logs: dict) -> bool:
        if "val_loss" in logs:
            curve["val_loss"].append(float(logs["val_loss"]))
        curve["test"].append(accuracy)
        return False

    model_cfg = OmegaConf.to_container(cfg.model)
    optimizer_cfg = OmegaConf.to_container(cfg.optimizer)
    fit_notebook_way(
        lambda: build_model(**model_cfg),
        build_optimizer(**optimizer_cfg),
        cfg.trainer.batch_size,
        cfg.trainer.epochs,
        data,
        seed=seed,
        callbacks=[TestEachEpoch(x_test, y_test, then)],
        validation_split=split,
    )
    return curve


def percent(values: list[float]) -> str:
    """mean ± std (n - 1) as percentages, as `mnist report` gives them; "-" for none."""
    mean, std = mean_std(values)
    if mean is None:
        return "-"
    return f"{mean:.2%}" + ("" if std is None else f" ± {std:.2%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", help="a notebook preset, e.g. lenet5_bn or mlp_l2")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--case", action="append", default=[], metavar="OVERRIDES",
                        help="space-separated overrides for one case; repeat for more")  # fmt: skip
    parser.add_argument("--epochs", type=int, help="instead of the preset's")
    parser.add_argument("--validation-split", type=float, default=0.2,
                        help="0: train on all 60,000 images, no validation (as a notebook that "
                        "validated on the test set did)")  # fmt: skip
    args = parser.parse_args()
    console = Console(width=max(150, Console().width))
    data = arrays()
    cases = args.case or [""]
    trained_on = (f"validation_split {args.validation_split:g}" if args.validation_split
                  else "all 60,000 images trained on")  # fmt: skip
    per_seed = Table(title=f"experiment={args.experiment}, the notebooks' way ({trained_on}), "
                     "test accuracy")  # fmt: skip
    for col in ("case", "seed", "last epoch", "best val_loss epoch", "highest (epoch)", "epochs"):
        per_seed.add_column(col, justify="right")
    summary = Table(title="mean ± std over the seeds")
    for col in ("case", "reference", "last epoch", "best val_loss epoch", "highest",
                "epoch-ends ≥ reference"):  # fmt: skip
        summary.add_column(col, justify="right")
    for case in cases:
        overrides = case.split() + ([f"trainer.epochs={args.epochs}"] if args.epochs else [])
        cfg = recipe(args.experiment, overrides)
        given = references(OmegaConf.to_container(cfg.report).get("reference"))
        reference = next(iter(given.values()), None)  # the notebook's, first
        last, chosen, highest, reached, ends = [], [], [], 0, 0
        for seed in args.seeds:
            curve = run(cfg, seed, data, args.validation_split)
            test = curve["test"]
            losses = curve["val_loss"]
            best = min(range(len(losses)), key=losses.__getitem__, default=None)
            top = max(range(len(test)), key=test.__getitem__)
            last.append(test[-1])
            if best is not None:
                chosen.append(test[best])
            highest.append(test[top])
            # accuracies are whole images out of the test set's, held in float32: 0.9833 is 9,833
            if reference is not None:
                reached += sum(a >= reference - 0.5 / len(data[3]) for a in test)
            ends += len(test)
            per_seed.add_row(case or "-", str(seed), f"{test[-1]:.2%}",
                             "-" if best is None else f"{test[best]:.2%} ({best + 1})",
                             f"{test[top]:.2%} ({top + 1})",
                             str(len(test)))  # fmt: skip
            console.print(f"{case or '-'} seed {seed}: test by epoch "
                          f"{' '.join(f'{a:.4f}' for a in test)}", highlight=False)  # fmt: skip
        summary.add_row(case or "-", "-" if reference is None else f"{reference:.2%}",
                        percent(last), percent(chosen), percent(highest),
                        "-" if reference is None else f"{reached} of {ends}")  # fmt: skip
    console.print(per_seed)
    console.print(summary)
    rerun = " ".join(f"--case '{c}'" for c in args.case)
    console.print(f"rerun: python bench/notebook_spread.py {args.experiment} --seeds "
                  f"{' '.join(map(str, args.seeds))} {rerun}".rstrip()
                  + (f" --epochs {args.epochs}" if args.epochs else "")
                  + (f" --validation-split {args.validation_split:g}"
                     if args.validation_split != 0.2 else ""), highlight=False)  # fmt: skip


if __name__ == "__main__":
    main()
