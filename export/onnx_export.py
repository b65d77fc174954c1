"""Export a recognizer or detector folder to ONNX, and check the file against PyTorch before calling it done.

The exported folder holds `model.onnx`, the processor files (the same pre- and post-processing run on both
backends), the model config and `onnx_export.json` (what was exported and how closely it matched). The
folder is read by `scenetext.pipelines.onnx_backend` (`OnnxRecognizer`, `OnnxDetector`).

This package is not copied into saved model folders: exporting needs torch, onnxscript and this package,
while what it writes (an ONNX file and processor files) is all a deployment needs.

The recognizer is exported with `decode_fixed_steps=True`: every decoding step is in the graph and the steps
after all samples have read [E] are masked out, so the graph has static shapes apart from the batch and gives the
ids of the early-stopping decoding. The detector keeps batch, height and width dynamic.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from scenetext.modeling.clip4str import Clip4StrForSceneTextRecognition
from scenetext.modeling.clip4str.configuration_clip4str import as_pair
from scenetext.modeling.tcm import TcmForSceneTextDetection
from scenetext.pipelines.onnx_backend import ONNX_FILE
from scenetext.processors.clip4str import Clip4StrProcessor
from scenetext.processors.tcm import TcmImageProcessor

REPORT_FILE = "onnx_export.json"
LOGITS_TOLERANCE = 1e-3
MAP_TOLERANCE = 1e-3


@dataclass
class ExportCheck:
    """How the exported file compared with PyTorch on the sample inputs."""

    task: str
    opset: int
    batch_sizes: list[int]
    input_sizes: list[list[int]]
    max_abs_difference: float
    ids_identical: bool


class _RecognizerGraph(torch.nn.Module):
    """pixel_values -> (logits, visual_logits): the tensors of `Clip4StrOutput`, as graph outputs."""

    def __init__(self, model: Clip4StrForSceneTextRecognition) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        output = self.model(pixel_values=pixel_values)
        return output.logits, output.visual_logits


class _DetectorGraph(torch.nn.Module):
    """pixel_values -> prob_map; post-processing reads only the probability map, so the threshold branch is
    left out of the graph."""

    def __init__(self, model: TcmForSceneTextDetection) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values, output_threshold_maps=False).prob_map


def _onnx_export(graph: torch.nn.Module, example: torch.Tensor, path: Path, dynamic_axes: dict) -> int:
    """Writes `path` with the exporter's default opset (the current one for the installed torch); returns it."""
    # Imported here: onnxscript is the optional `[onnx]` extra.
    from .onnx_translations import TRANSLATIONS

    program = torch.onnx.export(
        graph,
        (example,),
        dynamo=True,
        input_names=["pixel_values"],
        dynamic_shapes={"pixel_values": dynamic_axes},
        custom_translation_table=TRANSLATIONS,
        external_data=False,
        # onnxscript's rewriter takes many minutes on the unrolled decoding graph (every step and merge round is
        # its own nodes); ONNX Runtime applies its own graph optimisations when it loads the file.
        optimize=False,
    )
    program.save(str(path))
    return int(program.model.opset_imports[""])


def _session(path: Path):
    try:
        import onnxruntime
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "checking an ONNX export needs onnxruntime: pip install 'scenetext[onnx]'"
        ) from error
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _export_folder(
    folder: str | Path,
    output: str | Path,
    model_class: type,
    processor_class: type,
    export_model: Callable[[torch.nn.Module, Path], ExportCheck],
) -> ExportCheck:
    """Exports the model saved in `folder` with `export_model` and saves its processor and config beside the
    ONNX file, which is all a deployment reads."""
    output = Path(output)
    model = model_class.from_pretrained(folder).eval()
    check = export_model(model, output)
    processor_class.from_pretrained(folder).save_pretrained(output)
    model.config.save_pretrained(output)
    return check


def export_recognizer(folder: str | Path, output: str | Path) -> ExportCheck:
    """Exports the CLIP4STR folder to `output/model.onnx` (see `export_recognizer_model`) with its processor
    and config beside it."""
    return _export_folder(
        folder, output, Clip4StrForSceneTextRecognition, Clip4StrProcessor, export_recognizer_model
    )


def export_recognizer_model(
    model: Clip4StrForSceneTextRecognition, output: str | Path, sample_batch_sizes=(1, 3)
) -> ExportCheck:
    """Writes `output/model.onnx` with a dynamic batch and the whole fixed-step decoding in the graph, and
    raises ValueError (removing the file) unless it gives PyTorch's ids and logits within 1e-3 on random images
    of each of `sample_batch_sizes`."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    height, width = as_pair(model.config.vision_config.image_size)
    graph = _RecognizerGraph(model).eval()
    generator = torch.Generator().manual_seed(0)
    early_stopping = model.config.decode_fixed_steps
    model.config.decode_fixed_steps = True
    try:
        example = torch.randn(2, 3, height, width, generator=generator)
        opset = _onnx_export(graph, example, output / ONNX_FILE, {0: torch.export.Dim("batch", min=1)})
    finally:
        model.config.decode_fixed_steps = early_stopping

    # Compared with the model as configured (early stop, by default): fixed steps must give the same ids.
    session = _session(output / ONNX_FILE)
    worst, identical = 0.0, True
    for batch in sample_batch_sizes:
        pixel_values = torch.randn(batch, 3, height, width, generator=generator)
        with torch.no_grad():
            expected = [tensor.numpy() for tensor in graph(pixel_values)]
        received = session.run(None, {"pixel_values": pixel_values.numpy()})
        for want, got in zip(expected, received, strict=True):
            steps = want.shape[1]  # early stop may end before the last step; fixed steps run them all
            worst = max(worst, float(np.abs(want - got[:, :steps]).max()))
            identical &= bool((want.argmax(-1) == got[:, :steps].argmax(-1)).all())
    check = ExportCheck("recognizer", opset, list(sample_batch_sizes), [[height, width]], worst, identical)
    return _accept(check, output, LOGITS_TOLERANCE)


def export_detector(folder: str | Path, output: str | Path) -> ExportCheck:
    """Exports the TCM folder to `output/model.onnx` (see `export_detector_model`) with its image processor and
    config beside it."""
    return _export_folder(folder, output, TcmForSceneTextDetection, TcmImageProcessor, export_detector_model)


def export_detector_model(
    model: TcmForSceneTextDetection, output: str | Path, sample_sizes=((1, 64, 96), (2, 96, 64))
) -> ExportCheck:
    """Writes `output/model.onnx` with dynamic batch, height and width (multiples of 32), and raises ValueError
    (removing the file) unless its probability maps match PyTorch's within 1e-3 on random images of each
    `(batch, height, width)` of `sample_sizes`."""
    head_type = getattr(model.config, "head_type", "dbnet")
    if head_type != "dbnet":
        raise ValueError(
            f"ONNX export covers the DBNet head (probability map); this detector has a {head_type} head"
        )
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    graph = _DetectorGraph(model).eval()
    generator = torch.Generator().manual_seed(0)
    example = torch.randn(2, 3, 64, 64, generator=generator)
    dynamic = {
        0: torch.export.Dim("batch", min=1),
        2: 32 * torch.export.Dim("height_blocks", min=1, max=256),
        3: 32 * torch.export.Dim("width_blocks", min=1, max=256),
    }
    opset = _onnx_export(graph, example, output / ONNX_FILE, dynamic)

    session = _session(output / ONNX_FILE)
    worst = 0.0
    for batch, height, width in sample_sizes:
        pixel_values = torch.randn(batch, 3, height, width, generator=generator)
        with torch.no_grad():
            expected = graph(pixel_values).numpy()
        (received,) = session.run(None, {"pixel_values": pixel_values.numpy()})
        worst = max(worst, float(np.abs(expected - received).max()))
    sizes = [[height, width] for _, height, width in sample_sizes]
    check = ExportCheck("detector", opset, [batch for batch, _, _ in sample_sizes], sizes, worst, True)
    return _accept(check, output, MAP_TOLERANCE)


def _accept(check: ExportCheck, output: Path, tolerance: float) -> ExportCheck:
    """Writes the check beside the model; a file that does not match PyTorch is removed, not left to be used."""
    if check.max_abs_difference > tolerance or not check.ids_identical:
        (output / ONNX_FILE).unlink()
        raise ValueError(
            f"{output / ONNX_FILE} does not reproduce PyTorch: largest difference {check.max_abs_difference:.2e} "
            f"(tolerance {tolerance:.0e}), ids identical: {check.ids_identical}; the file was removed"
        )
    (output / REPORT_FILE).write_text(json.dumps(asdict(check), indent=2) + "\n")
    return check
