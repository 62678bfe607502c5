"""The dtype policy a run trains in (trainer.precision), and float32 copies of models trained in
another, for scoring and export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mnistcli.runtime import all_layers, cpuinfo_field

# Multiply-adds of one image's pass through a model's convolutions from which bfloat16 repays
# its casts on a CPU that does it natively: LeNet-5 (2.15 M) trained 1.25x as fast, cnn_v2
# (13.2 M) 1.31-1.49x and cnn_v3 (15.2 M) 1.27x; LeNet-5-BN and the textbook LeNet-5 (0.24 M
# each), strided_cnn (0.30 M) and the dense nets (none) 0.91-1.04x (BENCHMARKS.md).
BFLOAT16_FROM_MACS = 1_000_000


def native_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU does bfloat16 arithmetic in hardware (x86's AVX512_BF16 or AMX-BF16 among
    `cpuinfo`'s flags), which oneDNN's kernels then use; False where that cannot be read."""
    flags = cpuinfo_field("flags", cpuinfo) or ""
    return not {"avx512_bf16", "amx_bf16"}.isdisjoint(flags.split())


def layer_macs(layer: Any) -> int:
    """Multiply-adds of one image's forward pass through a Conv2D or Dense layer; 0 for others."""
    import keras

    if isinstance(layer, keras.layers.Conv2D):
        height, width, filters = layer.output.shape[1:]
        kh, kw = layer.kernel_size
        return height * width * filters * kh * kw * layer.input.shape[-1] // layer.groups
    if isinstance(layer, keras.layers.Dense):
        return layer.input.shape[-1] * layer.units
    return 0


def convolution_macs(model: Any) -> int:
    """Multiply-adds of one image's forward pass through `model`'s Conv2D layers."""
    import keras

    conv = [layer for layer in all_layers(model) if isinstance(layer, keras.layers.Conv2D)]
    return sum(map(layer_macs, conv))


def choose(precision: str, device: dict[str, Any], model_cfg: DictConfig) -> str:
    """trainer.precision as a Keras dtype policy. auto: mixed_float16 on GPUs with tensor cores
    (compute capability 7.0 or more); mixed_bfloat16 on a CPU that does bfloat16 natively, for a
    model whose convolutions do at least BFLOAT16_FROM_MACS multiply-adds per image; else
    float32."""
    if precision != "auto":
        return precision
    if device.get("type") == "gpu":
        capability = device.get("compute_capability") or (0, 0)
        return "mixed_float16" if tuple(capability) >= (7, 0) else "float32"
    if device.get("type") == "cpu" and native_bfloat16():
        from mnistcli.models import probe

        if convolution_macs(probe(model_cfg)) >= BFLOAT16_FROM_MACS:
            return "mixed_bfloat16"
    return "float32"


def set_precision(precision: str, device: dict[str, Any], model_cfg: DictConfig) -> str:
    """Set Keras's global dtype policy for this run to `choose`'s (every job sets it: nothing
    carries over from the job before) and return it."""
    import keras

    policy = choose(precision, device, model_cfg)
    keras.mixed_precision.set_global_policy(policy)
    return policy


def in_float32(model: Any) -> Any:
    """`model` computing in float32 throughout, with its weights (which mixed precision keeps in
    float32): how a checkpoint trained in bfloat16 or float16 is tested, evaluated and exported,
    so that they all give the same scores. `model` itself when it computes in float32."""
    import keras

    if all(layer.dtype_policy.name == "float32" for layer in model.layers):
        return model

    def float32_layer(layer: Any) -> Any:
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    clone = keras.models.clone_model(model, clone_function=float32_layer)
    clone.set_weights(model.get_weights())
    return clone
