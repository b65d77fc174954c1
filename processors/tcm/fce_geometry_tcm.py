"""Polygon geometry of FCENet on plain arrays: per-level training targets (text region, text center region,
effective mask, Fourier coefficient maps) from text polygons, and text contours from the FCENet maps.

Both follow mmocr 0.4 as TCM-FCENet uses it (`FCENetTargets` with TCM's extra stride-32 matching target,
`TextSnakeTargets`' sideline geometry, `FCEPostprocessor`, `poly_nms`), including its quirks, so a converted
checkpoint gives the official contours. No torch here; OpenCV and shapely are imported under guards.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .db_geometry_tcm import as_polygon, ignore_flags, require_geometry_backends

try:
    import cv2
except ImportError:
    cv2 = None
try:
    import shapely
except ImportError:
    shapely = None

FCE_STRIDES = (8, 16, 32)
# Which level learns a text: the ratio of its longer bounding-box side to the image height must lie strictly
# inside the level's range (mmocr's ICDAR2015 ranges; CTW1500 and Total-Text use ((0, .25), (.2, .65), (.55, 1))).
FCE_LEVEL_RANGES = ((0.0, 0.4), (0.3, 0.7), (0.6, 1.0))
FCE_RESAMPLE_STEP = 4.0
FCE_CENTER_SHRINK_RATIO = 0.3
# TextSnake's ratio telling a quadrangle's head/tail edges from its sidelines.
_ORIENTATION_THRESHOLD = 2.0
_EPS = 1e-8

# TCM-FCENet's post-processing (its released configuration) and mmocr's NMS threshold.
FCE_POST_PROCESSING: dict[str, object] = {
    "num_points": 50,
    "alpha": 1.2,
    "beta": 1.0,
    "score_threshold": 0.3,
    "nms_threshold": 0.1,
}


# ------------------------------------------------------------------------------------------------------------
# Sidelines (TextSnakeTargets.find_head_tail / reorder_poly_edge / resample_sidelines)
# ------------------------------------------------------------------------------------------------------------


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    unit_a = a / (np.linalg.norm(a, axis=-1, keepdims=True) + _EPS)
    unit_b = b / (np.linalg.norm(b, axis=-1, keepdims=True) + _EPS)
    return np.arccos(np.clip(np.sum(unit_a * unit_b, axis=-1), -1.0, 1.0))


def _slope(vector: np.ndarray) -> float:
    return abs(vector[1] / (vector[0] + _EPS))


def find_head_tail(points: np.ndarray) -> tuple[list[int], list[int]]:
    """Indices of the two points of the head edge and of the tail edge of a text polygon (TextSnake's scoring:
    edges between sharp turns, far from the center, opposite each other)."""
    count = len(points)
    if count > 4:
        closed = np.vstack([points, points[0]])
        edges = closed[1:] - closed[:-1]
        turn, across = [], []
        for i, edge in enumerate(edges):
            neighbours = edges[[(i - 1) % count, (i + 1) % count]]
            turn.append(np.sum(_angle(edge, neighbours)))
            across.append(_angle(neighbours[0], neighbours[1]))
        center = points.mean(axis=0)
        distance = np.maximum(
            np.linalg.norm(closed[1:] - center, axis=-1), np.linalg.norm(closed[:-1] - center, axis=-1)
        )
        # Written in mmocr's order of operations: the argmax below meets exact ties on symmetric outlines.
        score = 0.5 * (np.array(turn) / np.pi) + 0.15 * (np.array(across) / np.pi)
        score = score + 0.35 * (distance / (distance.max() + _EPS))
        position = np.zeros(count)
        if count % 2 == 0:
            position[count // 2 - 1] += 1
            position[-1] += 1
        score = score + 0.1 * position
        doubled = np.concatenate([score, score])
        steps = np.arange(count - 3) / float(count - 4)
        gaussian = 1.0 / (np.sqrt(2.0 * np.pi) * 0.5) * np.exp(-np.power((steps - 0.5) / 0.5, 2.0) / 2)
        gaussian = gaussian / gaussian.max()
        pairs = np.stack([score[i] + doubled[i + 2 : i + count - 1] * gaussian * 0.3 for i in range(count)])
        head_start, tail_offset = np.unravel_index(pairs.argmax(), pairs.shape)
        tail_start = (head_start + tail_offset + 2) % count
        head_end, tail_end = (head_start + 1) % count, (tail_start + 1) % count
        if head_end > tail_end:
            head_start, tail_start = tail_start, head_start
            head_end, tail_end = tail_end, head_end
        return [int(head_start), int(head_end)], [int(tail_start), int(tail_end)]
    if _slope(points[1] - points[0]) + _slope(points[3] - points[2]) < _slope(points[2] - points[1]) + _slope(
        points[0] - points[3]
    ):
        horizontal, vertical = [[0, 1], [2, 3]], [[3, 0], [1, 2]]
    else:
        horizontal, vertical = [[3, 0], [1, 2]], [[0, 1], [2, 3]]
    vertical_length = sum(np.linalg.norm(points[a] - points[b]) for a, b in vertical)
    horizontal_length = sum(np.linalg.norm(points[a] - points[b]) for a, b in horizontal)
    if vertical_length > horizontal_length * _ORIENTATION_THRESHOLD:
        return horizontal[0], horizontal[1]
    return vertical[0], vertical[1]


def top_and_bottom_sidelines(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The top and bottom sidelines of a text polygon (the parts between its head and tail edges), both running
    from the head side; the bottom one is the one lower in the image on average."""
    head, tail = find_head_tail(points)
    doubled = np.vstack([points, points])
    if tail[1] < 1:
        tail[1] = len(points)
    first = doubled[head[1] : tail[1]]
    second = doubled[tail[1] : head[1] + len(points)]
    if (first.mean(axis=0) - second.mean(axis=0))[1] > 0:
        return second, first
    return first, second


def _resample_line(line: np.ndarray, count: int) -> np.ndarray:
    """`count` points equally spaced along a polyline (its ends kept)."""
    lengths = np.sqrt(((line[1:] - line[:-1]) ** 2).sum(axis=1))
    cumulative = np.insert(np.cumsum(lengths), 0, 0)
    unit = lengths.sum() / (count - 1)
    points, edge = [line[0]], 0
    for t in np.arange(1, count - 1, dtype=np.float32) * unit:
        while edge < len(lengths) - 1 and t > cumulative[edge + 1]:
            edge += 1
        left, right = cumulative[edge], cumulative[edge + 1]
        weight = np.array([right - t, t - left], dtype=np.float32) / (right - left + _EPS)
        points.append(weight @ line[[edge, edge + 1]])
    points.append(line[-1])
    return np.vstack(points)


def resample_sidelines(top: np.ndarray, bottom: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Both sidelines resampled to the same number of points, about `step` apart on average (at least 3)."""
    length = (
        np.sqrt(((top[1:] - top[:-1]) ** 2).sum(axis=1)).sum()
        + np.sqrt(((bottom[1:] - bottom[:-1]) ** 2).sum(axis=1)).sum()
    ) / 2
    count = max(int(float(length) / step) + 1, 3)
    return _resample_line(top, count), _resample_line(bottom, count)


# ------------------------------------------------------------------------------------------------------------
# Training targets
# ------------------------------------------------------------------------------------------------------------


def center_region_mask(size: tuple[int, int], polygons: list[np.ndarray]) -> np.ndarray:
    """FCENet's text center region: the strip between the sidelines shrunk to 0.3 of the half-width around the
    center line, with a quarter of the text height cut from each end (when the line is long enough)."""
    mask = np.zeros(size, np.uint8)
    boxes = []
    for polygon in polygons:
        if len(polygon) < 4:  # mmocr cannot find head and tail edges of a triangle
            continue
        top, bottom = resample_sidelines(*top_and_bottom_sidelines(polygon), FCE_RESAMPLE_STEP)
        bottom = bottom[::-1]
        center = (top + bottom) / 2
        head_cut = int(np.linalg.norm(top[0] - bottom[0]) / 4.0 // FCE_RESAMPLE_STEP)
        tail_cut = int(np.linalg.norm(top[-1] - bottom[-1]) / 4.0 // FCE_RESAMPLE_STEP)
        if len(center) > head_cut + tail_cut + 2:
            end = len(center) - tail_cut
            center, top, bottom = center[head_cut:end], top[head_cut:end], bottom[head_cut:end]
        ratio = FCE_CENTER_SHRINK_RATIO
        for i in range(len(center) - 1):
            corners = [
                center[i] + (top[i] - center[i]) * ratio,
                center[i + 1] + (top[i + 1] - center[i + 1]) * ratio,
                center[i + 1] + (bottom[i + 1] - center[i + 1]) * ratio,
                center[i] + (bottom[i] - center[i]) * ratio,
            ]
            boxes.append(np.vstack(corners).astype(np.int32))
    if boxes:
        cv2.fillPoly(mask, boxes, 1)
    return mask


def _resample_polygon(polygon: np.ndarray, count: int = 400) -> np.ndarray:
    """About `count` points along the closed outline, each edge getting its share by length (truncated)."""
    following = np.roll(polygon, -1, axis=0)
    lengths = np.sqrt(((polygon - following) ** 2).sum(axis=1))
    # A sequential sum as mmocr's: the truncation below is sensitive to the last bit.
    per_edge = (lengths / (sum(lengths.tolist()) + _EPS) * count).astype(np.int32)
    points = [
        start + (end - start) / number * j
        for start, end, number in zip(polygon, following, per_edge, strict=True)
        if number
        for j in range(number)
    ]
    return np.array(points)


def fourier_signature(polygon: np.ndarray, degree: int) -> np.ndarray:
    """The 2 * degree + 1 Fourier coefficients c_{-k}..c_k (complex) of a polygon's outline: resampled to 400
    points, started at the point right of the center (the lowest of the 8 nearest in x), reversed if needed so
    that the contour runs clockwise in image coordinates."""
    resampled = _resample_polygon(polygon)
    offsets = resampled - resampled.mean(axis=0)
    nearest_in_x = np.argsort(np.abs(offsets[:, 0]))
    start = nearest_in_x[np.argmin(offsets[nearest_in_x[:8], 1])]
    resampled = np.concatenate([resampled[start:], resampled[:start]])
    points = resampled[:, 0] + resampled[:, 1] * 1j
    spectrum = np.fft.fft(points) / len(points)
    coefficients = np.hstack((spectrum[-degree:], spectrum[: degree + 1]))
    forward, backward = np.abs(coefficients[degree + 1]), np.abs(coefficients[degree - 1])
    if forward > backward:
        return coefficients
    if forward < backward:
        return coefficients[::-1]
    return (
        coefficients
        if np.abs(coefficients[degree + 2]) > np.abs(coefficients[degree - 2])
        else coefficients[::-1]
    )


def fourier_maps(size: tuple[int, int], polygons: list[np.ndarray], degree: int) -> np.ndarray:
    """(2 (2k + 1), h, w): every pixel of a text holds its coefficients (real parts, then imaginary parts), with
    c_0 made relative to the pixel; later texts overwrite earlier ones."""
    maps = np.zeros((2, 2 * degree + 1, *size), np.float32)
    for polygon in polygons:
        mask = np.zeros(size, np.uint8)
        cv2.fillPoly(mask, [polygon.astype(np.int32)], 1)
        coefficients = fourier_signature(polygon, degree)
        inside = mask > 0
        maps[0][:, inside] = coefficients.real[:, None]
        maps[1][:, inside] = coefficients.imag[:, None]
        ys, xs = np.nonzero(inside)
        maps[0, degree, ys, xs] = coefficients[degree].real - xs
        maps[1, degree, ys, xs] = coefficients[degree].imag - ys
    return maps.reshape(-1, *size)


def _region_mask(size: tuple[int, int], polygons: list[np.ndarray], value: int, fill: int) -> np.ndarray:
    mask = np.full(size, fill, np.uint8)
    for polygon in polygons:
        cv2.fillPoly(mask, [polygon.astype(np.int32)], value)
    return mask


def make_fce_targets(
    polygons: Sequence[object],
    height: int,
    width: int,
    ignore: Sequence[bool] | None = None,
    fourier_degree: int = 5,
    level_ranges: tuple[tuple[float, float], ...] = FCE_LEVEL_RANGES,
) -> dict[str, np.ndarray]:
    """FCENet targets of one image: `fce_maps_<stride>` (3 + 2 (2k + 1), height // stride, width // stride) per level
    (text region, center region, effective mask, Fourier maps) and TCM's `matching_region` (2, height // 32,
    width // 32): every text's region (whatever its size) and the effective mask."""
    require_geometry_backends()
    texts, ignored = [], []
    for index, (polygon, flag) in enumerate(zip(polygons, ignore_flags(ignore, len(polygons)), strict=True)):
        points = as_polygon(polygon, f"polygon {index}")
        if len(points) >= 3:
            (ignored if flag else texts).append(points)

    def level_polygons(group: list[np.ndarray], low: float, high: float, stride: int) -> list[np.ndarray]:
        chosen = []
        for points in group:
            _, _, box_width, box_height = cv2.boundingRect(points.astype(np.int32).reshape(1, -1, 2))
            if low < max(box_height, box_width) / (height + 1e-8) < high:
                chosen.append(points / stride)
        return chosen

    targets = {}
    for stride, (low, high) in zip(FCE_STRIDES, level_ranges, strict=True):
        size = (height // stride, width // stride)
        level_texts = level_polygons(texts, low, high, stride)
        targets[f"fce_maps_{stride}"] = np.concatenate(
            [
                _region_mask(size, level_texts, 1, 0)[None],
                center_region_mask(size, level_texts)[None],
                _region_mask(size, level_polygons(ignored, low, high, stride), 0, 1)[None],
                fourier_maps(size, level_texts, fourier_degree),
            ]
        ).astype(np.float32)
    size = (height // 32, width // 32)
    targets["matching_region"] = np.stack(
        [
            _region_mask(size, level_polygons(texts, 0.0, 1.0, 32), 1, 0),
            _region_mask(size, level_polygons(ignored, 0.0, 1.0, 32), 0, 1),
        ]
    ).astype(np.float32)
    return targets


# ------------------------------------------------------------------------------------------------------------
# Post-processing
# ------------------------------------------------------------------------------------------------------------


def fourier_to_polygons(coefficients: np.ndarray, num_points: int) -> np.ndarray:
    """(n, num_points, 2) int32 contours from (n, 2k + 1) complex coefficients c_{-k}..c_k (inverse FFT,
    truncated to integers as mmocr)."""
    degree = (coefficients.shape[1] - 1) // 2
    spectrum = np.zeros((len(coefficients), num_points), dtype=complex)
    spectrum[:, : degree + 1] = coefficients[:, degree:]
    spectrum[:, -degree:] = coefficients[:, :degree]
    points = np.fft.ifft(spectrum) * num_points
    return np.stack([points.real, points.imag], axis=-1).astype(np.int32)


def polygon_nms(polygons: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """mmocr's `poly_nms`: repeatedly keep the highest-scoring polygon (the last of a stable ascending sort on
    ties) and drop those overlapping it with IoU > `threshold`. Returns the kept indices in keeping order.
    Invalid outlines are repaired with buffer(0) first; an empty union counts as IoU 1."""
    shapes = shapely.polygons(polygons.astype(np.float64))
    invalid = ~shapely.is_valid(shapes)
    shapes[invalid] = shapely.buffer(shapes[invalid], 0)
    remaining = list(np.argsort(scores, kind="stable"))
    kept = []
    while remaining:
        best = remaining.pop()
        kept.append(int(best))
        if not remaining:
            break
        others = np.array(remaining)
        intersection = shapely.area(shapely.intersection(shapes[best], shapes[others]))
        union = shapely.area(shapely.union(shapes[best], shapes[others]))
        iou = np.where(union != 0, intersection / np.where(union != 0, union, 1), 1.0)
        remaining = [index for index, overlap in zip(remaining, iou, strict=True) if not overlap > threshold]
    return kept


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """The mask with every region enclosed by it filled (flood fill of the background from outside)."""
    height, width = mask.shape
    canvas = np.zeros((height + 2, width + 2), np.uint8)
    canvas[1:-1, 1:-1] = mask
    cv2.floodFill(canvas, np.zeros((height + 4, width + 4), np.uint8), (0, 0), 1)
    return ~canvas[1:-1, 1:-1].astype(bool) | mask


def _softmax_second(logits: np.ndarray) -> np.ndarray:
    """Probability of the second of two classes (channels 0 and 1)."""
    return 1 / (1 + np.exp(logits[0] - logits[1]))


def _level_contours(
    classification: np.ndarray,
    regression: np.ndarray,
    stride: int,
    num_points: int,
    alpha: float,
    beta: float,
    score_threshold: float,
    nms_threshold: float,
) -> tuple[np.ndarray, np.ndarray]:
    """FCEPostprocessor on one level: every pixel of each region above the score threshold proposes a contour;
    NMS within each region and then over the level. Returns (n, num_points, 2) contours in input pixels and
    their scores."""
    degree = (regression.shape[0] // 2 - 1) // 2
    score = _softmax_second(classification[0:2]) ** alpha * _softmax_second(classification[2:4]) ** beta
    region_mask = _fill_holes(score > score_threshold)
    contours, _ = cv2.findContours(region_mask.astype(np.uint8), cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    real = regression[: 2 * degree + 1].transpose(1, 2, 0)
    imaginary = regression[2 * degree + 1 :].transpose(1, 2, 0)
    polygons, scores = [], []
    for contour in contours:
        region = np.zeros(score.shape, np.int8)
        cv2.drawContours(region, [contour], -1, 1, -1)
        region_score = score * region
        inside = region_score > 0
        ys, xs = np.nonzero(inside)
        coefficients = real[inside] + imaginary[inside] * 1j
        coefficients[:, degree] += xs + ys * 1j
        coefficients *= stride
        candidates = fourier_to_polygons(coefficients, num_points)
        candidate_scores = region_score[inside]
        kept = polygon_nms(candidates, candidate_scores, nms_threshold)
        polygons.extend(candidates[kept])
        scores.extend(candidate_scores[kept])
    if not polygons:
        return np.zeros((0, num_points, 2), np.int32), np.zeros(0)
    polygons, scores = np.stack(polygons), np.asarray(scores)
    kept = polygon_nms(polygons, scores, nms_threshold)
    return polygons[kept], scores[kept]


def extract_fce_boundaries(
    classification: Sequence[np.ndarray],
    regression: Sequence[np.ndarray],
    num_points: int = 50,
    alpha: float = 1.2,
    beta: float = 1.0,
    score_threshold: float = 0.3,
    nms_threshold: float = 0.1,
) -> list[tuple[np.ndarray, float]]:
    """Text contours from one image's FCENet maps (per level (4, h, w) classification and (2 (2k + 1), h, w)
    regression, strides 8, 16, 32), in input pixels: a list of ((num_points, 2) points, score).

    Score = P(text)^alpha x P(center)^beta per pixel. mmocr's FCEPostprocessor returns polygons even when asked
    for quads (its quad branch's result is discarded), so FCENet always gives polygons here too."""
    require_geometry_backends()
    if len(classification) != len(FCE_STRIDES) or len(regression) != len(FCE_STRIDES):
        raise ValueError(f"expected {len(FCE_STRIDES)} levels of FCENet maps, got {len(classification)}")
    polygons, scores = [], []
    for level_classification, level_regression, stride in zip(
        classification, regression, FCE_STRIDES, strict=True
    ):
        level_polygons, level_scores = _level_contours(
            np.asarray(level_classification, np.float32),
            np.asarray(level_regression, np.float32),
            stride,
            num_points,
            alpha,
            beta,
            score_threshold,
            nms_threshold,
        )
        polygons.extend(level_polygons)
        scores.extend(level_scores)
    if not polygons:
        return []
    polygons, scores = np.stack(polygons), np.asarray(scores)
    kept = polygon_nms(polygons, scores, nms_threshold)
    return [(polygons[index].astype(np.float64), float(scores[index])) for index in kept]
