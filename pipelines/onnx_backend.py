"""ONNX Runtime backend: a folder written by `scenetext export` run by ONNX Runtime, called like the PyTorch
model it was exported from, so that the pipelines' pre- and post-processing serve both backends unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

ONNX_FILE = "model.onnx"
# Written beside it by `scenetext export ... --int8`.
INT8_ONNX_FILE = "model.int8.onnx"


def _inference_session(folder: str | Path, file_name: str, num_threads: int | None):
    try:
        import onnxruntime
    except ImportError as error:
        raise ImportError(
            "the ONNX backend needs onnxruntime: pip install onnxruntime (or scenetext[onnx])"
        ) from error
    path = Path(folder) / file_name
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: write it with `scenetext export` first")
    options = onnxruntime.SessionOptions()
    if num_threads is not None:
        options.intra_op_num_threads = num_threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@dataclass
class OnnxRecognizerOutput:
    logits: torch.Tensor
    visual_logits: torch.Tensor


@dataclass
class OnnxDetectorOutput:
    prob_map: torch.Tensor


class OnnxRecognizer:
    """`recognizer(pixel_values=...)` -> `.logits`, as `Clip4StrForSceneTextRecognition` in eval mode.

    Inputs are float32 on the CPU (`device` and `dtype` say so to the callers that place inputs)."""

    device = torch.device("cpu")
    dtype = torch.float32

    def __init__(
        self, folder: str | Path, file_name: str = ONNX_FILE, num_threads: int | None = None
    ) -> None:
        self.session = _inference_session(folder, file_name, num_threads)

    def __call__(self, pixel_values: torch.Tensor) -> OnnxRecognizerOutput:
        logits, visual_logits = self.session.run(None, {"pixel_values": pixel_values.float().cpu().numpy()})
        return OnnxRecognizerOutput(torch.from_numpy(logits), torch.from_numpy(visual_logits))


class OnnxDetector:
    """`detector(pixel_values, output_threshold_maps=False)` -> `.prob_map`, as `TcmForSceneTextDetection`
    in eval mode (the exported graph has no threshold branch)."""

    device = torch.device("cpu")
    dtype = torch.float32
    training = False

    def __init__(
        self, folder: str | Path, file_name: str = ONNX_FILE, num_threads: int | None = None
    ) -> None:
        self.session = _inference_session(folder, file_name, num_threads)

    def __call__(self, pixel_values: torch.Tensor, output_threshold_maps: bool = False) -> OnnxDetectorOutput:
        if output_threshold_maps:
            raise ValueError(
                "an exported detector computes the probability map only (output_threshold_maps=False)"
            )
        (prob_map,) = self.session.run(None, {"pixel_values": pixel_values.float().cpu().numpy()})
        return OnnxDetectorOutput(torch.from_numpy(prob_map))


def on_backend_device(args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pipeline keyword arguments with the device of a model that is not a torch module (`OnnxDetector`,
    `OnnxRecognizer`: the CPU) unless one was given; transformers would otherwise pick (and move the model to) a
    GPU where one is present."""
    model = kwargs.get("model", args[0] if args else None)
    if model is not None and not isinstance(model, torch.nn.Module) and kwargs.get("device") is None:
        kwargs = {**kwargs, "device": model.device}
    return kwargs


__all__ = [
    "INT8_ONNX_FILE",
    "ONNX_FILE",
    "OnnxDetector",
    "OnnxDetectorOutput",
    "OnnxRecognizer",
    "OnnxRecognizerOutput",
    "on_backend_device",
]
