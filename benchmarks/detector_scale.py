"""Detection accuracy of a detector folder at several inference scales and score thresholds, on synthetic
photo-sized scenes.

Words of a 1280x720 photo shrink with the scale the detector reads it at: at a long side of 512 a 20-pixel word is
8 pixels high. This script renders held-out synthetic scenes at photo size (seed 4000: the embedded detector
trained on seed 0 and was evaluated on seeds 1000 and 3000) and scores the detection pipeline on them at each
`--sizes` entry (`parse_size` forms; `folder` is the folder's own `size`), ICDAR 2015 IoU protocol, at the folder's
post-processing settings, or with each `--min-scores` entry (choosing the default threshold on held-out
synthetic scenes rather than on test photos). `--photo-backgrounds DIR...` draws the scenes on real-photo
backgrounds with the system's fonts, words of `--words-file`, textless patterns and negatives, as
`training/configs/detector-real.yaml` does (its training seed is 31, evaluation seed 1001).

    python benchmarks/detector_scale.py --scenes 50 --sizes folder 1280 icdar2015 736x1280 --json scale.json
    python benchmarks/detector_scale.py --sizes 1280 --min-scores 0.3 0.4 0.5 0.6 0.7 \
        --photo-backgrounds ../scenetext-real-data/backgrounds /usr/share/backgrounds
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from scenetext.data.synthetic import SyntheticSceneConfig, render_scene_sample
from scenetext.data.synthetic_text import TextSampling
from scenetext.evaluation.metrics.detection import TextRegions, score_detection
from scenetext.modeling.tcm import TcmForSceneTextDetection
from scenetext.pipelines.pipeline_tcm import SceneTextDetectionPipeline
from scenetext.processors.tcm import TcmImageProcessor, parse_size
from scenetext.training.config import dataclass_from_mapping, load_config

DETECTOR = Path(__file__).resolve().parents[1] / "assets" / "defaults" / "detector"
# Photo-sized scenes with words of 12-40 pixels, as in a phone picture of signs.
PHOTO_SCENES = SyntheticSceneConfig(image_size=(640, 1280), num_words=(4, 12), font_size=(12, 40))


def realistic_scenes(background_dirs: list[str], words_file: str | None) -> SyntheticSceneConfig:
    """The scenes of the real-photo training (`detector-real.yaml`'s evaluation scenes) at `PHOTO_SCENES`'s
    image and font sizes with up to 12 words, drawn on `background_dirs`, with words of `words_file`."""
    scene = load_config("detector-real").data["eval"]["scene"]
    return replace(
        dataclass_from_mapping(SyntheticSceneConfig, scene, "detector-real data.eval.scene"),
        text=TextSampling(max_length=12, word_probability=0.75, words_file=words_file),
        image_size=PHOTO_SCENES.image_size,
        num_words=(0, 12),
        font_size=PHOTO_SCENES.font_size,
        background_dirs=tuple(background_dirs),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default=str(DETECTOR))
    parser.add_argument("--scenes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=4000)
    parser.add_argument("--sizes", nargs="+", default=["folder", "1280", "icdar2015", "736x1280"])
    parser.add_argument("--min-scores", nargs="+", type=float, default=None)
    parser.add_argument("--photo-backgrounds", nargs="+", default=None)
    parser.add_argument("--words-file", default="/usr/share/dict/words")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    scenes = PHOTO_SCENES
    if args.photo_backgrounds:
        scenes = realistic_scenes(args.photo_backgrounds, args.words_file)
    samples = [render_scene_sample(index, args.seed, scenes) for index in range(args.scenes)]
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
        "realistic": bool(args.photo_backgrounds),
    }
    thresholds = args.min_scores or [None]
    for name in args.sizes:
        size = image_processor.size if name == "folder" else parse_size(name)
        for min_score in thresholds:
            settings = {} if min_score is None else {"min_score": min_score}
            start = time.perf_counter()
            found = [detector(sample["image"], size=size, **settings) for sample in samples]
            seconds = time.perf_counter() - start
            detections = [
                TextRegions([region["polygon"] for region in regions], scores=[r["score"] for r in regions])
                for regions in found
            ]
            counts = score_detection(list(zip(ground_truth, detections, strict=True)))
            key = name if min_score is None else f"{name}@{min_score}"
            record[key] = {
                "size": size,
                "min_score": min_score,
                "hmean": counts.hmean,
                "precision": counts.precision,
                "recall": counts.recall,
                "seconds": seconds,
            }
            print(
                f"{key} {size}: hmean {counts.hmean:.4f} (P {counts.precision:.4f}, R {counts.recall:.4f}); "
                f"{seconds:.1f} s for {args.scenes} scenes"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
