"""ONNX export round trips at tiny sizes: the exported file, run by ONNX Runtime, gives PyTorch's outputs,
and the backend wrappers feed the pipelines' shared pre- and post-processing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("onnxruntime", reason="the ONNX export tests need the [onnx] extra (onnxruntime)")
pytest.importorskip("onnxscript", reason="the ONNX export tests need the [onnx] extra (onnxscript)")
import onnx  # installed with onnxscript

from scenetext.cli.main import main
from scenetext.export.onnx_export import REPORT_FILE, export_detector, export_recognizer
from scenetext.export.quantization import quantize_detector_int8, quantize_int8
from scenetext.modeling.clip4str import Clip4StrConfig, Clip4StrForSceneTextRecognition
from scenetext.modeling.tcm import TcmForSceneTextDetection
from scenetext.pipelines.crop_recognition import recognize_crops
from scenetext.pipelines.onnx_backend import INT8_ONNX_FILE, OnnxDetector, OnnxRecognizer
from scenetext.processors.clip4str import (
    Clip4StrImageProcessor,
    Clip4StrProcessor,
    Clip4StrTokenizer,
)
from tests.tiny_models import save_tiny_detector

# Exporting the unrolled decoding takes minutes on 2 cores.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recognizer_folder(tmp_path_factory):
    """The tiny preset with short labels (6 characters): the exported graph holds every decoding step and
    every caption-merge round, so its size grows with the label length."""
    torch.manual_seed(0)
    config = Clip4StrConfig.from_preset("tiny", max_label_length=6)
    folder = tmp_path_factory.mktemp("recognizer")
    Clip4StrForSceneTextRecognition(config).eval().save_pretrained(folder)
    Clip4StrProcessor(
        Clip4StrImageProcessor(size=config.vision_config.image_size), Clip4StrTokenizer()
    ).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def exported_recognizer(recognizer_folder, tmp_path_factory):
    output = tmp_path_factory.mktemp("recognizer-onnx")
    return output, export_recognizer(recognizer_folder, output)


def test_recognizer_export_matches_pytorch(recognizer_folder, exported_recognizer):
    output, check = exported_recognizer
    assert check.ids_identical and check.max_abs_difference <= 1e-3
    assert json.loads((output / REPORT_FILE).read_text())["task"] == "recognizer"
    # A batch size the check did not use, and crops through the shared pre/post-processing of both backends.
    processor = Clip4StrProcessor.from_pretrained(output)
    model = Clip4StrForSceneTextRecognition.from_pretrained(recognizer_folder).eval()
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (20 + 3 * index, 60, 3), dtype=np.uint8) for index in range(5)]
    expected = recognize_crops(model, processor, crops, batch_size=5)
    received = recognize_crops(OnnxRecognizer(output), processor, crops, batch_size=5)
    assert [text for text, _ in received] == [text for text, _ in expected]
    np.testing.assert_allclose([s for _, s in received], [s for _, s in expected], atol=1e-4)


def test_recognizer_int8_file_runs(exported_recognizer):
    output, _ = exported_recognizer
    path = quantize_int8(output)
    logits = OnnxRecognizer(output, file_name=INT8_ONNX_FILE)(torch.rand(2, 3, 32, 32)).logits
    # 6 characters + [E] per sample; int8 rounding is measured on data (see the report), not asserted here.
    assert path.name == INT8_ONNX_FILE and logits.shape[:2] == (2, 7) and bool(torch.isfinite(logits).all())
    # Every matrix product by a weight became an int8 one: none reads a float weight, directly or transposed.
    float_weight_products = _weight_matmuls(onnx.load(output / "model.onnx").graph)
    int8_graph = onnx.load(path).graph
    assert float_weight_products and not _weight_matmuls(int8_graph)
    integer_products = [node for node in int8_graph.node if node.op_type == "MatMulInteger"]
    assert len(integer_products) == len(float_weight_products)


def _weight_matmuls(graph) -> list:
    """The MatMul nodes of `graph` whose second input is an initializer or a Transpose of one."""
    initializers = {tensor.name for tensor in graph.initializer}
    transposed = {
        node.output[0] for node in graph.node if node.op_type == "Transpose" and node.input[0] in initializers
    }
    return [
        node
        for node in graph.node
        if node.op_type == "MatMul" and (node.input[1] in initializers or node.input[1] in transposed)
    ]


def test_detector_export_dynamic_sizes(tmp_path):
    folder = save_tiny_detector(tmp_path / "detector")
    check = export_detector(folder, tmp_path / "onnx")
    assert check.max_abs_difference <= 1e-3
    model = TcmForSceneTextDetection.from_pretrained(folder).eval()
    pixel_values = torch.randn(3, 3, 128, 64)
    with torch.no_grad():
        expected = model(pixel_values, output_threshold_maps=False).prob_map
    received = OnnxDetector(tmp_path / "onnx")(pixel_values).prob_map
    torch.testing.assert_close(received, expected, atol=1e-3, rtol=0)

    rng = np.random.default_rng(0)
    calibration = [rng.integers(0, 256, (40 + 20 * index, 90, 3), dtype=np.uint8) for index in range(3)]
    path = quantize_detector_int8(tmp_path / "onnx", calibration)
    graph = onnx.load(path).graph
    producers = {output: node.op_type for node in graph.node for output in node.output}
    convolutions = [node for node in graph.node if node.op_type in ("Conv", "ConvTranspose")]
    int8_weights = [node.name for node in convolutions if producers.get(node.input[1]) == "DequantizeLinear"]
    # the backbone's convolutions read int8 weights; the head's last transposed convolution stays float
    assert len(int8_weights) > len(convolutions) // 2
    assert convolutions[-1].op_type == "ConvTranspose" and convolutions[-1].name not in int8_weights
    int8_map = OnnxDetector(tmp_path / "onnx", INT8_ONNX_FILE)(pixel_values).prob_map
    assert int8_map.shape == expected.shape and float((int8_map - expected).abs().mean()) < 0.05


def test_export_command(tmp_path, capsys):
    folder = save_tiny_detector(tmp_path / "detector")
    assert main(["export", "detector", str(folder), str(tmp_path / "onnx")]) == 0
    assert "model.onnx" in capsys.readouterr().out
    images = tmp_path / "calibration"
    images.mkdir()
    for index in range(2):
        Image.new("RGB", (60 + 10 * index, 40), (40 * index, 90, 200)).save(images / f"{index}.png")
    command = ["export", "detector", str(folder), str(tmp_path / "onnx-int8"), "--int8"]
    assert main([*command, "--calibration", str(images)]) == 0
    assert f"static int8 quantisation calibrated on 2 images of {images}" in capsys.readouterr().out
    assert (tmp_path / "onnx-int8" / INT8_ONNX_FILE).is_file()
    assert main(["export", "detector", str(folder), str(tmp_path / "x"), "--calibration", str(images)]) == 2
    assert main(["export", "detector", str(tmp_path / "missing"), str(tmp_path / "x")]) == 2
