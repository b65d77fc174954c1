"""Where and in which precision evaluation runs a model: CUDA when present, float32 unless asked."""

from __future__ import annotations

import torch

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def resolve_device(device: str | None = None) -> torch.device:
    """The requested device, or CUDA when available and the CPU otherwise."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but CUDA is not available")
    return resolved


def resolve_dtype(dtype: str | None = None) -> torch.dtype:
    """A torch dtype from its name (float32, float16, bfloat16); float32 by default."""
    if dtype is None:
        return torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


# Dynamic int8 quantization of linear layers: int8 weights, activations quantized per batch on the fly. A CPU
# serving mode for the transformer recognizer (its time is in linear layers), not a storage dtype.
INT8 = "int8"


def quantize_linear_layers(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`model` (float32) with its `nn.Linear` layers dynamically quantized to int8; CPU only."""
    if device.type != "cpu":
        raise ValueError(f"int8 dynamic quantization runs on the CPU, not on {device}")
    return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, torch.qint8)
