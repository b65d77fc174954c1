"""Accuracy of the ONNX Runtime backends (fp32 and dynamic int8) against PyTorch on synthetic data.

The embedded recognizer (assets/defaults/recognizer) is exported, quantised and read on held-out synthetic words
(seed 2000, as in the README's accuracy table); the three backends are scored with the same protocol.

    python benchmarks/onnx_accuracy.py --words 2000 --json onnx-accuracy.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from scenetext.data.synthetic import SyntheticWordConfig, render_word_sample
from scenetext.data.synthetic_text import TextSampling
from scenetext.evaluation.metrics.recognition import score_recognition
from scenetext.export.onnx_export import INT8_ONNX_FILE, ONNX_FILE, export_recognizer, quantize_int8
from scenetext.modeling.clip4str import Clip4StrForSceneTextRecognition
from scenetext.pipelines.crop_recognition import recognize_crops
from scenetext.pipelines.onnx_backend import OnnxRecognizer
from scenetext.processors.clip4str import Clip4StrProcessor

RECOGNIZER = Path(__file__).resolve().parents[1] / "assets" / "defaults" / "recognizer"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=2000)
    parser.add_argument("--protocol", default="62")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    config = SyntheticWordConfig(text=TextSampling(min_length=3, max_length=10))
    samples = [render_word_sample(index, args.seed, config) for index in range(args.words)]
    crops, labels = [sample["image"] for sample in samples], [sample["label"] for sample in samples]
    processor = Clip4StrProcessor.from_pretrained(RECOGNIZER)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        check = export_recognizer(RECOGNIZER, folder)
        export_seconds = time.perf_counter() - start
        quantize_int8(folder)
        backends = {
            "pytorch fp32": Clip4StrForSceneTextRecognition.from_pretrained(RECOGNIZER).eval(),
            "onnxruntime fp32": OnnxRecognizer(folder, ONNX_FILE),
            "onnxruntime int8": OnnxRecognizer(folder, INT8_ONNX_FILE),
        }
        record = {
            "words": args.words,
            "seed": args.seed,
            "protocol": args.protocol,
            "export_s": export_seconds,
        }
        record["export_check"] = check.__dict__
        readings = {}
        for name, recognizer in backends.items():
            readings[name] = [
                text for text, _ in recognize_crops(recognizer, processor, crops, batch_size=32)
            ]
            scores = score_recognition(readings[name], labels, protocol=args.protocol)
            record[name] = {"word_accuracy": scores.accuracy, "one_minus_ned": scores.one_minus_ned}
            print(f"{name}: word accuracy {scores.accuracy:.4f}, 1-NED {scores.one_minus_ned:.4f}")
        for name in ("onnxruntime fp32", "onnxruntime int8"):
            same = sum(a == b for a, b in zip(readings[name], readings["pytorch fp32"], strict=True))
            record[name]["same_text_as_pytorch"] = same
            print(f"{name}: same text as PyTorch on {same} of {args.words} words")
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
