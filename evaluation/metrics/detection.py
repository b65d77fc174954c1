"""The ICDAR 2015 IoU protocol for text detection, its score-threshold sweep, and an end-to-end variant.

Semantics follow the official Robust Reading Competition script (Challenge 4, Task 1) as summarised in
`design/metrics.md`:

* a ground-truth region transcribed exactly ``###`` is *don't care*;
* a detection whose area lies more than half inside one don't-care region (tested region by region, never
  summed) is discarded: it leaves both matching and the precision denominator;
* matching is greedy and one-to-one: ground truth in order, detections in order, the first unmatched care
  detection with IoU strictly above 0.5 wins (not the best one);
* precision, recall and hmean come from counts summed over the dataset, not from averaging images.

Beyond the official script, which reads integer quadrilaterals only, coordinates may be floats and polygons
may have any number of points (as DB's and mmocr's evaluators allow); orientation never matters.

A polygon that shapely finds invalid (self-intersecting, zero area) is *kept in the counts*, as the official
script keeps it (DB's evaluator drops it; mmocr repairs it with ``buffer(0)``, which can lose a lobe): it
is repaired with `shapely.make_valid`, which keeps all of its area, and a warning is issued; a zero-area detection therefore stays a false positive and a zero-area ground truth
stays a miss.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely

from scenetext.processors.clip4str.tokenization_clip4str import CharsetAdapter, normalize_label

from .recognition import DEFAULT_PROTOCOL, protocol_charset

DONT_CARE = "###"
IOU_THRESHOLD = 0.5
DONT_CARE_AREA_THRESHOLD = 0.5
# mmocr 0.4 (the copy TCM evaluates with) first keeps detections with score > 0.3, then tries the thresholds
# `i * 0.1` for i = 3..9, computed in floating point (so the first is 0.30000000000000004), keeping
# detections with score >= threshold, and reports the first best hmean.
MMOCR_MIN_SCORE = 0.3
MMOCR_SCORE_THRESHOLDS: tuple[float, ...] = tuple(i * 0.1 for i in range(3, 10))

Polygon = Sequence[float] | Sequence[Sequence[float]]


@dataclass(frozen=True)
class TextRegions:
    """The text regions of one image: ground truth (with transcriptions) or detections (with scores)."""

    polygons: Sequence[Polygon]
    transcriptions: Sequence[str] | None = None
    scores: Sequence[float] | None = None

    def __post_init__(self) -> None:
        for name in ("transcriptions", "scores"):
            values = getattr(self, name)
            if values is not None and len(values) != len(self.polygons):
                raise ValueError(f"{len(values)} {name} for {len(self.polygons)} polygons")

    @property
    def dont_care(self) -> list[bool]:
        """Which regions are don't care (transcription exactly ``###``)."""
        if self.transcriptions is None:
            return [False] * len(self.polygons)
        return [text == DONT_CARE for text in self.transcriptions]

    def above_score(self, threshold: float, inclusive: bool = True) -> TextRegions:
        """The regions whose score is >= threshold (or > threshold when not inclusive)."""
        if self.scores is None:
            raise ValueError("score thresholds need detection scores, but these regions have none")
        keep = [i for i, s in enumerate(self.scores) if (s >= threshold if inclusive else s > threshold)]
        return TextRegions(
            polygons=[self.polygons[i] for i in keep],
            transcriptions=None if self.transcriptions is None else [self.transcriptions[i] for i in keep],
            scores=[self.scores[i] for i in keep],
        )

    def sorted_by_score(self) -> TextRegions:
        """The regions by descending score, ordered as the official script does when confidences are on.

        It sorts with ``np.argsort(-scores)`` (NumPy's default, unstable sort), so ties are ordered the same
        way here; as matching is greedy, the order can change the counts.
        """
        if self.scores is None:
            raise ValueError("ordering by score needs detection scores, but these regions have none")
        order = np.argsort(-np.asarray(self.scores, dtype=np.float64)).tolist()
        return TextRegions(
            polygons=[self.polygons[i] for i in order],
            transcriptions=None if self.transcriptions is None else [self.transcriptions[i] for i in order],
            scores=[self.scores[i] for i in order],
        )


@dataclass(frozen=True)
class DetectionCounts:
    """Counts of one image or a whole dataset; precision, recall and hmean are the dataset values."""

    num_gt_care: int = 0
    num_det_care: int = 0
    num_matched: int = 0

    def __add__(self, other: DetectionCounts) -> DetectionCounts:
        return DetectionCounts(
            self.num_gt_care + other.num_gt_care,
            self.num_det_care + other.num_det_care,
            self.num_matched + other.num_matched,
        )

    # Dataset values follow the official script's method-level rule: a rate with a zero denominator is 0.
    # (Its per-image numbers, which nothing here reports, call recall 1 when an image has no care text.)
    @property
    def recall(self) -> float:
        return self.num_matched / self.num_gt_care if self.num_gt_care else 0.0

    @property
    def precision(self) -> float:
        return self.num_matched / self.num_det_care if self.num_det_care else 0.0

    @property
    def hmean(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


@dataclass(frozen=True)
class ImageMatch:
    """How the regions of one image were paired."""

    matches: list[tuple[int, int]]  # (ground-truth index, detection index), in matching order
    dont_care_gt: list[int]
    discarded_detections: list[int]  # detections removed by a don't-care region
    counts: DetectionCounts


def to_geometry(polygon: Polygon) -> shapely.Geometry:
    """A shapely geometry from ``[x1, y1, ..., xn, yn]`` or ``[[x1, y1], ...]`` (n >= 3, any orientation)."""
    points = np.asarray(polygon, dtype=np.float64)
    if points.ndim == 1:
        if points.size % 2:
            raise ValueError(f"a flat polygon needs an even number of coordinates, got {points.size}")
        points = points.reshape(-1, 2)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < 3:
        raise ValueError(f"a polygon needs at least 3 (x, y) points, got array of shape {points.shape}")
    geometry = shapely.Polygon(points)
    if not geometry.is_valid:
        warnings.warn(
            f"invalid polygon {points.tolist()} ({shapely.is_valid_reason(geometry)}) is repaired with "
            "shapely.make_valid and kept in the counts",
            stacklevel=2,
        )
        geometry = shapely.make_valid(geometry)
    return geometry


def _intersection_areas(first: Sequence[shapely.Geometry], second: Sequence[shapely.Geometry]) -> np.ndarray:
    if not first or not second:
        return np.zeros((len(first), len(second)))
    return shapely.area(
        shapely.intersection(np.array(first, dtype=object)[:, None], np.array(second, dtype=object)[None, :])
    )


def iou_matrix(
    gt_geometries: Sequence[shapely.Geometry], det_geometries: Sequence[shapely.Geometry]
) -> np.ndarray:
    """IoU of every (ground truth, detection) pair; 0 where the union has no area."""
    intersection = _intersection_areas(gt_geometries, det_geometries)
    gt_area = shapely.area(np.array(gt_geometries, dtype=object)).reshape(-1, 1)
    det_area = shapely.area(np.array(det_geometries, dtype=object)).reshape(1, -1)
    # The official script measures the union as area(a) + area(b) - area(a ∩ b); so do we.
    union = gt_area + det_area - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, intersection / np.where(union > 0, union, 1), 0.0)


def polygon_iou(first: Polygon, second: Polygon) -> float:
    """IoU of two polygons (0 when their union has no area)."""
    return float(iou_matrix([to_geometry(first)], [to_geometry(second)])[0, 0])


def match_image(
    ground_truth: TextRegions,
    detections: TextRegions,
    iou_threshold: float = IOU_THRESHOLD,
    dont_care_threshold: float = DONT_CARE_AREA_THRESHOLD,
    gt_dont_care: Sequence[bool] | None = None,
) -> ImageMatch:
    """Pair the detections of one image with its ground truth under the ICDAR 2015 protocol.

    `gt_dont_care` overrides which ground-truth regions are don't care (default: transcription ``###``).
    """
    dont_care = list(ground_truth.dont_care if gt_dont_care is None else gt_dont_care)
    if len(dont_care) != len(ground_truth.polygons):
        raise ValueError(f"{len(dont_care)} don't-care flags for {len(ground_truth.polygons)} polygons")
    gt_geometries = [to_geometry(p) for p in ground_truth.polygons]
    det_geometries = [to_geometry(p) for p in detections.polygons]
    dont_care_gt = [i for i, flag in enumerate(dont_care) if flag]

    discarded: list[int] = []
    if dont_care_gt and det_geometries:
        inside = _intersection_areas(det_geometries, [gt_geometries[i] for i in dont_care_gt])
        det_area = shapely.area(np.array(det_geometries, dtype=object))
        for det_index, area in enumerate(det_area):
            # Each don't-care region is tested on its own; a zero-area detection is inside nothing.
            if area > 0 and np.any(inside[det_index] / area > dont_care_threshold):
                discarded.append(det_index)

    iou = iou_matrix(gt_geometries, det_geometries)
    gt_taken = np.array(dont_care, dtype=bool)
    det_taken = np.zeros(len(det_geometries), dtype=bool)
    det_taken[discarded] = True
    matches: list[tuple[int, int]] = []
    for gt_index in range(len(gt_geometries)):
        if gt_taken[gt_index]:
            continue
        for det_index in range(len(det_geometries)):
            if not det_taken[det_index] and iou[gt_index, det_index] > iou_threshold:
                gt_taken[gt_index] = det_taken[det_index] = True
                matches.append((gt_index, det_index))
                break

    counts = DetectionCounts(
        num_gt_care=len(gt_geometries) - len(dont_care_gt),
        num_det_care=len(det_geometries) - len(discarded),
        num_matched=len(matches),
    )
    return ImageMatch(matches, dont_care_gt, discarded, counts)


def score_detection(
    images: Iterable[tuple[TextRegions, TextRegions]],
    iou_threshold: float = IOU_THRESHOLD,
    dont_care_threshold: float = DONT_CARE_AREA_THRESHOLD,
) -> DetectionCounts:
    """Dataset counts over (ground truth, detections) pairs, one per image."""
    total = DetectionCounts()
    for ground_truth, detections in images:
        total += match_image(ground_truth, detections, iou_threshold, dont_care_threshold).counts
    return total


@dataclass(frozen=True)
class ThresholdSweep:
    """The score-threshold sweep mmocr and TCM report: the best hmean over thresholds tuned on the test set."""

    best_threshold: float
    best: DetectionCounts
    per_threshold: dict[float, DetectionCounts] = field(default_factory=dict)


def sweep_score_thresholds(
    images: Sequence[tuple[TextRegions, TextRegions]],
    min_score: float = MMOCR_MIN_SCORE,
    thresholds: Sequence[float] = MMOCR_SCORE_THRESHOLDS,
    iou_threshold: float = IOU_THRESHOLD,
    dont_care_threshold: float = DONT_CARE_AREA_THRESHOLD,
) -> ThresholdSweep:
    """Evaluate at every score threshold and keep the first one with the highest hmean (mmocr 0.4 rules).

    Detections with score <= `min_score` are dropped first; each threshold then keeps scores >= threshold.
    """
    if not thresholds:
        raise ValueError("the score-threshold sweep needs at least one threshold")
    prefiltered = [(gt, det.above_score(min_score, inclusive=False)) for gt, det in images]
    per_threshold: dict[float, DetectionCounts] = {}
    best_threshold, best = thresholds[0], None
    for threshold in thresholds:
        if threshold < min_score:
            continue
        counts = score_detection(
            ((gt, det.above_score(threshold)) for gt, det in prefiltered), iou_threshold, dont_care_threshold
        )
        per_threshold[threshold] = counts
        if best is None or counts.hmean > best.hmean:
            best_threshold, best = threshold, counts
    if best is None:
        raise ValueError(f"every threshold in {list(thresholds)} is below min_score={min_score}")
    return ThresholdSweep(best_threshold, best, per_threshold)


def score_end_to_end(
    images: Iterable[tuple[TextRegions, TextRegions]],
    protocol: str | int = DEFAULT_PROTOCOL,
    iou_threshold: float = IOU_THRESHOLD,
    dont_care_threshold: float = DONT_CARE_AREA_THRESHOLD,
) -> DetectionCounts:
    """End-to-end reading counts: `num_matched` counts pairs matched at IoU and read correctly.

    Pairing is the detection protocol's (as in the RRC end-to-end script, a pair is formed on IoU alone and
    then counts as correct only when the transcriptions agree). Transcriptions are compared under a
    recognition protocol: ground truth is whitespace-stripped, folded to ASCII and charset-adapted, the
    prediction is charset-adapted only. Ground truth that is ``###`` or empty under the protocol (for
    example punctuation-only words under the 36-character protocol) is don't care.
    """
    adapt = CharsetAdapter(protocol_charset(protocol))
    total = DetectionCounts()
    for ground_truth, detections in images:
        if ground_truth.transcriptions is None or detections.transcriptions is None:
            raise ValueError("end-to-end scoring needs transcriptions on both ground truth and detections")
        gt_texts = [adapt(normalize_label(text)) for text in ground_truth.transcriptions]
        dont_care = [
            raw == DONT_CARE or not text
            for raw, text in zip(ground_truth.transcriptions, gt_texts, strict=True)
        ]
        match = match_image(ground_truth, detections, iou_threshold, dont_care_threshold, dont_care)
        correct = sum(adapt(detections.transcriptions[d]) == gt_texts[g] for g, d in match.matches)
        total += DetectionCounts(match.counts.num_gt_care, match.counts.num_det_care, correct)
    return total
