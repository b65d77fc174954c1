"""The names `--device` and `--dtype` accept, and the argparse options that take them.

Kept free of torch so that building a command line (`scenetext --help`) does not import it; the names are
resolved into torch devices and dtypes by `devices.py` when a model is placed.
"""

from __future__ import annotations

import argparse

# Accepted dtype names -> the torch dtype attribute they mean: the torch name and the short one the training
# configs and benchmarks use.
DTYPE_ALIASES: dict[str, str] = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
}
# Dynamic int8 quantization of linear layers: int8 weights, activations quantized per batch on the fly. A CPU
# serving mode for the transformer recognizer (its time is in linear layers), not a storage dtype.
INT8 = "int8"
PRECISION_NAMES = (*DTYPE_ALIASES, INT8)


def add_device_arguments(
    parser: argparse.ArgumentParser, int8: bool = False, default_dtype: str = "float32"
) -> None:
    """`--device` and `--dtype` options, resolved later with `devices.resolve_device` and
    `devices.resolve_precision`; `int8` offers dynamic int8 quantization (for models whose time is in linear
    layers)."""
    parser.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA, then MPS, when present, else CPU), cpu, cuda, cuda:N or mps",
    )
    names = PRECISION_NAMES if int8 else tuple(DTYPE_ALIASES)
    dtype_help = "model precision"
    if int8:
        dtype_help += f"; {INT8}: float32 with dynamically quantized linear layers, CPU only"
    parser.add_argument(
        "--dtype", default=default_dtype, choices=names, help=f"{dtype_help} (default {default_dtype})"
    )
