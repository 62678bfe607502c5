"""Where and how TensorFlow runs: log level, device and distribution strategy, seeding."""

from __future__ import annotations

import os
import platform
import sys
import warnings
from pathlib import Path
from typing import Any

from mnistcli.errors import UserError


def quiet_tensorflow() -> None:
    """Import TensorFlow and Keras with their C++ start-up chatter (oneDNN, CUDA stubs) silenced:
    absl writes it straight to file descriptor 2, before any Python setting can apply."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import keras  # noqa: F401
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")  # the CUDA probe, while muted
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def select_strategy(device: str, logical_cpus: int = 1) -> tuple[Any, dict[str, Any]]:
    """Pick the distribution strategy for `device` (auto | cpu | gpu) and describe the choice.

    auto: every visible GPU (memory growth on; MirroredStrategy when there are several), else the
    CPU. `logical_cpus` > 1 splits the CPU into that many logical devices and mirrors across them,
    which exercises the multi-device path on a machine without GPUs."""
    import tensorflow as tf

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
        info = {"type": "gpu", "name": details.get("device_name", gpus[0].name), "count": len(gpus)}
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy(), {**info, "strategy": "MirroredStrategy"}
        return tf.distribute.OneDeviceStrategy("/gpu:0"), {**info, "strategy": "OneDeviceStrategy"}
    info = {"type": "cpu", "name": cpu_name(), "count": logical_cpus}
    if logical_cpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(logical_cpus)]
        )
        names = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(names), {**info, "strategy": "MirroredStrategy"}
    return tf.distribute.get_strategy(), {**info, "strategy": "default"}


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and the backend, as keras.utils.set_random_seed does."""
    import keras

    keras.utils.set_random_seed(seed)
