"""Polygon geometry of PAN on plain arrays: training targets from text polygons, and text boundaries from the PAN
maps (pixel aggregation).

Both follow mmocr 0.4, the code TCM-PANet trains and evaluates with (`PANetTargets`, `PANPostprocessor` and mmcv's
`pixel_group`), including its quirks, so a converted checkpoint gives the official boundaries. No torch here;
OpenCV and pyclipper are imported under guards like the DB geometry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .db_geometry_tcm import (
    as_polygon,
    check_box_type,
    ignore_flags,
    require_geometry_backends,
    shrink_polygon,
)

try:
    import cv2
except ImportError:
    cv2 = None

# Resolution of the PAN maps relative to the input (the model's FFM output is the stride-4 level).
PAN_STRIDE = 4

# PANetTargets' defaults: the text region itself (ratio 1.0) and its kernel (0.5), the kernel offset capped at 20 px.
PAN_SHRINK_RATIOS = (1.0, 0.5)
PAN_MAX_SHRINK = 20

# mmocr 0.4 PANPostprocessor defaults. `similarity_threshold` is the embedding distance under which a text pixel
# joins a kernel: mmocr passes `min_text_avg_confidence` (0.85) to `pixel_group` in that place, so the two share
# a value by default.
PAN_POST_PROCESSING: dict[str, object] = {
    "box_type": "poly",
    "min_text_confidence": 0.5,
    "min_kernel_confidence": 0.5,
    "min_text_average_confidence": 0.85,
    "min_text_area": 16,
    "similarity_threshold": 0.85,
}


@dataclass
class PanTargets:
    """PAN training targets of one image, (H, W) float32 each: instance numbers (1, 2, ...; 0 = background) of
    the text regions and of their kernels, and the effective mask (0 on don't-care polygons)."""

    text_kernel: np.ndarray
    shrunk_kernel: np.ndarray
    effective_mask: np.ndarray


def make_pan_targets(
    polygons: Sequence[object],
    height: int,
    width: int,
    ignore: Sequence[bool] | None = None,
    shrink_ratios: tuple[float, float] = PAN_SHRINK_RATIOS,
    max_shrink: int = PAN_MAX_SHRINK,
) -> PanTargets:
    """PANetTargets: each cared-for polygon (int-truncated, as mmocr) filled with its number in the text map and,
    shrunk by `shrink_ratios[1]`, in the kernel map; don't-care polygons filled with 0 in the effective mask.

    A polygon is numbered by its position among all `polygons`, as mmocr numbers `gt_masks`; one that vanishes
    when shrunk is left out of that map. Polygons with fewer than 3 points are left out everywhere."""
    require_geometry_backends()
    flags = ignore_flags(ignore, len(polygons))
    maps = [np.zeros((height, width), np.float32) for _ in shrink_ratios]
    effective = np.ones((height, width), np.uint8)
    cared = [
        as_polygon(polygon, f"polygon {index}")
        for index, (polygon, flag) in enumerate(zip(polygons, flags, strict=True))
        if not flag
    ]
    for number, polygon in enumerate(cared, start=1):
        if len(polygon) < 3:
            continue
        for canvas, ratio in zip(maps, shrink_ratios, strict=True):
            kernel = shrink_polygon(polygon, ratio, max_shrink)
            if kernel is not None:
                cv2.fillPoly(canvas, [kernel], number)
    for index, (polygon, flag) in enumerate(zip(polygons, flags, strict=True)):
        if flag:
            points = as_polygon(polygon, f"polygon {index}").astype(np.int32)
            if len(points):
                cv2.fillPoly(effective, [points], 0)
    return PanTargets(maps[0], maps[1], effective.astype(np.float32))


# ------------------------------------------------------------------------------------------------------------
# Post-processing
# ------------------------------------------------------------------------------------------------------------

# mmcv's pixel_group visits the 4 neighbours in this order: left, right, up, down.
_NEIGHBOURS = ((0, -1), (0, 1), (-1, 0), (1, 0))


def group_pixels(
    text_mask: np.ndarray,
    similarity: np.ndarray,
    kernel_labels: np.ndarray,
    kernel_contours: np.ndarray,
    num_labels: int,
    similarity_threshold: float,
) -> np.ndarray:
    """PAN's pixel aggregation (mmcv `pixel_group`): kernels grow breadth-first from their contour pixels into
    unlabelled text pixels whose similarity vector lies closer than `similarity_threshold` to the kernel's mean
    vector. Returns the (H, W) int32 instance labels.

    Computed a whole breadth-first level at a time; within a level the first claim in queue order (the seeds in
    row-major order, then by neighbour order) wins, which is what mmcv's FIFO queue gives."""
    height, width = text_mask.shape
    labels = kernel_labels.astype(np.int32).copy()
    vectors = similarity.reshape(-1, similarity.shape[-1]).astype(np.float64)
    flat_labels = labels.reshape(-1)
    counts = np.bincount(flat_labels, minlength=num_labels)
    sums = np.stack(
        [
            np.bincount(flat_labels, weights=vectors[:, d], minlength=num_labels)
            for d in range(vectors.shape[1])
        ],
        axis=1,
    )
    means = sums / np.maximum(counts, 1)[:, None]
    text = text_mask.reshape(-1).astype(bool)
    threshold = similarity_threshold * similarity_threshold

    frontier = np.flatnonzero((flat_labels > 0) & (kernel_contours.reshape(-1) > 0))
    while frontier.size:
        rows, cols = np.divmod(frontier, width)
        next_rows = rows[:, None] + np.array([dy for dy, _ in _NEIGHBOURS])
        next_cols = cols[:, None] + np.array([dx for _, dx in _NEIGHBOURS])
        inside = (next_rows >= 0) & (next_rows < height) & (next_cols >= 0) & (next_cols < width)
        targets = (next_rows * width + next_cols)[inside]
        sources = np.broadcast_to(flat_labels[frontier][:, None], inside.shape)[inside]
        open_text = text[targets] & (flat_labels[targets] == 0)
        targets, sources = targets[open_text], sources[open_text]
        close = ((means[sources] - vectors[targets]) ** 2).sum(1) < threshold
        targets, sources = targets[close], sources[close]
        _, first = np.unique(targets, return_index=True)
        first.sort()
        frontier = targets[first]
        flat_labels[frontier] = sources[first]
    return labels


def _boundary(points: np.ndarray, box_type: str) -> np.ndarray | None:
    """mmocr's `points2boundary` for the (x, y) pixels of one text: the minimum-area rectangle ('quad') or the
    first outer contour of the pixels ('poly'); None when fewer than 4 points remain (mmocr counts the score
    in its length test)."""
    if box_type == "quad":
        corners = cv2.boxPoints(cv2.minAreaRect(points))
    else:
        canvas = np.zeros((points[:, 1].max() + 10, points[:, 0].max() + 10), np.uint8)
        canvas[points[:, 1], points[:, 0]] = 255
        contours, _ = cv2.findContours(canvas, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        corners = contours[0].reshape(-1, 2)
    return corners.astype(np.float64) if len(corners) >= 4 else None


def extract_pan_boundaries(
    pan_maps: np.ndarray,
    box_type: str = "poly",
    min_text_confidence: float = 0.5,
    min_kernel_confidence: float = 0.5,
    min_text_average_confidence: float = 0.85,
    min_text_area: int = 16,
    similarity_threshold: float = 0.85,
) -> list[tuple[np.ndarray, float]]:
    """Text boundaries from one image's PAN maps (6, h, w) (text and kernel logits, 4 similarity channels), in map
    pixels: a list of ((K, 2) points, score), the score being the mean text probability of the text's pixels.

    mmocr's procedure: text = sigmoid(text) > min_text_confidence, kernels = sigmoid(kernel) >
    min_kernel_confidence inside text, 4-connected kernel components grown by `group_pixels`, texts with fewer
    than `min_text_area` pixels or a mean probability <= `min_text_average_confidence` dropped."""
    require_geometry_backends()
    check_box_type(box_type)
    pan_maps = np.asarray(pan_maps, dtype=np.float32)
    if pan_maps.ndim != 3 or pan_maps.shape[0] != 6:
        raise ValueError(f"expected PAN maps of shape (6, h, w), got {pan_maps.shape}")
    text_score = 1 / (1 + np.exp(-pan_maps[0]))
    kernel_score = 1 / (1 + np.exp(-pan_maps[1]))
    text = text_score > min_text_confidence
    kernel = ((kernel_score > min_kernel_confidence) & text).astype(np.uint8)
    num_labels, kernel_labels = cv2.connectedComponents(kernel, connectivity=4)
    contours, _ = cv2.findContours(kernel * 255, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    kernel_contours = np.zeros(text.shape, np.uint8)
    cv2.drawContours(kernel_contours, contours, -1, 255)
    labels = group_pixels(
        text,
        pan_maps[2:].transpose(1, 2, 0),
        kernel_labels,
        kernel_contours,
        num_labels,
        similarity_threshold,
    )

    flat = labels.reshape(-1)
    areas = np.bincount(flat, minlength=num_labels)
    scores = np.bincount(flat, weights=text_score.reshape(-1).astype(np.float64), minlength=num_labels)
    # Pixels of each text in row-major order, as mmcv lists them.
    order = np.argsort(flat, kind="stable")
    starts = np.concatenate([[0], np.cumsum(areas)])
    boundaries = []
    for label in range(1, num_labels):
        area = int(areas[label])
        score = float(np.float32(scores[label] / max(area, 1)))
        if area < min_text_area or score <= min_text_average_confidence:
            continue
        pixels = order[starts[label] : starts[label + 1]]
        rows, cols = np.divmod(pixels, labels.shape[1])
        outline = _boundary(np.stack([cols, rows], axis=1).astype(np.int32), box_type)
        if outline is not None:
            boundaries.append((outline, score))
    return boundaries
