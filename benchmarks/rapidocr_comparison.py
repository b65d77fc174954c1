"""Our recognizer, detector and end-to-end OCR against RapidOCR (PP-OCRv4 mobile, ONNX) on the same files.

Both systems go through the same evaluation code: word accuracy under a recognition protocol (36 characters by
default) on a folder of word crops with a ``labels.txt`` (`data/labelled_folder.py`), and precision / recall /
hmean under the ICDAR 2015 IoU protocol, at each system's default threshold, on an ICDAR-style folder, plus
end-to-end reading on the same folder. Seconds per image are measured in the same run for both (the time
inside each system's call, after one warm-up call; both run on the CPU with `--threads` threads).

RapidOCR is optional: ``pip install "scenetext[compare]"`` (rapidocr-onnxruntime). Ours defaults to the
embedded checkpoints (`assets/defaults`); the detector runs at the test scale of `--preset`, end-to-end reading
is the OCR pipeline (`scenetext ocr`).

    python benchmarks/rapidocr_comparison.py --crops CROPS_DIR --scenes ICDAR_DIR --json comparison.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch

from scenetext.evaluation.benchmarks import PRESET_NUM_POINTS
from scenetext.evaluation.detector import DetectionPredictor, evaluate_detector, load_detector
from scenetext.evaluation.metrics.detection import TextRegions
from scenetext.evaluation.recognizer import (
    RecognitionPredictor,
    evaluate_recognizer_on_folder,
    load_recognizer,
)

RAPIDOCR_MISSING = (
    'this comparison needs RapidOCR: pip install "scenetext[compare]" (installs rapidocr-onnxruntime)'
)


def load_rapidocr(threads: int) -> Any:
    """A RapidOCR engine with its default models and settings, on `threads` threads.

    Raises:
        SystemExit: rapidocr-onnxruntime is not installed (the message says what to install).
    """
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as error:
        raise SystemExit(RAPIDOCR_MISSING) from error
    return RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1)


def rapidocr_recognizer(engine: Any) -> RecognitionPredictor:
    """RapidOCR's recogniser alone, one crop per call (its API reads one image at a time)."""

    def predict(images: list[PIL.Image.Image]) -> tuple[list[str], list[float]]:
        texts, scores = [], []
        for image in images:
            result, _ = engine(image, use_det=False, use_cls=False, use_rec=True)
            text, score = result[0] if result else ("", 0.0)
            texts.append(text)
            scores.append(float(score))
        return texts, scores

    return predict


def rapidocr_detector(engine: Any, read: bool = False) -> DetectionPredictor:
    """RapidOCR's detector (boxes without scores), or with `read` its whole pipeline (boxes with texts)."""

    def predict(images: list[PIL.Image.Image]) -> list[TextRegions]:
        regions = []
        for image in images:
            if read:
                result, _ = engine(image)
                boxes = [box for box, _, _ in result or []]
                texts = [text for _, text, _ in result or []]
            else:
                boxes, _ = engine(image, use_det=True, use_cls=False, use_rec=False)
                boxes, texts = boxes or [], None
            regions.append(TextRegions([np.ravel(box).tolist() for box in boxes], texts))
        return regions

    return predict


def ocr_pipeline_reader(ocr: Callable[[list[PIL.Image.Image]], list[list[dict]]]) -> DetectionPredictor:
    """Our OCR pipeline's readings as regions with transcriptions."""

    def predict(images: list[PIL.Image.Image]) -> list[TextRegions]:
        return [
            TextRegions(
                [np.ravel(reading["polygon"]).tolist() for reading in readings],
                [reading["text"] for reading in readings],
            )
            for readings in ocr(images)
        ]

    return predict


class Timed:
    """A predictor that adds up the seconds spent inside it and the images it was given."""

    def __init__(self, predict: Callable[[list[PIL.Image.Image]], Any]) -> None:
        self.predict = predict
        self.seconds = 0.0
        self.images = 0

    def __call__(self, images: list[PIL.Image.Image]) -> Any:
        start = time.perf_counter()
        result = self.predict(images)
        self.seconds += time.perf_counter() - start
        self.images += len(images)
        return result

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / self.images


def _warm_up(predict: Callable[[list[PIL.Image.Image]], Any], image_path: Path) -> None:
    # The first call of either system pays one-time costs (allocations, kernel choice) that a service pays once.
    with PIL.Image.open(image_path) as image:
        predict([image.convert("RGB")])


def compare_recognizers(
    systems: dict[str, RecognitionPredictor], crops: Path, protocol: str = "36", batch_size: int = 1
) -> dict[str, dict[str, float]]:
    """Word accuracy (%), samples scored and seconds per crop of each system on the same labelled folder."""
    from scenetext.data.labelled_folder import read_labels_file

    first_crop = read_labels_file(crops)[0].path
    results = {}
    for name, predict in systems.items():
        _warm_up(predict, first_crop)
        timed = Timed(predict)
        scores = evaluate_recognizer_on_folder(timed, crops, protocol, batch_size, model_name=name)
        (dataset,) = scores.datasets.values()
        results[name] = {
            "word_accuracy": 100 * dataset.accuracy,
            "num_samples": dataset.num_samples,
            "seconds_per_image": timed.seconds_per_image,
        }
    return results


def compare_detectors(
    systems: dict[str, DetectionPredictor],
    scenes: Path,
    preset: str = "icdar2015",
    end_to_end_protocol: str | None = None,
) -> dict[str, dict[str, float]]:
    """Precision, recall, hmean (%) and seconds per image of each system on the same ICDAR-style folder;
    with `end_to_end_protocol` the systems read too, and the end-to-end hmean is added."""
    from scenetext.data.icdar_folder import IMAGE_SUFFIXES, find_icdar_layout

    images, _ = find_icdar_layout(scenes)
    first_image = min(path for path in images.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    results = {}
    for name, predict in systems.items():
        _warm_up(predict, first_image)
        timed = Timed(predict)
        report = evaluate_detector(
            timed, scenes, preset=preset, model_name=name, end_to_end_protocol=end_to_end_protocol
        )
        results[name] = {
            "precision": 100 * report.counts.precision,
            "recall": 100 * report.counts.recall,
            "hmean": 100 * report.counts.hmean,
            "num_images": report.num_images,
            "seconds_per_image": timed.seconds_per_image,
        }
        if report.end_to_end is not None:
            results[name]["end_to_end_hmean"] = 100 * report.end_to_end.hmean
    return results


def format_rows(title: str, results: dict[str, dict[str, float]], metric: str) -> list[str]:
    """One line per system: `metric` and seconds per image."""
    return [
        f"{title}: {name} {values[metric]:.1f} ({values['seconds_per_image']:.3f} s/img)"
        for name, values in results.items()
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=Path, help="folder of word crops with a labels.txt")
    parser.add_argument("--scenes", type=Path, help="ICDAR-style folder of images and gt_*.txt files")
    parser.add_argument("--recognizer", type=Path, help="our recognizer folder (default: embedded)")
    parser.add_argument("--detector", type=Path, help="our detector folder (default: embedded)")
    parser.add_argument(
        "--preset",
        default="icdar2015",
        choices=list(PRESET_NUM_POINTS),
        help="ground truth format, and our detector's test scale and settings",
    )
    parser.add_argument("--protocol", default="36", choices=("36", "62", "94"))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", type=Path, help="write the record to this file")
    args = parser.parse_args(argv)
    if args.crops is None and args.scenes is None:
        parser.error("give --crops, --scenes or both")
    engine = load_rapidocr(args.threads)  # before any of our loading: a missing package stops at once
    torch.set_num_threads(args.threads)

    from scenetext.cli.ocr import default_checkpoints, load_ocr_pipeline

    embedded_recognizer, embedded_detector = default_checkpoints()
    recognizer = args.recognizer or embedded_recognizer
    detector = args.detector or embedded_detector
    record: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "threads": args.threads,
        "load_average": os.getloadavg()[0],
        "ours": {"recognizer": str(recognizer), "detector": str(detector), "preset": args.preset},
        "rapidocr": "rapidocr-onnxruntime default models (PP-OCRv4 mobile det/rec, mobile v2 cls)",
    }
    lines = []
    if args.crops is not None:
        record["recognition"] = compare_recognizers(
            {"ours": load_recognizer(recognizer, "cpu"), "rapidocr": rapidocr_recognizer(engine)},
            args.crops,
            args.protocol,
        )
        lines += format_rows("word accuracy", record["recognition"], "word_accuracy")
    if args.scenes is not None:
        record["detection"] = compare_detectors(
            {"ours": load_detector(detector, args.preset, "cpu"), "rapidocr": rapidocr_detector(engine)},
            args.scenes,
            args.preset,
        )
        lines += format_rows("detection hmean", record["detection"], "hmean")
        ocr = load_ocr_pipeline(detector, recognizer, "cpu")
        record["end_to_end"] = compare_detectors(
            {"ours": ocr_pipeline_reader(ocr), "rapidocr": rapidocr_detector(engine, read=True)},
            args.scenes,
            args.preset,
            end_to_end_protocol=args.protocol,
        )
        lines += format_rows("end-to-end hmean", record["end_to_end"], "end_to_end_hmean")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(record, indent=2))
    return record


if __name__ == "__main__":
    main()
