"""Detection accuracy of a detector folder at several inference scales, on synthetic photo-sized scenes.

Words of a 1280x720 photo shrink with the scale the detector reads it at: at a long side of 512 a 20-pixel word is
8 pixels high. This script renders held-out synthetic scenes at photo size (seed 4000: the embedded detector
trained on seed 0 and was evaluated on seeds 1000 and 3000) and scores the detection pipeline on them at each
`--sizes` entry (`parse_size` forms; `folder` is the folder's own `size`), ICDAR 2015 IoU protocol, at the folder's
post-processing settings.

    python benchmarks/detector_scale.py --scenes 50 --sizes folder 1280 icdar2015 736x1280 --json scale.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from scenetext.data.synthetic import SyntheticSceneConfig, render_scene_sample
from scenetext.evaluation.metrics.detection import TextRegions, score_detection
from scenetext.modeling.tcm import TcmForSceneTextDetection
from scenetext.pipelines.pipeline_tcm import SceneTextDetectionPipeline
from scenetext.processors.tcm import TcmImageProcessor, parse_size

DETECTOR = Path(__file__).resolve().parents[1] / "assets" / "defaults" / "detector"
# Photo-sized scenes with words of 12-40 pixels, as in a phone picture of signs.
PHOTO_SCENES = SyntheticSceneConfig(image_size=(640, 1280), num_words=(4, 12), font_size=(12, 40))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default=str(DETECTOR))
    parser.add_argument("--scenes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=4000)
    parser.add_argument("--sizes", nargs="+", default=["folder", "1280", "icdar2015", "736x1280"])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    samples = [render_scene_sample(index, args.seed, PHOTO_SCENES) for index in range(args.scenes)]
    ground_truth = [
        TextRegions([np.reshape(polygon, (-1, 2)) for polygon in sample["polygons"]], sample["texts"])
        for sample in samples
    ]
    image_processor = TcmImageProcessor.from_pretrained(args.folder)
    detector = SceneTextDetectionPipeline(
        model=TcmForSceneTextDetection.from_pretrained(args.folder).eval(),
        image_processor=image_processor,
        device="cpu",
    )
    record = {
        "folder": args.folder,
        "scenes": args.scenes,
        "seed": args.seed,
        "folder_size": image_processor.size,
    }
    for name in args.sizes:
        size = image_processor.size if name == "folder" else parse_size(name)
        start = time.perf_counter()
        found = [detector(sample["image"], size=size) for sample in samples]
        seconds = time.perf_counter() - start
        detections = [
            TextRegions([region["polygon"] for region in regions], scores=[r["score"] for r in regions])
            for regions in found
        ]
        counts = score_detection(list(zip(ground_truth, detections, strict=True)))
        record[name] = {
            "size": size,
            "hmean": counts.hmean,
            "precision": counts.precision,
            "recall": counts.recall,
            "seconds": seconds,
        }
        print(
            f"{name} {size}: hmean {counts.hmean:.4f} (P {counts.precision:.4f}, R {counts.recall:.4f}); "
            f"{seconds:.1f} s for {args.scenes} scenes"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
