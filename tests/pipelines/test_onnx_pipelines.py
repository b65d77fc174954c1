"""The detection and OCR pipelines on the ONNX Runtime backend give the PyTorch backend's results (tiny sizes):
the same pre- and post-processing around an exported detector (and recognizer, in the slow tier)."""

import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("onnxruntime", reason="the ONNX backend tests need the [onnx] extra (onnxruntime)")
pytest.importorskip("onnxscript", reason="exporting the tiny models needs the [onnx] extra (onnxscript)")

from scenetext.cli.main import main
from scenetext.data.synthetic import SyntheticSceneConfig, render_scene_sample
from scenetext.export.onnx_export import export_detector, export_recognizer
from scenetext.modeling.clip4str import Clip4StrForSceneTextRecognition
from scenetext.modeling.tcm import TcmForSceneTextDetection
from scenetext.pipelines import OcrPipeline
from scenetext.pipelines.onnx_backend import OnnxDetector, OnnxRecognizer
from scenetext.pipelines.pipeline_clip4str import SceneTextRecognitionPipeline
from scenetext.pipelines.pipeline_tcm import SceneTextDetectionPipeline
from scenetext.processors.clip4str import Clip4StrProcessor
from scenetext.processors.tcm import TcmImageProcessor

from ..tiny_models import save_tiny_detector, save_tiny_recognizer, tiny_recognizer

pytestmark = pytest.mark.usefixtures("single_thread")

# The tiny detector's random weights put its probability map around 0.7: a high threshold keeps a few dozen
# separate regions to compare.
POST_PROCESSING = {"threshold": 0.8, "min_score": 0.0}


@pytest.fixture(scope="module")
def detector_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("detector")
    image_processor = TcmImageProcessor(
        size={"shortest_edge": 64, "longest_edge": 128}, post_processing=POST_PROCESSING
    )
    folder = save_tiny_detector(root / "pytorch", image_processor)
    export_detector(folder, root / "onnx")
    return folder, root / "onnx"


@pytest.fixture(scope="module")
def scenes():
    config = SyntheticSceneConfig(image_size=(120, 200), num_words=(2, 3), font_size=(20, 30))
    scenes = [np.asarray(render_scene_sample(index, seed=1, config=config)["image"]) for index in range(2)]
    # and a strip long enough to be read in tiles
    return [*scenes, np.tile(scenes[0][:20], (1, 6, 1))]


def _assert_same_regions(received, expected):
    assert len(received) == len(expected) > 0
    for got, want in zip(received, expected, strict=True):
        assert got["box"] == want["box"]
        np.testing.assert_allclose(got["polygon"], want["polygon"], atol=1e-3)
        assert got["score"] == pytest.approx(want["score"], abs=1e-4)


@pytest.mark.slow  # the export (torch.export, then ONNX Runtime's check) takes a minute on a busy 2-core machine
def test_detection_pipeline_on_onnx_runtime_matches_pytorch(detector_folders, scenes):
    folder, exported = detector_folders
    pytorch = SceneTextDetectionPipeline(
        model=TcmForSceneTextDetection.from_pretrained(folder).eval(),
        image_processor=TcmImageProcessor.from_pretrained(folder),
        device="cpu",
    )
    # no device given: a backend that is not a torch module keeps the pipeline on its own device (the CPU)
    onnx = SceneTextDetectionPipeline(
        model=OnnxDetector(exported), image_processor=TcmImageProcessor.from_pretrained(exported)
    )
    assert onnx.device.type == "cpu"
    for settings in ({}, {"size": {"longest_edge": 96}, "max_aspect_ratio": 2}):
        expected = pytorch(scenes, batch_size=2, **settings)
        received = onnx(scenes, batch_size=2, **settings)
        for got, want in zip(received, expected, strict=True):
            _assert_same_regions(got, want)


@pytest.mark.slow
def test_ocr_pipeline_with_an_onnx_detector_matches_pytorch(detector_folders, scenes):
    folder, exported = detector_folders
    recognizer, processor = tiny_recognizer()
    pytorch = OcrPipeline(
        model=TcmForSceneTextDetection.from_pretrained(folder).eval(),
        image_processor=TcmImageProcessor.from_pretrained(folder),
        recognizer=recognizer,
        recognizer_processor=processor,
        device="cpu",
    )
    onnx = OcrPipeline(
        model=OnnxDetector(exported),
        image_processor=TcmImageProcessor.from_pretrained(exported),
        recognizer=recognizer,
        recognizer_processor=processor,
    )
    for got, want in zip(onnx(scenes), pytorch(scenes), strict=True):
        _assert_same_regions(got, want)
        assert [region["text"] for region in got] == [region["text"] for region in want]


def test_ocr_cli_onnx_backend_needs_exported_folders(tmp_path, capsys):
    image = tmp_path / "scene.png"
    Image.new("RGB", (64, 32), "white").save(image)
    assert main(["ocr", str(image), "--backend", "onnx", "--out", str(tmp_path / "out")]) == 2
    assert "--backend onnx needs --detector and --recognizer folders written by scenetext export" in (
        capsys.readouterr().err
    )
    # save_pretrained folders: the right model types, but no ONNX files
    detector = save_tiny_detector(tmp_path / "detector")
    recognizer = save_tiny_recognizer(tmp_path / "recognizer")
    args = [
        "ocr",
        str(image),
        "--backend",
        "onnx",
        "--detector",
        str(detector),
        "--recognizer",
        str(recognizer),
    ]
    args += ["--out", str(tmp_path / "out")]
    assert main(args) == 2
    assert f"detector folder {detector} has no model.onnx: write it with scenetext export detector" in (
        capsys.readouterr().err
    )
    assert main([*args, "--dtype", "int8"]) == 2
    assert f"detector folder {detector} has no model.int8.onnx" in capsys.readouterr().err
    assert main([*args, "--dtype", "bf16"]) == 2
    assert (
        "--backend onnx runs float32 (model.onnx) or int8 (model.int8.onnx), not bf16"
        in capsys.readouterr().err
    )
    assert main([*args, "--device", "cuda"]) == 2
    assert "--backend onnx runs on the CPU" in capsys.readouterr().err
    assert (
        main(
            [
                *args[:2],
                "--detector",
                str(detector),
                "--recognizer",
                str(recognizer),
                "--detector-size",
                "huge",
            ]
        )
        == 2
    )
    assert "unknown detector size 'huge'" in capsys.readouterr().err


@pytest.mark.slow  # exporting the unrolled decoding takes minutes on 2 cores
def test_scenetext_ocr_and_recognition_on_onnx_runtime_read_as_pytorch(detector_folders, scenes, tmp_path):
    folder, exported = detector_folders
    recognizer = save_tiny_recognizer(tmp_path / "recognizer")
    export_recognizer(recognizer, tmp_path / "recognizer-onnx")
    image = tmp_path / "scene.png"
    Image.fromarray(scenes[0]).save(image)
    settings = ["--detector-size", "96", "--max-aspect-ratio", "4", "--device", "cpu"]
    pytorch = ["--detector", str(folder), "--recognizer", str(recognizer)]
    onnx = [
        "--backend",
        "onnx",
        "--detector",
        str(exported),
        "--recognizer",
        str(tmp_path / "recognizer-onnx"),
    ]
    assert main(["ocr", str(image), *pytorch, *settings, "--out", str(tmp_path / "pytorch")]) == 0
    assert main(["ocr", str(image), *onnx, *settings, "--out", str(tmp_path / "onnx")]) == 0
    expected = json.loads((tmp_path / "pytorch" / "scene.json").read_text())
    received = json.loads((tmp_path / "onnx" / "scene.json").read_text())
    _assert_same_regions(received, expected)
    assert [region["text"] for region in received] == [region["text"] for region in expected]

    crops = [scenes[0][:30, :80], scenes[1][20:60, 10:150]]
    reader = SceneTextRecognitionPipeline(
        model=Clip4StrForSceneTextRecognition.from_pretrained(recognizer).eval(),
        processor=Clip4StrProcessor.from_pretrained(recognizer),
        device="cpu",
    )
    onnx_reader = SceneTextRecognitionPipeline(
        model=OnnxRecognizer(tmp_path / "recognizer-onnx"),
        processor=Clip4StrProcessor.from_pretrained(tmp_path / "recognizer-onnx"),
    )
    for got, want in zip(onnx_reader(crops), reader(crops), strict=True):
        assert got[0]["generated_text"] == want[0]["generated_text"]
        assert got[0]["score"] == pytest.approx(want[0]["score"], abs=1e-4)
