"""Where and in which precision a loaded model runs: the `--device` and `--dtype` of every command.

`scenetext ocr`, `scenetext evaluate` and the benchmark scripts all take these two options and resolve them
here, so the same names mean the same thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# The options themselves live in the torch-free `device_options.py`; also importable from here, with the
# resolvers they feed.
from .device_options import DTYPE_ALIASES, INT8, PRECISION_NAMES, add_device_arguments  # noqa: F401

# The accepted names (see `device_options.py`, kept free of torch for command-line parsers) -> torch dtypes.
DTYPE_NAMES: dict[str, torch.dtype] = {
    name: getattr(torch, attribute) for name, attribute in DTYPE_ALIASES.items()
}


@dataclass(frozen=True)
class Precision:
    """How a model's weights are held: a floating-point `dtype`, with linear layers quantized to int8 on the fly
    when `dynamic_int8`."""

    dtype: torch.dtype = torch.float32
    dynamic_int8: bool = False


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """A torch device from `auto` (or None: CUDA, then Apple's MPS, when present, else the CPU), `cpu`,
    `cuda`, `cuda:N` or `mps`; asking for an accelerator this machine lacks is a `ValueError`."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"device {device!r} is not a device; expected auto, cpu, cuda, cuda:N or mps"
        ) from error
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was requested but CUDA is not available")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} was requested but MPS is not available")
    elif resolved.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {device!r}: expected auto, cpu, cuda, cuda:N or mps")
    return resolved


def resolve_precision(name: str | torch.dtype | None = None) -> Precision:
    """The `Precision` named by `name` (see `PRECISION_NAMES`; a torch dtype is accepted too); float32 by
    default."""
    if name is None:
        return Precision()
    if isinstance(name, torch.dtype):
        if name not in DTYPE_NAMES.values():
            raise ValueError(
                f"dtype {name} is not a model precision; expected one of {', '.join(PRECISION_NAMES)}"
            )
        return Precision(name)
    if name == INT8:
        return Precision(torch.float32, dynamic_int8=True)
    if name not in DTYPE_NAMES:
        raise ValueError(f"unknown dtype {name!r}; expected one of {', '.join(PRECISION_NAMES)}")
    return Precision(DTYPE_NAMES[name])


def place_model(model: torch.nn.Module, device: torch.device, precision: Precision) -> torch.nn.Module:
    """`model` in eval mode on `device` in `precision` (int8 quantization on the CPU only)."""
    model = model.to(device=device, dtype=precision.dtype).eval()
    return quantize_linear_layers(model, device) if precision.dynamic_int8 else model


def quantize_linear_layers(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`model` (float32) with its `nn.Linear` layers dynamically quantized to int8; CPU only."""
    if device.type != "cpu":
        raise ValueError(f"int8 dynamic quantization runs on the CPU, not on {device}")
    return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, torch.qint8)
