"""trainer.precision: what auto picks where, and the float32 copy a mixed-precision checkpoint is
scored and exported in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import composed, model_from, read_metrics
from mnistcli import precision


def test_native_bfloat16_is_read_from_the_cpu_flags(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    for flags, native in (
        ("fpu avx2 avx512f avx512_bf16 avx512_vnni", True),  # AMD Zen 4, Intel Cooper Lake
        ("fpu avx512f amx_bf16 amx_tile", True),  # Intel Sapphire Rapids
        ("fpu avx2 avx512f avx512_vnni", False),  # Zen 3 has no AVX-512; Cascade Lake no BF16
    ):
        info.write_text(f"processor\t: 0\nmodel name\t: some CPU\nflags\t\t: {flags}\n")
        assert precision.native_bfloat16(info) is native
    info.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")  # an Arm CPU: not counted
    assert precision.native_bfloat16(info) is False
    assert precision.native_bfloat16(tmp_path / "missing") is False


@pytest.mark.parametrize(
    ("model", "macs"),
    [("ffnn", 0), ("lenet5", 2_152_800), ("lenet5_bn", 240_000), ("lenet5_classic", 240_000),
     ("strided_cnn", 304_192), ("cnn_v2", 13_207_552), ("cnn_v3", 15_161_472)],
)  # fmt: skip
def test_convolution_multiply_adds_per_image(model: str, macs: int) -> None:
    """LeNet-5's: 24x24x6 outputs of 5x5x1, 19x19x16 of 5x5x6, 5x5x120 of 5x5x16."""
    assert precision.convolution_macs(model_from(f"model={model}")) == macs


CPU, GPU = {"type": "cpu"}, {"type": "gpu", "compute_capability": (8, 0)}


@pytest.mark.parametrize(
    ("overrides", "device", "native", "policy"),
    [(["model=lenet5"], CPU, True, "mixed_bfloat16"),
     (["experiment=cnn_v2"], CPU, True, "mixed_bfloat16"),
     (["experiment=lenet5_bn"], CPU, True, "float32"),  # too few multiply-adds to repay casts
     (["experiment=ffnn"], CPU, True, "float32"),
     (["experiment=fast"], CPU, True, "float32"),
     (["model=lenet5"], CPU, False, "float32"),  # bfloat16 emulated
     (["model=lenet5"], GPU, False, "mixed_float16"),
     (["model=lenet5"], {"type": "gpu", "compute_capability": (6, 1)}, True, "float32"),
     (["model=lenet5", "trainer.precision=float32"], CPU, True, "float32"),
     (["model=ffnn", "trainer.precision=mixed_bfloat16"], CPU, False, "mixed_bfloat16")],
)  # fmt: skip
def test_auto_precision(
    monkeypatch: pytest.MonkeyPatch, overrides: list[str], device: dict, native: bool, policy: str
) -> None:
    """auto: float16 on GPUs with tensor cores; bfloat16 on a CPU that has it natively, for the
    models with enough convolution arithmetic; float32 elsewhere. A named policy as it is."""
    monkeypatch.setattr(precision, "native_bfloat16", lambda: native)
    cfg = composed(*overrides)
    assert precision.choose(cfg.trainer.precision, device, cfg.model) == policy


def test_a_run_records_the_precision_auto_chose(quick_run: Path) -> None:
    """quick_run trains lenet5 with trainer.precision=auto on this machine's CPU."""
    expected = "mixed_bfloat16" if precision.native_bfloat16() else "float32"
    assert read_metrics(quick_run)["device"]["precision"] == expected


def test_float32_copy_has_the_weights_and_computes_in_float32() -> None:
    import keras

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = model_from("model=lenet5_bn")  # with mnistcli's own batch norm layer
    finally:
        keras.mixed_precision.set_global_policy("float32")
    x = np.random.default_rng(0).random((64, 28, 28, 1), dtype=np.float32)
    mixed(x, training=True)  # moves the batch norms' statistics off their start
    copy = precision.in_float32(mixed)
    assert copy is not mixed and copy.count_params() == mixed.count_params() == 45_418
    assert {layer.compute_dtype for layer in copy.layers} == {"float32"}
    assert {layer.compute_dtype for layer in mixed.layers} == {"bfloat16", "float32"}
    for a, b in zip(copy.weights, mixed.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    p32, p16 = copy.predict(x, verbose=0), mixed.predict(x, verbose=0)
    assert 0 < np.abs(p32 - p16).max() < 0.05
    assert precision.in_float32(copy) is copy
