"""The run dir: where each file goes, atomic writes, the one writer of metrics.json, and the
hold a training process keeps on its run dir.

Every file is written to a temporary name beside it and renamed into place, so a killed run
leaves either the previous complete version or the new complete version, never half a file."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from mnistcli.errors import UserError

SCHEMA_VERSION = 1


class RunDir:
    """Paths inside one run's output dir (Hydra's output dir)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.keras"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.keras"

    @property
    def state_json(self) -> Path:
        """Per finished epoch: its history row, the best epoch so far, the callbacks' state."""
        return self.checkpoints / "state.json"

    @property
    def history_csv(self) -> Path:
        return self.root / "history.csv"

    @property
    def metrics_json(self) -> Path:
        return self.root / "metrics.json"

    @property
    def curves_png(self) -> Path:
        return self.root / "curves.png"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"


_held: set[str] = set()  # the run dirs this process holds


@contextlib.contextmanager
def claimed(root: str | Path) -> Iterator[None]:
    """Hold the run dir `root` while this process trains in it, so that no other mnist process
    trains there at the same time (`resume=` of a run that is still going) and `mnist report`
    can tell a running run from a stopped one: an flock on the folder itself, which the kernel
    lets go when the process ends, however it ends. Nested holds of one dir are one hold."""
    key = os.path.realpath(root)
    if key in _held:
        yield
        return
    fd = _claim(root)
    _held.add(key)
    try:
        yield
    finally:
        _held.discard(key)
        os.close(fd)


def check_unclaimed(root: str | Path) -> None:
    """Raise UserError when another process trains in the run dir `root` right now."""
    os.close(_claim(root))


def being_trained(root: str | Path) -> bool:
    """Whether a process holds the run dir `root` (trains in it) right now. Holds it itself, as
    a shared lock, only for the instant of asking; a trainer starting then waits that out."""
    if os.path.realpath(root) in _held:
        return True
    try:
        fd = os.open(root, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # a file system without locks (some network mounts): cannot tell
        return False
    finally:
        os.close(fd)
    return False


def _claim(root: str | Path, tries: int = 20) -> int:
    fd = os.open(root, os.O_RDONLY)
    for _ in range(tries):  # a being_trained() probe holds the dir for microseconds
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            time.sleep(0.025)
        except OSError:  # a file system without locks (some network mounts): train unguarded
            return fd
    os.close(fd)
    raise UserError(
        f"{root} is being trained right now by another mnist process; let it finish, or stop "
        "it (Ctrl-C) and resume then"
    )


def _tmp_beside(path: Path) -> Path:
    # Keras insists on the .keras suffix, so the temporary name keeps the real suffix.
    return path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")


def _replace(tmp: Path, path: Path) -> None:
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    write_bytes(path, text.encode())


def write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_beside(path)
    tmp.write_bytes(data)
    _replace(tmp, path)


def save_model(model: Any, path: Path) -> None:
    """Save a Keras model to `path` (.keras) atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_beside(path)
    model.save(tmp)
    _replace(tmp, path)


def copy_file(src: Path, dst: Path) -> None:
    """Copy `src` to `dst` atomically."""
    write_bytes(dst, src.read_bytes())


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write rows (dicts with the same keys) as CSV, atomically."""
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    write_text(path, buf.getvalue())


def versions() -> dict[str, str]:
    def dist(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "unknown"

    tf = sys.modules.get("tensorflow")
    return {
        "python": platform.python_version(),
        "tensorflow": getattr(tf, "__version__", None) or dist("tensorflow"),
        "keras": dist("keras"),
        "mnistcli": dist("mnistcli"),
    }


def write_metrics(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Write metrics.json: the record plus schema version and versions. Returns what was written."""
    full = {"schema_version": SCHEMA_VERSION, **record, "versions": versions()}
    write_text(path, json.dumps(full, indent=2, allow_nan=True) + "\n")
    return full


def record_failure(path: Path, task: str, cfg: Any, error: str) -> dict[str, Any]:
    """Make metrics.json at `path` say the run failed with `error` (a run that failed before it
    wrote one gets a minimal record, with its config). Returns what the file then holds."""
    from omegaconf import OmegaConf

    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        record = {"task": task, "config": OmegaConf.to_container(cfg, resolve=True)}
    if record.get("status") == "failed":
        return record
    record.pop("schema_version", None)
    record.pop("versions", None)
    return write_metrics(path, {**record, "status": "failed", "error": error})
