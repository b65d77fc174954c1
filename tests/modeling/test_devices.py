"""`--device` / `--dtype` resolution shared by the commands, evaluation and benchmarks."""

import argparse

import pytest
import torch

from scenetext.modeling.devices import (
    PRECISION_NAMES,
    Precision,
    add_device_arguments,
    place_model,
    resolve_device,
    resolve_precision,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (None, Precision(torch.float32)),
        ("float32", Precision(torch.float32)),
        ("fp32", Precision(torch.float32)),
        ("bfloat16", Precision(torch.bfloat16)),
        ("bf16", Precision(torch.bfloat16)),
        ("float16", Precision(torch.float16)),
        ("fp16", Precision(torch.float16)),
        ("int8", Precision(torch.float32, dynamic_int8=True)),
        (torch.bfloat16, Precision(torch.bfloat16)),
    ],
)
def test_precision_names_and_their_aliases(name, expected):
    assert resolve_precision(name) == expected


def test_unknown_precisions_are_errors_that_list_the_choices():
    with pytest.raises(ValueError, match="unknown dtype 'half'; expected one of float32, fp32"):
        resolve_precision("half")
    with pytest.raises(ValueError, match=r"torch\.int64 is not a model precision"):
        resolve_precision(torch.int64)


def test_devices_resolve_to_what_this_machine_has():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device("auto").type == resolve_device(None).type == expected
    with pytest.raises(ValueError, match="'tpu:0' is not a device"):
        resolve_device("tpu:0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda:1' was requested but CUDA is not available"):
            resolve_device("cuda:1")
    if not torch.backends.mps.is_available():
        with pytest.raises(ValueError, match="'mps' was requested but MPS is not available"):
            resolve_device("mps")


def test_place_model_casts_and_quantizes_on_the_cpu_only():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4)).train()
    placed = place_model(model, torch.device("cpu"), resolve_precision("bf16"))
    assert not placed.training and placed[0].weight.dtype == torch.bfloat16
    quantized = place_model(
        torch.nn.Sequential(torch.nn.Linear(4, 4)), torch.device("cpu"), resolve_precision("int8")
    )
    assert type(quantized[0]).__module__.startswith("torch.ao.nn.quantized")
    with pytest.raises(ValueError, match="int8 dynamic quantization runs on the CPU"):
        place_model(torch.nn.Linear(4, 4), torch.device("meta"), resolve_precision("int8"))


def test_command_line_options_offer_int8_only_where_asked():
    with_int8, without = argparse.ArgumentParser(), argparse.ArgumentParser()
    add_device_arguments(with_int8, int8=True)
    add_device_arguments(without)
    assert vars(with_int8.parse_args([])) == {"device": "auto", "dtype": "float32"}
    assert with_int8.parse_args(["--dtype", "int8"]).dtype == "int8"
    assert set(PRECISION_NAMES) - {"int8"} == set(without._option_string_actions["--dtype"].choices)
    with pytest.raises(SystemExit):
        without.parse_args(["--dtype", "int8"])
