"""Accuracy of the ONNX Runtime backends (fp32 and int8) against PyTorch on synthetic data.

The embedded recognizer (assets/defaults/recognizer) is exported, quantised (dynamic int8) and read on held-out
synthetic words (seed 2000, as in the README's accuracy table); the embedded detector (assets/defaults/detector)
is exported, quantised (static int8, calibrated on synthetic scenes of seed 0, head in float) and run through the
detection pipeline on held-out synthetic scenes (seed 3000, the scene settings of its training config, as in the
README's table). Each backend is scored with the same protocol. With `--crops FOLDER ...`, the recognizer reads
the word crops of those `labels.txt` folders instead (real photographs, say; all folders scored as one set); with
`--scenes-folder FOLDER`, the detector reads that ICDAR-style folder of photographs (ICDAR 2015 ground truth).

    python benchmarks/onnx_accuracy.py --words 2000 --scenes 200 --json onnx-accuracy.json
    python benchmarks/onnx_accuracy.py --task recognizer --crops IIIT5K SVT --protocol 36
    python benchmarks/onnx_accuracy.py --task detector --scenes-folder IC15_TEST
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from rapidocr_comparison import compare_detectors, detection_pipeline_predictor

from scenetext.data.labelled_folder import read_labels_file
from scenetext.data.synthetic import (
    SyntheticSceneConfig,
    SyntheticWordConfig,
    render_scene_sample,
    render_word_sample,
)
from scenetext.data.synthetic_text import TextSampling
from scenetext.evaluation.metrics.detection import TextRegions, score_detection
from scenetext.evaluation.metrics.recognition import score_recognition
from scenetext.export.onnx_export import export_detector, export_recognizer
from scenetext.export.quantization import quantize_detector_int8, quantize_int8
from scenetext.modeling.clip4str import Clip4StrForSceneTextRecognition
from scenetext.modeling.tcm import TcmForSceneTextDetection
from scenetext.pipelines.crop_recognition import recognize_crops
from scenetext.pipelines.image_loading import load_rgb_image
from scenetext.pipelines.onnx_backend import INT8_ONNX_FILE, ONNX_FILE, OnnxDetector, OnnxRecognizer
from scenetext.pipelines.pipeline_tcm import SceneTextDetectionPipeline
from scenetext.processors.clip4str import Clip4StrProcessor
from scenetext.processors.tcm import TcmImageProcessor

DEFAULTS = Path(__file__).resolve().parents[1] / "assets" / "defaults"
# training/configs/detector-embedded.yaml: the scenes the embedded detector was trained and evaluated on
DETECTOR_SCENES = SyntheticSceneConfig(image_size=(256, 448), num_words=(1, 6), font_size=(16, 48))


def recognizer_accuracy(words: int, seed: int, protocol: str, crop_folders: list[str] | None = None) -> dict:
    folder = DEFAULTS / "recognizer"
    if crop_folders:
        listed = [crop for crop_folder in crop_folders for crop in read_labels_file(crop_folder)]
        crops, labels = [load_rgb_image(crop.path) for crop in listed], [crop.label for crop in listed]
        record: dict = {"crops": crop_folders, "words": len(crops), "protocol": protocol}
    else:
        config = SyntheticWordConfig(text=TextSampling(min_length=3, max_length=10))
        samples = [render_word_sample(index, seed, config) for index in range(words)]
        crops, labels = [sample["image"] for sample in samples], [sample["label"] for sample in samples]
        record = {"words": words, "seed": seed, "protocol": protocol}
    processor = Clip4StrProcessor.from_pretrained(folder)
    with tempfile.TemporaryDirectory() as exported:
        start = time.perf_counter()
        record["export_check"] = export_recognizer(folder, exported).__dict__
        record["export_s"] = time.perf_counter() - start
        quantize_int8(exported)
        backends = {
            "pytorch fp32": Clip4StrForSceneTextRecognition.from_pretrained(folder).eval(),
            "onnxruntime fp32": OnnxRecognizer(exported, ONNX_FILE),
            "onnxruntime int8": OnnxRecognizer(exported, INT8_ONNX_FILE),
        }
        readings = {}
        for name, recognizer in backends.items():
            readings[name] = [
                text for text, _ in recognize_crops(recognizer, processor, crops, batch_size=32)
            ]
            scores = score_recognition(readings[name], labels, protocol=protocol)
            record[name] = {"word_accuracy": scores.accuracy, "one_minus_ned": scores.one_minus_ned}
            print(f"recognizer {name}: word accuracy {scores.accuracy:.4f}, 1-NED {scores.one_minus_ned:.4f}")
    for name in ("onnxruntime fp32", "onnxruntime int8"):
        same = sum(a == b for a, b in zip(readings[name], readings["pytorch fp32"], strict=True))
        record[name]["same_text_as_pytorch"] = same
        print(f"recognizer {name}: same text as PyTorch on {same} of {len(crops)} words")
    return record


def detector_accuracy(scenes: int, seed: int, scenes_folder: str | None = None) -> dict:
    folder = DEFAULTS / "detector"
    record: dict = {"calibration": "synthetic scenes, seed 0"}
    if scenes_folder:
        record["scenes_folder"] = scenes_folder
    else:
        samples = [render_scene_sample(index, seed, DETECTOR_SCENES) for index in range(scenes)]
        ground_truth = [
            TextRegions([np.reshape(polygon, (-1, 2)) for polygon in sample["polygons"]], sample["texts"])
            for sample in samples
        ]
        images = [sample["image"] for sample in samples]
        record.update({"scenes": scenes, "seed": seed})
    with tempfile.TemporaryDirectory() as exported:
        record["export_check"] = export_detector(folder, exported).__dict__
        start = time.perf_counter()
        quantize_detector_int8(exported)
        record["quantize_s"] = time.perf_counter() - start
        image_processor = TcmImageProcessor.from_pretrained(folder)
        backends = {
            "pytorch fp32": TcmForSceneTextDetection.from_pretrained(folder).eval(),
            "onnxruntime fp32": OnnxDetector(exported, ONNX_FILE),
            "onnxruntime int8": OnnxDetector(exported, INT8_ONNX_FILE),
        }
        for name, model in backends.items():
            detector = SceneTextDetectionPipeline(model=model, image_processor=image_processor, device="cpu")
            if scenes_folder:
                (record[name],) = compare_detectors(
                    {name: detection_pipeline_predictor(detector)}, Path(scenes_folder)
                ).values()
                print(f"detector {name}: {record[name]}")
                continue
            start = time.perf_counter()
            found = [detector(image) for image in images]
            seconds = time.perf_counter() - start
            detections = [
                TextRegions([region["polygon"] for region in regions], scores=[r["score"] for r in regions])
                for regions in found
            ]
            counts = score_detection(list(zip(ground_truth, detections, strict=True)))
            record[name] = {
                "hmean": counts.hmean,
                "precision": counts.precision,
                "recall": counts.recall,
                "seconds": seconds,
            }
            print(
                f"detector {name}: hmean {counts.hmean:.4f} (P {counts.precision:.4f}, R {counts.recall:.4f}); "
                f"{seconds:.1f} s for {scenes} scenes"
            )
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["recognizer", "detector", "both"], default="both")
    parser.add_argument("--words", type=int, default=2000)
    parser.add_argument(
        "--crops", nargs="+", default=None, help="labels.txt folders to read instead of --words"
    )
    parser.add_argument("--word-seed", type=int, default=2000)
    parser.add_argument("--protocol", default="62")
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--scene-seed", type=int, default=3000)
    parser.add_argument("--scenes-folder", default=None, help="ICDAR-style folder of photos to read instead")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    record = {}
    if args.task in ("recognizer", "both"):
        record["recognizer"] = recognizer_accuracy(args.words, args.word_seed, args.protocol, args.crops)
    if args.task in ("detector", "both"):
        record["detector"] = detector_accuracy(args.scenes, args.scene_seed, args.scenes_folder)
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
