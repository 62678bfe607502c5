"""Every model, built from its composed config, has the notebooks' layers and parameter counts."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from conftest import mnist, model_from
from mnistcli.checks import ACTIVATIONS, model_keys
from mnistcli.models import BUILDERS


def trainable(model) -> int:
    return sum(int(w.numpy().size) for w in model.trainable_weights)


@pytest.mark.parametrize(
    "overrides, params, trainable_params",
    [
        (["model=ffnn"], 669_706, 669_706),
        (["model=ffnn", "model.hidden=[64,64]", "model.dropout=0"], 55_050, 55_050),
        (["model=ffnn", "model.hidden=[500,300]", "model.dropout=0"], 545_810, 545_810),
        (["model=lenet5"], 303_626, 303_626),
        (["model=lenet5_classic"], 44_426, 44_426),
        (["model=lenet5_bn"], 45_418, 44_922),
        (["model=cnn_v2"], 276_438, 275_310),
        (["model=cnn_v2", "model.width=1.5"], 451_974, 450_750),
        (["model=cnn_v2", "model.width=0.01"], 49_094, 48_154),  # one filter each, not zero
        (["model=strided_cnn"], 207_322, 207_226),
        (["model=cnn_v3"], 327_242, 326_410),
        (["experiment=mlp_l2"], 545_810, 545_810),
    ],
)
def test_parameter_counts(overrides: list[str], params: int, trainable_params: int) -> None:
    model = model_from(*overrides)
    assert model.count_params() == params
    assert trainable(model) == trainable_params


def test_lenet5_layers_as_the_notebook_writes_them() -> None:
    model = model_from("model=lenet5")
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == [
        "Conv2D", "AveragePooling2D", "Conv2D", "AveragePooling2D", "Conv2D",
        "Flatten", "Dense", "Dense",
    ]  # fmt: skip
    assert [layer.activation.__name__ for layer in model.layers if hasattr(layer, "activation")] == [
        "relu", "tanh", "tanh", "tanh", "softmax",
    ]  # fmt: skip
    assert model.layers[1].strides == (1, 1) and model.layers[3].strides == (2, 2)


def test_lenet5_bn_layers() -> None:
    kinds = [type(layer).__name__ for layer in model_from("model=lenet5_bn").layers]
    assert kinds == [
        "Conv2D", "BatchNormalization", "Activation", "AveragePooling2D", "BatchNormalization",
        "Conv2D", "BatchNormalization", "Activation", "AveragePooling2D", "BatchNormalization",
        "Flatten", "Dense", "BatchNormalization", "Dense", "BatchNormalization", "Dense",
    ]  # fmt: skip


@pytest.mark.parametrize("name", list(BUILDERS))
def test_each_model_config_declares_its_builders_knobs(name: str) -> None:
    """checks.py refuses model keys that conf/model/NAME.yaml does not declare, so the YAML must
    name every knob of the builder."""
    knobs = inspect.signature(BUILDERS[name]).parameters
    assert sorted(model_keys(name) or []) == sorted(["name", *knobs])


@pytest.mark.parametrize(
    "name", ["ffnn", "lenet5", "lenet5_classic", "lenet5_bn", "cnn_v2", "cnn_v3", "strided_cnn"]
)
def test_l2_regularises_hidden_kernels_only(name: str) -> None:
    plain = model_from(f"model={name}")
    decayed = model_from(f"model={name}", "model.l2=1e-4")
    assert plain.losses == []
    hidden = [layer for layer in decayed.layers[:-1] if type(layer).__name__ in ("Dense", "Conv2D")]
    assert len(decayed.losses) == len(hidden) > 0
    assert decayed.layers[-1].kernel_regularizer is None


def test_strided_cnn_layers() -> None:
    model = model_from("model=strided_cnn")
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == [
        "Conv2D", "BatchNormalization", "Activation", "Conv2D", "BatchNormalization",
        "Activation", "Flatten", "Dense", "Dense",
    ]  # fmt: skip
    assert [layer.strides for layer in model.layers if hasattr(layer, "strides")] == [(2, 2)] * 2
    assert model.output_shape == (None, 10) and model.layers[6].output.shape[1:] == (7 * 7 * 32,)


def test_cnn_v3_layers() -> None:
    """Batch norm after every convolution; 5x5 stride-2 convolutions where cnn_v2 pools."""
    model = model_from("model=cnn_v3")
    kinds = [type(layer).__name__ for layer in model.layers]
    block = ["Conv2D", "BatchNormalization"] * 3 + ["Dropout"]
    assert kinds == [
        *block, *block, "Conv2D", "BatchNormalization", "Flatten", "Dropout", "Dense",
    ]  # fmt: skip
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert [c.strides for c in convs] == [(1, 1), (1, 1), (2, 2), (1, 1), (1, 1), (2, 2), (1, 1)]
    assert [c.output.shape[1] for c in convs] == [26, 24, 12, 10, 8, 4, 1]
    assert {layer.rate for layer in model.layers if type(layer).__name__ == "Dropout"} == {0.4}


def test_ffnn_activation_knob() -> None:
    model = model_from("model=ffnn", "model.activation=tanh", "model.dropout=0")
    dense = [layer for layer in model.layers if type(layer).__name__ == "Dense"]
    assert [d.activation.__name__ for d in dense] == ["tanh", "tanh", "softmax"]
    assert not any(type(layer).__name__ == "Dropout" for layer in model.layers)


def test_activation_names_are_kerass() -> None:
    """checks.ACTIVATIONS (what model.activation may be, checked before TensorFlow loads) is
    Keras's own list but for the two that are no hidden layer's activation; each builds."""
    from keras.src.activations import ALL_OBJECTS_DICT

    assert set(ALL_OBJECTS_DICT) - set(ACTIVATIONS) == {"glu", "threshold"}
    assert len(set(ACTIVATIONS)) == len(ACTIVATIONS) and set(ACTIVATIONS) <= set(ALL_OBJECTS_DICT)
    for name in ACTIVATIONS:
        model = model_from("model=ffnn", f"model.activation={name}", "model.hidden=[4]")
        assert model(np.zeros((2, 28, 28, 1), "float32")).shape == (2, 10), name


def test_summary_command_prints_the_layer_table(tmp_path) -> None:
    proc = mnist("summary", "model=lenet5_classic", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Total params: 44,426" in proc.stdout and "average_pooling2d" in proc.stdout
    assert list(tmp_path.iterdir()) == []  # summary writes nothing
