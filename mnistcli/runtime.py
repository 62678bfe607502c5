"""Where and how TensorFlow runs: log level, device and distribution strategy, seeding."""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from mnistcli.errors import UserError


@contextlib.contextmanager
def native_stderr(keep: Callable[[str], bool]) -> Iterator[None]:
    """Catch what is written to file descriptor 2 meanwhile, where native code's loggers (absl's,
    LiteRT's) write before or beyond any Python setting, and pass on the lines `keep` accepts."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            lines = caught.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if keep(line)))
            sys.stderr.flush()


def quiet_tensorflow() -> None:
    """Import TensorFlow and Keras with their C++ start-up chatter (oneDNN, CUDA stubs) silenced:
    absl writes it straight to file descriptor 2, before any Python setting can apply."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")
    if "tensorflow" in sys.modules:
        return
    with native_stderr(keep=lambda line: False):
        import keras  # noqa: F401
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # the CUDA probe, while muted
    # Every job of a sweep builds new tf.functions in one process; TensorFlow calls that
    # "retracing" and warns, though each job's functions trace only once.
    tf.get_logger().addFilter(
        lambda record: "triggered tf.function retracing" not in str(record.msg)
    )


def cpuinfo_field(key: str, cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The first `key : value` line's value in Linux's description of the CPU; None where there
    is no such line or file."""
    try:
        for line in cpuinfo.read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    return cpuinfo_field("model name") or platform.processor() or platform.machine()


def usable_cpus() -> int:
    """The cores this process may run on (its affinity mask: what SLURM or taskset granted)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def sweep_job() -> int | None:
    """This job's number in a Hydra sweep (multirun), as Hydra prints it (`#3 : ...`); None
    outside a sweep."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return int(HydraConfig.get().job.num)


def cpu_share(launcher: Mapping[str, Any] | None) -> int | None:
    """CPU threads one job may use under Hydra's `launcher`: its cpus_per_task (submitit) when
    set, its share of the cores when joblib runs n_jobs at once, else None (all usable cores)."""
    launcher = launcher or {}
    if launcher.get("cpus_per_task"):
        return int(launcher["cpus_per_task"])
    if "joblib" in str(launcher.get("_target_", "")):
        cpus, n_jobs = usable_cpus(), int(launcher.get("n_jobs") or 1)
        at_once = n_jobs if n_jobs > 0 else max(1, cpus + 1 + n_jobs)  # joblib: -1 = all cores
        return max(1, cpus // at_once)
    return None


_pools_set = False  # limit_threads ran: TensorFlow's first op follows, and its pools stay


def thread_pools_set() -> bool:
    """Whether an earlier run in this process set TensorFlow's thread pools (limit_threads)."""
    return _pools_set


def limit_threads(threads: int | None, one_per_op: bool = False) -> int:
    """Cap TensorFlow's CPU thread pools at `threads` (None: TensorFlow's default, one per usable
    core); `one_per_op`: each op runs on one thread, and up to `threads` (or one per usable core)
    ops at once (trainer.shards). Must run before TensorFlow's first op; a process that already
    ran one (a reused joblib worker, a sweep's next job) keeps its setting. Returns the cores
    used."""
    import tensorflow as tf

    global _pools_set
    _pools_set = True
    if threads and threads > usable_cpus():
        logging.getLogger(__name__).warning(
            "runtime.threads=%d is more than the %d core(s) this process may run on, so the "
            "threads contend for them; leave runtime.threads unset (null) to use each core once",
            threads,
            usable_cpus(),
        )
    threading = tf.config.threading
    per_op, at_once = (1, threads or usable_cpus()) if one_per_op else (threads, threads)
    if per_op and (
        threading.get_intra_op_parallelism_threads(),
        threading.get_inter_op_parallelism_threads(),
    ) != (per_op, at_once):
        with contextlib.suppress(RuntimeError):  # TensorFlow already started: keep its pools
            threading.set_intra_op_parallelism_threads(per_op)
            threading.set_inter_op_parallelism_threads(at_once)
    per_op, at_once = (
        threading.get_intra_op_parallelism_threads(),
        threading.get_inter_op_parallelism_threads(),
    )
    return (at_once if per_op == 1 else per_op) or usable_cpus()


def cpu_device(threads: int, count: int = 1) -> dict[str, Any]:
    """How metrics.json describes a run on this CPU (`count` logical devices)."""
    return {"type": "cpu", "name": cpu_name(), "count": count, "threads": threads}


def select_strategy(
    device: str, logical_cpus: int = 1, threads: int | None = None, shards: int = 1
) -> tuple[Any, dict[str, Any]]:
    """Cap the CPU threads (see limit_threads; one per op for `shards` > 1), pick the
    distribution strategy for `device` (auto | cpu | gpu) and describe the choice.

    auto: every visible GPU (memory growth on; MirroredStrategy when there are several), else the
    CPU. `logical_cpus` > 1 splits the CPU into that many logical devices and mirrors across them,
    which exercises the multi-device path on a machine without GPUs."""
    import tensorflow as tf

    threads = limit_threads(threads, one_per_op=shards > 1)
    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu" and not gpus:
        raise UserError("device=gpu but TensorFlow sees no GPU; use device=auto or device=cpu")
    if device == "cpu" and gpus:
        tf.config.set_visible_devices([], "GPU")
        gpus = []
    if gpus:
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
        details = tf.config.experimental.get_device_details(gpus[0])
        info = {
            "type": "gpu",
            "name": details.get("device_name", gpus[0].name),
            "count": len(gpus),
            "threads": threads,
            "compute_capability": details.get("compute_capability"),
        }
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy(), {**info, "strategy": "MirroredStrategy"}
        return tf.distribute.OneDeviceStrategy("/gpu:0"), {**info, "strategy": "OneDeviceStrategy"}
    info = cpu_device(threads, logical_cpus)
    if logical_cpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(logical_cpus)]
        )
        names = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(names), {**info, "strategy": "MirroredStrategy"}
    return tf.distribute.get_strategy(), {**info, "strategy": "default"}


def all_layers(layer: Any) -> Iterator[Any]:
    """`layer` and every layer inside it, at any depth."""
    yield layer
    for inner in getattr(layer, "layers", []):
        yield from all_layers(inner)


def use_xla(trainer: Mapping[str, Any], model: Any, device: Mapping[str, Any]) -> bool | str:
    """trainer.jit_compile as Keras's compile takes it: true and false as they are; auto is
    Keras's choice (XLA when every layer supports it, but none on a machine without GPUs, under a
    distribution strategy or with trainer.deterministic), except on a CPU for a model without
    convolutions: XLA there. On a 2-core CPU XLA trained the dense nets 1.13-1.39x as fast
    (its fused steps), and LeNet-5 0.6-0.7x (its convolutions are slower than oneDNN's):
    BENCHMARKS.md."""
    import keras
    import tensorflow as tf

    setting = trainer["jit_compile"]
    if setting != "auto" or device.get("type") != "cpu":
        return setting
    if tf.distribute.has_strategy() or trainer["deterministic"]:
        return False
    layers = list(all_layers(model))
    convolutions = tuple(
        getattr(keras.layers, name)
        for d in (1, 2, 3)
        for name in (f"Conv{d}D", f"Conv{d}DTranspose", f"DepthwiseConv{d}D", f"SeparableConv{d}D")
        if hasattr(keras.layers, name)
    )
    if any(isinstance(layer, convolutions) for layer in layers):
        return False
    return all(getattr(layer, "supports_jit", True) for layer in layers)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and the backend, as keras.utils.set_random_seed does."""
    import keras

    keras.utils.set_random_seed(seed)
