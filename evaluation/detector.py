"""Evaluating a text detector on an ICDAR-style folder, or scoring ICDAR-format result files.

A dataset is a folder of images ``<name>.<jpg|png|...>`` with ground-truth files ``gt_<name>.txt`` beside
them or in a second folder (for ICDAR 2015: ``img_7.jpg`` and ``gt_img_7.txt``); result files are
``res_<name>.txt``. The model-independent part takes a `DetectionPredictor` (a batch of images -> regions
with scores), and `load_detector` builds one from a saved transformers folder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import islice
from pathlib import Path

import PIL.Image
from tqdm.auto import tqdm

from scenetext.data.corrupt_records import CorruptRecordLog
from scenetext.data.icdar import TextRegion, read_ground_truth, read_results
from scenetext.data.icdar_folder import icdar_detection_dataset
from scenetext.evaluation.metrics.detection import (
    TextRegions,
    match_image,
    score_detection,
    score_end_to_end,
    sweep_score_thresholds,
)
from scenetext.modeling.devices import place_model, resolve_device, resolve_precision
from scenetext.modeling.model_types import require_model_type
from scenetext.pipelines.image_loading import load_rgb_image

from .benchmarks import PRESET_NUM_POINTS, preset_num_points
from .reports import DetectionReport
from .visualize import draw_match

# A batch of RGB images -> the detected regions of each (polygons in image pixels, with scores).
DetectionPredictor = Callable[[list[PIL.Image.Image]], list[TextRegions]]


def _files_by_name(folder: Path, prefix: str) -> dict[str, Path]:
    """``<prefix><name>.txt`` files anywhere under `folder`, keyed by name; names must be unique."""
    files: dict[str, Path] = {}
    for path in sorted(folder.rglob(f"{prefix}*.txt")):
        name = path.stem[len(prefix) :]
        if name in files:
            raise ValueError(f"two files for sample {name!r}: {files[name]} and {path}")
        files[name] = path
    return files


def ground_truth_regions(regions: Sequence[TextRegion]) -> TextRegions:
    """Parsed ground-truth lines as the metric's regions (``###`` transcriptions mark don't care)."""
    return TextRegions([region.points for region in regions], [region.text for region in regions])


def detected_regions(regions: Sequence[TextRegion], with_text: bool = False) -> TextRegions:
    """Parsed result lines as the metric's regions; scores only when every line has one."""
    scores = [region.score for region in regions]
    return TextRegions(
        [region.points for region in regions],
        [region.text for region in regions] if with_text else None,
        None if None in scores else scores,
    )


def score_regions(
    images: Sequence[tuple[TextRegions, TextRegions]],
    source: dict[str, str],
    score_threshold: float | None = None,
    sweep: bool = False,
    end_to_end_protocol: str | None = None,
    preset: str | None = None,
    order_by_score: bool = False,
) -> DetectionReport:
    """Score (ground truth, detections) pairs: all detections, those above a threshold, or mmocr's sweep.

    Detections are matched in file order, or with `order_by_score` by descending score, as the official
    script does when run with confidences.
    """
    if not images:
        raise ValueError("no image to evaluate: an empty dataset has no precision or recall")
    if sweep and score_threshold is not None:
        raise ValueError("choose either a fixed score threshold or the threshold sweep, not both")
    if (sweep or score_threshold is not None or order_by_score) and any(
        det.scores is None and det.polygons for _, det in images
    ):
        raise ValueError(
            "score thresholds and score order need a score on every detection, but some have none"
        )
    if order_by_score:
        images = [(gt, det.sorted_by_score()) for gt, det in images]
    best = None
    if sweep:
        best = sweep_score_thresholds(images)
        counts = best.best
        kept = [(gt, det.above_score(best.best_threshold)) for gt, det in images]
    else:
        if score_threshold is not None:
            images = [(gt, det.above_score(score_threshold)) for gt, det in images]
        counts = score_detection(images)
        kept = list(images)
    end_to_end = score_end_to_end(kept, end_to_end_protocol) if end_to_end_protocol else None
    return DetectionReport(
        counts,
        len(images),
        source,
        score_threshold=score_threshold,
        sweep=best,
        end_to_end=end_to_end,
        end_to_end_protocol=end_to_end_protocol,
        preset=preset,
        detection_order="score" if order_by_score else "file",
    )


def score_result_files(
    predictions_dir: str | Path,
    ground_truth_dir: str | Path,
    num_points: int | None = 4,
    score_threshold: float | None = None,
    sweep: bool = False,
    end_to_end_protocol: str | None = None,
    order_by_score: bool = False,
) -> DetectionReport:
    """Score ``res_<name>.txt`` files against ``gt_<name>.txt`` files (ICDAR format, see `data.icdar`).

    A missing result file means no detections, as in the official script; a result file without ground
    truth is an error. With `end_to_end_protocol`, result lines carry a transcription after the
    coordinates (``x1,y1,...,transcription``) and reading is scored too.
    """
    predictions_dir, ground_truth_dir = Path(predictions_dir), Path(ground_truth_dir)
    for folder, what in ((predictions_dir, "predictions"), (ground_truth_dir, "ground-truth")):
        if not folder.is_dir():
            raise FileNotFoundError(f"{what} folder not found: {folder}")
    ground_truth_files = _files_by_name(ground_truth_dir, "gt_")
    if not ground_truth_files:
        raise ValueError(f"no ground-truth file (gt_<name>.txt) under {ground_truth_dir}")
    result_files = _files_by_name(predictions_dir, "res_")
    orphans = sorted(set(result_files) - set(ground_truth_files))
    if orphans:
        raise ValueError(
            f"result files without ground truth in {ground_truth_dir}: "
            + ", ".join(str(result_files[name]) for name in orphans)
        )
    images = []
    try:
        for name, gt_path in ground_truth_files.items():
            ground_truth = ground_truth_regions(read_ground_truth(gt_path, num_points))
            result_path = result_files.get(name)
            if result_path is None:
                detections = TextRegions([], [] if end_to_end_protocol else None, [])
            elif end_to_end_protocol:
                detections = detected_regions(read_ground_truth(result_path, num_points), with_text=True)
            else:
                detections = detected_regions(read_results(result_path, num_points))
            images.append((ground_truth, detections))
    except ValueError as error:
        raise ValueError(with_polygon_hint(str(error), num_points)) from error
    source = {"predictions": str(predictions_dir), "data": str(ground_truth_dir)}
    return score_regions(
        images, source, score_threshold, sweep, end_to_end_protocol, order_by_score=order_by_score
    )


def with_polygon_hint(message: str, num_points: int | None) -> str:
    """`message` of a malformed ICDAR line, plus, when quadrilaterals were expected, how polygon lines are
    read: a wrong preset (polygon files read as ICDAR2015 quads) is the usual cause."""
    if num_points is None or "coordinates" not in message:
        return message
    presets = [name for name, points in PRESET_NUM_POINTS.items() if points is None]
    return (
        f"{message} (lines with {num_points} points were expected: polygon files are read with "
        f"--preset {' or '.join(presets)}, num_points=None)"
    )


def _fail_on_corrupt_records(corrupt_records: CorruptRecordLog, num_points: int | None) -> None:
    # The data source skips what it cannot read (right for training); evaluation must not.
    records = corrupt_records.records()
    if records:
        message = f"unusable evaluation data: {records[0].location}: {records[0].reason}"
        raise ValueError(with_polygon_hint(message, num_points))


def evaluate_detector(
    predict: DetectionPredictor,
    images: str | Path,
    ground_truth: str | Path | None = None,
    preset: str = "icdar2015",
    batch_size: int = 1,
    score_threshold: float | None = None,
    sweep: bool = False,
    visualize_dir: str | Path | None = None,
    model_name: str | None = None,
    end_to_end_protocol: str | None = None,
) -> DetectionReport:
    """Run `predict` over an ICDAR-style folder and score it; optionally draw every image's matching.

    Images ``<name>.<ext>`` pair with ``gt_<name>.txt`` in `ground_truth` (default: the images folder, or its
    images and annotations sub-folders, see `data.icdar_folder.find_icdar_layout`). With
    `end_to_end_protocol` (36, 62 or 94), `predict` reads too (regions with transcriptions) and reading is
    scored as well.
    Evaluation is strict: an image without annotation (or the reverse), an undecodable image or a
    malformed annotation line is an error naming it, since skipping it would change the numbers.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    corrupt_records = CorruptRecordLog()
    samples = icdar_detection_dataset(images, ground_truth, preset_num_points(preset), corrupt_records)
    names: list[str] = []
    scored: list[tuple[TextRegions, TextRegions]] = []
    iterator = iter(samples)
    with tqdm(desc=f"detect {preset}", unit="img") as progress:
        while batch := list(islice(iterator, batch_size)):
            _fail_on_corrupt_records(corrupt_records, preset_num_points(preset))
            # Stored pixel orientation (no EXIF rotation), which is how the ICDAR annotations are given.
            detections = predict(
                [load_rgb_image(sample["image"], apply_exif_orientation=False) for sample in batch]
            )
            if len(detections) != len(batch):
                raise ValueError(f"the detector returned {len(detections)} results for {len(batch)} images")
            for sample, detected in zip(batch, detections, strict=True):
                names.append(sample["source"])
                scored.append((TextRegions(sample["polygons"], sample["texts"]), detected))
            progress.update(len(batch))
    _fail_on_corrupt_records(corrupt_records, preset_num_points(preset))
    data = str(images) if ground_truth is None else f"{images} + {ground_truth}"
    report = score_regions(
        scored,
        {"model": model_name or "<predict function>", "data": data},
        score_threshold,
        sweep,
        end_to_end_protocol,
        preset=preset,
    )
    if visualize_dir is not None:
        draw_matches(
            names,
            scored,
            Path(visualize_dir),
            report.sweep.best_threshold if report.sweep else score_threshold,
        )
    return report


def draw_matches(
    image_paths: Sequence[str],
    images: Sequence[tuple[TextRegions, TextRegions]],
    folder: Path,
    score_threshold: float | None = None,
) -> None:
    """Save ``<image name>.png`` pictures of how each image's detections were matched."""
    folder.mkdir(parents=True, exist_ok=True)
    for image_path, (ground_truth, detected) in zip(image_paths, images, strict=True):
        if score_threshold is not None:
            detected = detected.above_score(score_threshold)
        picture = draw_match(
            load_rgb_image(image_path, apply_exif_orientation=False),
            ground_truth,
            detected,
            match_image(ground_truth, detected),
        )
        picture.save(folder / f"{Path(image_path).stem}.png")


def load_detector(
    model_path: str | Path, preset: str = "icdar2015", device: str | None = None, dtype: str | None = None
) -> DetectionPredictor:
    """A predictor from a saved detector folder or Hub id (loaded with ``trust_remote_code=True``) that
    tests as TCM's released config for `preset` does: its test scale and its post-processing settings.
    Runs on CUDA when available unless `device` says otherwise."""
    import torch
    from transformers import AutoImageProcessor, AutoModel

    from scenetext.processors.tcm.image_processing_tcm import TEST_SIZES

    preset_num_points(preset)
    require_model_type(model_path, "tcm", "detector")  # before any weight is read
    torch_device = resolve_device(device)
    precision = resolve_precision(dtype)
    if precision.dynamic_int8:
        raise ValueError(
            "int8 quantizes linear layers, which a convolutional detector hardly has; use a float dtype"
        )
    model = place_model(
        AutoModel.from_pretrained(str(model_path), trust_remote_code=True), torch_device, precision
    )
    image_processor = AutoImageProcessor.from_pretrained(str(model_path), trust_remote_code=True)

    @torch.inference_mode()
    def predict(images: list[PIL.Image.Image]) -> list[TextRegions]:
        # Annotations are in raw pixel orientation, so EXIF rotation stays off.
        inputs = image_processor(images=images, size=TEST_SIZES[preset], apply_exif_orientation=False)
        outputs = model(pixel_values=inputs["pixel_values"].to(device=torch_device, dtype=precision.dtype))
        results = image_processor.post_process_text_detection(
            outputs,
            target_sizes=inputs["original_sizes"],
            resized_sizes=inputs["resized_sizes"],
            preset=preset,
        )
        return [
            TextRegions(
                [polygon.tolist() for polygon in result["polygons"]], scores=result["scores"].tolist()
            )
            for result in results
        ]

    return predict
