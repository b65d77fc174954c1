"""Pictures of a detection evaluation: ground truth and detections drawn by how the protocol treated them."""

from __future__ import annotations

import cv2
import numpy as np
import PIL.Image

from scenetext.evaluation.metrics.detection import ImageMatch, TextRegions
from scenetext.pipelines.image_loading import load_rgb_image

# RGB colours: found and missed ground truth, don't care; true positives, false positives, discarded.
GT_MATCHED = (0, 200, 0)
GT_MISSED = (255, 140, 0)
GT_DONT_CARE = (160, 160, 160)
DET_MATCHED = (0, 120, 255)
DET_FALSE_POSITIVE = (255, 0, 0)
DET_DISCARDED = (255, 0, 255)


def _draw_polygon(canvas: np.ndarray, polygon, color: tuple[int, int, int], thickness: int) -> None:
    points = np.round(np.asarray(polygon, dtype=np.float64).reshape(-1, 2)).astype(np.int32)
    cv2.polylines(canvas, [points], isClosed=True, color=color, thickness=thickness)


def draw_match(
    image: PIL.Image.Image, ground_truth: TextRegions, detections: TextRegions, match: ImageMatch
) -> PIL.Image.Image:
    """The image with ground truth (thick: green found, orange missed, grey don't care) and detections
    (thin: blue matched, red false positive, magenta discarded by a don't-care region)."""
    canvas = np.array(load_rgb_image(image, apply_exif_orientation=False))  # annotations' orientation
    thickness = max(1, round(max(canvas.shape[:2]) / 500))
    matched_gt = {gt_index for gt_index, _ in match.matches}
    matched_det = {det_index for _, det_index in match.matches}
    for index, polygon in enumerate(ground_truth.polygons):
        if index in match.dont_care_gt:
            color = GT_DONT_CARE
        else:
            color = GT_MATCHED if index in matched_gt else GT_MISSED
        _draw_polygon(canvas, polygon, color, 2 * thickness)
    for index, polygon in enumerate(detections.polygons):
        if index in match.discarded_detections:
            color = DET_DISCARDED
        else:
            color = DET_MATCHED if index in matched_det else DET_FALSE_POSITIVE
        _draw_polygon(canvas, polygon, color, thickness)
    return PIL.Image.fromarray(canvas)
