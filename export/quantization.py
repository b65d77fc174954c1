"""int8 copies of an exported folder's `model.onnx` for CPUs, written beside it as `model.int8.onnx`.

The recognizer spends its time in matrix products: ONNX Runtime's dynamic quantisation (int8 weights per output
channel, activations quantised per call) fits it. Its patch embedding convolution stays in float (ConvInteger is
slow, see below). The detector is a convolutional network: dynamic quantisation turns its convolutions
into ConvInteger, which ONNX Runtime's CPU provider runs several times slower than the float graph, so the detector
is quantised statically (QDQ, weights per channel, activation ranges calibrated on sample images). Its DB head (the
layers that draw the probability map) stays in float: quantising it moves the map's values near the binarisation
threshold and costs most of the accuracy lost (benchmarks/RESULTS.md has the numbers).

Neither copy is checked against PyTorch within the fp32 tolerance: int8 rounding changes outputs by more than
that; `benchmarks/onnx_accuracy.py` measures it on data instead.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from scenetext.pipelines.onnx_backend import INT8_ONNX_FILE, ONNX_FILE
from scenetext.processors.tcm import TcmImageProcessor

# Scope of the exported detector's DB head in the exporter's node metadata (`TcmForSceneTextDetection.head`).
DETECTOR_HEAD_SCOPE = "model.head"
# Calibration images made when none are given: synthetic scenes, the embedded detector's training distribution.
DEFAULT_CALIBRATION_SCENES = 32


def _exported_file(output: str | Path) -> Path:
    source = Path(output) / ONNX_FILE
    if not source.is_file():
        raise FileNotFoundError(f"{source} not found: export the model before quantising it")
    return source


def quantize_int8(output: str | Path) -> Path:
    """`output/model.int8.onnx`: ONNX Runtime's dynamic quantisation of the exported recognizer (int8 weights of
    the matrix products, activations quantised per call)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = _exported_file(output)
    with tempfile.TemporaryDirectory(prefix="scenetext-quantize-") as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        _fold_weight_transposes(source, prepared)
        quantize_dynamic(
            prepared,
            source.parent / INT8_ONNX_FILE,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
        )
    return source.parent / INT8_ONNX_FILE


def _fold_weight_transposes(source: Path, target: Path) -> None:
    """Writes `source` to `target` with each linear layer's weight stored transposed, as MatMul reads it.

    The exporter writes a linear layer as `MatMul(x, Transpose(weight))`, and the quantiser only quantises a
    MatMul whose weight is an initializer: without this step it leaves every matrix product in float. The
    unrolled decoding steps repeat the same Transpose once per step; merging those first keeps one transposed
    copy of each weight. ONNX Runtime folds these transposes itself when it loads the float file, so only the
    quantiser needs them folded ahead.
    """
    import onnxscript.ir as ir
    from onnxscript import optimizer
    from onnxscript.ir.passes.common import CommonSubexpressionEliminationPass, RemoveUnusedNodesPass

    model = ir.load(source)
    CommonSubexpressionEliminationPass()(model)
    # the default size limits leave weights alone; transposes of constants are folded whatever their size
    optimizer.fold_constants(model, should_fold=lambda node: True if node.op_type == "Transpose" else None)
    RemoveUnusedNodesPass()(model)
    ir.save(model, target)


def quantize_detector_int8(output: str | Path, calibration_images: Iterable[Any] | None = None) -> Path:
    """`output/model.int8.onnx`: static int8 quantisation of the exported detector, its head left in float.

    Args:
        output: a folder written by `export_detector` (its `model.onnx` and image processor are read).
        calibration_images: images (PIL, numpy or torch, any size) whose activations set the int8 ranges; each is
            prepared by the folder's image processor as at inference. Default: `DEFAULT_CALIBRATION_SCENES`
            synthetic scenes (seed 0). Give images like the ones the detector will read.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = _exported_file(output)
    image_processor = TcmImageProcessor.from_pretrained(source.parent)
    images = _synthetic_scenes() if calibration_images is None else calibration_images
    feeds = [{"pixel_values": image_processor(image)["pixel_values"].numpy()} for image in images]
    if not feeds:
        raise ValueError("calibration_images is empty: static quantisation needs at least one image")

    class _Feeds(CalibrationDataReader):
        def __init__(self) -> None:
            self.remaining = iter(feeds)

        def get_next(self) -> dict | None:
            return next(self.remaining, None)

    # The head's nodes are named by the exporter's metadata, which ONNX Runtime's pre-processing drops; the node
    # names themselves survive it.
    head = [node.name for node in onnx.load(source).graph.node if _in_scope(node, DETECTOR_HEAD_SCOPE)]
    if not head:
        raise ValueError(
            f"{source}: no node of {DETECTOR_HEAD_SCOPE!r} found; was it written by export_detector?"
        )
    with tempfile.TemporaryDirectory(prefix="scenetext-quantize-") as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        # shape inference and graph optimisation first, as ONNX Runtime advises before static quantisation
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            prepared,
            source.parent / INT8_ONNX_FILE,
            _Feeds(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            weight_type=QuantType.QInt8,
            activation_type=QuantType.QUInt8,
            nodes_to_exclude=head,
        )
    return source.parent / INT8_ONNX_FILE


def _in_scope(node: Any, scope: str) -> bool:
    """Whether the exporter recorded `node` as part of the module `scope` (or a module inside it)."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            return f"'{scope}'" in prop.value
    return False


def _synthetic_scenes() -> list[Any]:
    from scenetext.data.synthetic import render_scene_sample

    return [render_scene_sample(index, seed=0)["image"] for index in range(DEFAULT_CALIBRATION_SCENES)]
