"""Polygon geometry of DBNet on plain arrays: training targets from text polygons, and text boundaries from a
probability map.

Both halves follow the DBNet code TCM trains and evaluates with (mmocr 0.4 `DBNetTargets`, `DBPostprocessor`
and TCM's `DBParamPostprocessor` / `DBVisPostprocessor`), including the choices that change results, so a
converted TCM checkpoint gives the official boundaries. Nothing here needs torch; OpenCV, pyclipper and shapely
are imported under guards so that the file imports on a machine without them (Hub remote code) and fails with
an install hint only when targets or boundaries are asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

try:
    import cv2
except ImportError:
    cv2 = None
try:
    import pyclipper
except ImportError:
    pyclipper = None
try:
    import shapely
except ImportError:
    shapely = None

# Coordinates are cast to int32 for OpenCV's drawing and pyclipper's integer arithmetic; far beyond any
# image they would overflow, so larger magnitudes are rejected up front.
MAX_ABS_COORDINATE = 1_000_000


def require_geometry_backends() -> None:
    """Raise an ImportError naming the packages the DB target / post-processing code needs."""
    missing = [
        name
        for name, module in (("opencv-python-headless", cv2), ("pyclipper", pyclipper), ("shapely", shapely))
        if module is None
    ]
    if missing:
        raise ImportError(
            f"DB targets and text-detection post-processing need {', '.join(missing)}: "
            f"pip install {' '.join(missing)}"
        )


def as_polygon(points: object, name: str = "polygon") -> np.ndarray:
    """Return `points` as a float64 (N, 2) array; accepts (N, 2) arrays/lists or a flat [x1, y1, x2, y2, ...].

    Raises ValueError, naming `name`, for an odd number of coordinates, another shape, non-finite values or
    coordinates beyond +-MAX_ABS_COORDINATE.
    """
    try:
        array = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name}: expected numeric (x, y) coordinates, got {points!r}") from error
    if array.ndim == 1:
        if array.size % 2:
            raise ValueError(f"{name}: a flat polygon needs an even number of coordinates, got {array.size}")
        array = array.reshape(-1, 2)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"{name}: expected (N, 2) points or a flat x, y list, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: coordinates must be finite, got {array.tolist()}")
    if array.size and np.abs(array).max() > MAX_ABS_COORDINATE:
        raise ValueError(f"{name}: coordinates beyond +-{MAX_ABS_COORDINATE} px, got {array.tolist()}")
    return array


def ignore_flags(ignore: Sequence[bool] | None, count: int) -> list[bool]:
    """The don't-care flags of `count` polygons as given to the target makers: none ignored when `ignore` is
    None; a ValueError when its length is not `count`."""
    flags = [False] * count if ignore is None else [bool(flag) for flag in ignore]
    if len(flags) != count:
        raise ValueError(f"ignore has {len(flags)} flags for {count} polygons")
    return flags


def check_box_type(box_type: str) -> None:
    if box_type not in ("quad", "poly"):
        raise ValueError(f"box_type must be 'quad' or 'poly', got {box_type!r}")


# ------------------------------------------------------------------------------------------------------------
# Training targets
# ------------------------------------------------------------------------------------------------------------


def _is_trainable(polygon: np.ndarray, min_text_size: float) -> bool:
    """DBNet's validity rule plus the cases it cannot handle.

    Fewer than 3 points and self-intersecting outlines are not text regions we can shrink or dilate, so they
    are ignored like the official rule ignores area < 1 and a minimum-area rectangle shorter than
    `min_text_size` (measured on the int-truncated points, as mmocr does).
    """
    if len(polygon) < 3 or not shapely.is_valid(shapely.polygons(polygon)):
        return False
    if abs(cv2.contourArea(polygon.astype(np.float32))) < 1:
        return False
    (_, _), (width, height), _ = cv2.minAreaRect(polygon.astype(np.int32))
    return min(width, height) >= min_text_size


def shrink_polygon(
    polygon: np.ndarray, shrink_ratio: float, max_offset: int | None = None
) -> np.ndarray | None:
    """The text kernel: the polygon offset inwards by D = A (1 - r^2) / L, rounded to whole pixels (at most
    `max_offset`: PAN caps it at 20).

    mmocr shrinks the int-truncated polygon and keeps only the first piece when the offset splits it; None
    when nothing is left (the caller then ignores the polygon).
    """
    instance = polygon.astype(np.int32)
    area = abs(cv2.contourArea(instance))
    perimeter = cv2.arcLength(instance, True)
    offset = int(area * (1 - shrink_ratio**2) / (perimeter + 0.001) + 0.5)
    if max_offset is not None:
        offset = min(offset, max_offset)
    clipper = pyclipper.PyclipperOffset()
    clipper.AddPath(instance.tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    pieces = clipper.Execute(-offset)
    if not pieces or len(pieces[0]) == 0:
        return None
    return np.asarray(pieces[0], dtype=np.int32)


def _dilate(polygon: np.ndarray, distance: float) -> np.ndarray:
    """The polygon offset outwards by `distance` (round joins), as integer points."""
    clipper = pyclipper.PyclipperOffset()
    clipper.AddPath(polygon.tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    pieces = clipper.Execute(distance)
    if not pieces:
        # mmocr falls back to the polygon itself when the offset fails
        return polygon.astype(np.int32)
    return np.asarray(pieces[0], dtype=np.int32)


def _edge_distances(xs: np.ndarray, ys: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Distance of every (x, y) to the polygon's outline, edge by edge, minimum over edges.

    The distance to an edge AB is DBNet's, not the Euclidean point-segment distance: the distance to the line
    AB when the pixel sees AB under an angle of at least 90 degrees (it lies in the circle with diameter AB),
    otherwise the distance to the nearer end point. The threshold maps of the official targets depend on it.
    """
    # Squared distances throughout (one square root at the end); xs is a row and ys a column, so the per-axis
    # differences stay 1-D and only the combined terms are full (height, width) arrays.
    nearest_squared = np.full(np.broadcast_shapes(xs.shape, ys.shape), np.inf)
    for start, end in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
        to_start_x, to_start_y = start[0] - xs, start[1] - ys
        to_end_x, to_end_y = end[0] - xs, end[1] - ys
        sees_obtuse = to_start_x * to_end_x + to_start_y * to_end_y <= 0
        edge_squared = max(float(np.sum((end - start) ** 2)), 1e-24)
        to_line_squared = (to_start_x * to_end_y - to_start_y * to_end_x) ** 2 / edge_squared
        to_ends_squared = np.minimum(to_start_x**2 + to_start_y**2, to_end_x**2 + to_end_y**2)
        np.minimum(
            nearest_squared, np.where(sees_obtuse, to_line_squared, to_ends_squared), out=nearest_squared
        )
    return np.sqrt(nearest_squared)


def _draw_border(polygon: np.ndarray, shrink_ratio: float, canvas: np.ndarray, mask: np.ndarray) -> None:
    """Add one polygon's border band to the threshold canvas (max over instances) and its mask.

    Inside the polygon dilated by D' = A (1 - r^2) / L (float polygon, not rounded), a pixel's value is
    1 - clip(distance to the outline / D', 0, 1); the official code writes it over the dilated polygon's whole
    bounding box, and its mask is the dilated polygon.
    """
    height, width = canvas.shape
    outline = shapely.polygons(polygon)
    distance = outline.area * (1 - shrink_ratio**2) / outline.length
    dilated = _dilate(polygon, distance)
    x_min, y_min = dilated.min(axis=0)
    x_max, y_max = dilated.max(axis=0)
    if x_max < 0 or y_max < 0 or x_min >= width or y_min >= height:
        return  # entirely outside the image: nothing to draw
    cv2.fillPoly(mask, [dilated], 1)
    left, top = max(x_min, 0), max(y_min, 0)
    right, bottom = min(x_max, width - 1), min(y_max, height - 1)
    xs = np.arange(left, right + 1, dtype=np.float64)[None, :]
    ys = np.arange(top, bottom + 1, dtype=np.float64)[:, None]
    band = 1 - np.clip(_edge_distances(xs, ys, polygon) / distance, 0, 1)
    window = canvas[top : bottom + 1, left : right + 1]
    np.fmax(window, band.astype(np.float32), out=window)


@dataclass(frozen=True)
class DbTargets:
    """DBNet's four training maps for one image, all (height, width) float32.

    shrink_map: 1 inside the shrunk text kernels. shrink_mask: 0 over ignored regions, 1 elsewhere.
    threshold_map: thr_min..thr_max, highest on the text borders. threshold_mask: 1 inside dilated polygons.
    ignored: per input polygon, whether it ended up ignored (given, invalid, or failed to shrink).
    """

    shrink_map: np.ndarray
    shrink_mask: np.ndarray
    threshold_map: np.ndarray
    threshold_mask: np.ndarray
    ignored: tuple[bool, ...]


def make_db_targets(
    polygons: Sequence[object],
    height: int,
    width: int,
    ignore: Sequence[bool] | None = None,
    shrink_ratio: float = 0.4,
    threshold_min: float = 0.3,
    threshold_max: float = 0.7,
    min_text_size: float = 8,
) -> DbTargets:
    """DBNet targets for the text `polygons` (pixel coordinates of a `height` x `width` image).

    A polygon is ignored -- its area masked out of `shrink_mask` and absent from the other maps -- when
    `ignore` says so (e.g. '###' transcriptions), when it has fewer than 3 points, intersects itself, has an
    area below 1 px or a minimum-area rectangle whose short side is below `min_text_size`, or when shrinking
    leaves nothing. Parts outside the image are clipped; polygons entirely outside contribute nothing.
    """
    require_geometry_backends()
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got height={height}, width={width}")
    points = [as_polygon(polygon, f"polygon {index}") for index, polygon in enumerate(polygons)]
    ignored = [
        flag or not _is_trainable(polygon, min_text_size)
        for polygon, flag in zip(points, ignore_flags(ignore, len(points)), strict=True)
    ]

    shrink_map = np.zeros((height, width), dtype=np.float32)
    for index, polygon in enumerate(points):
        if ignored[index]:
            continue
        kernel = shrink_polygon(polygon, shrink_ratio)
        if kernel is None:
            ignored[index] = True
            continue
        cv2.fillPoly(shrink_map, [kernel], 1.0)

    shrink_mask = np.ones((height, width), dtype=np.float32)
    for polygon, is_ignored in zip(points, ignored, strict=True):
        if is_ignored and len(polygon):
            cv2.fillPoly(shrink_mask, [polygon.astype(np.int32)], 0.0)

    border = np.zeros((height, width), dtype=np.float32)
    threshold_mask = np.zeros((height, width), dtype=np.float32)
    for polygon, is_ignored in zip(points, ignored, strict=True):
        if not is_ignored:
            _draw_border(polygon, shrink_ratio, border, threshold_mask)
    threshold_map = border * (threshold_max - threshold_min) + threshold_min
    return DbTargets(shrink_map, shrink_mask, threshold_map, threshold_mask, tuple(ignored))


# ------------------------------------------------------------------------------------------------------------
# Post-processing
# ------------------------------------------------------------------------------------------------------------


def _mean_inside(prob_map: np.ndarray, points: np.ndarray) -> float:
    """Mean probability inside the polygon, computed on its bounding box only (mmocr's `box_score_fast`)."""
    height, width = prob_map.shape
    x_min, y_min = np.clip(points.min(axis=0), 0, (width - 1, height - 1))
    x_max, y_max = np.clip(points.max(axis=0), 0, (width - 1, height - 1))
    mask = np.zeros((y_max - y_min + 1, x_max - x_min + 1), dtype=np.uint8)
    cv2.fillPoly(mask, [(points - (x_min, y_min)).astype(np.int32)], 1)
    return cv2.mean(prob_map[y_min : y_max + 1, x_min : x_max + 1], mask)[0]


def _mean_inside_each(prob_map: np.ndarray, polygons: list[np.ndarray]) -> list[float]:
    """`_mean_inside` of every polygon, with the per-polygon Python and allocation work taken out.

    The polygons are contour points, so they lie inside the map and their bounding boxes need no clipping; all
    boxes come from one pass over the concatenated points. Each polygon is filled into one shared scratch mask
    at its own place (a fill is translation-invariant, so the pixels are those of the official box-local mask),
    averaged over its box with OpenCV and wiped again. A single labelled image for all polygons at once (one
    fill each, one weighted bincount) would be exact too when fills that overlap -- holes inside their outer
    contour -- go to separate layers, but measured slower at 1024x1824 (benchmarks/RESULTS.md): the whole-image
    count costs more than the few dozen boxes of a text image.
    """
    if not polygons:
        return []
    vertices = np.concatenate(polygons)
    starts = np.cumsum([0] + [len(points) for points in polygons[:-1]])
    corners = np.hstack([np.minimum.reduceat(vertices, starts), np.maximum.reduceat(vertices, starts) + 1])
    scratch = np.zeros(prob_map.shape, dtype=np.uint8)
    scores = []
    for points, (x_min, y_min, x_end, y_end) in zip(polygons, corners.tolist(), strict=True):
        cv2.fillPoly(scratch, [points], 1)
        window = scratch[y_min:y_end, x_min:x_end]
        scores.append(cv2.mean(prob_map[y_min:y_end, x_min:x_end], window)[0])
        window[:] = 0
    return scores


def _unclip(points: np.ndarray, unclip_ratio: float) -> np.ndarray | None:
    """The kernel grown back to the text region: offset outwards by A * unclip_ratio / L (DBNet's unclip).

    None when the offset yields no outline or several (the official code drops those).
    """
    perimeter = cv2.arcLength(points, True)
    if perimeter == 0:
        return None
    distance = abs(cv2.contourArea(points)) * unclip_ratio / perimeter
    clipper = pyclipper.PyclipperOffset()
    clipper.AddPath(points.tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    outlines = clipper.Execute(distance)
    if len(outlines) != 1:
        return None
    # Round joins give outlines of hundreds of points; reading the flat coordinates is about twice as fast
    # as converting the nested lists.
    outline = outlines[0]
    return np.fromiter(chain.from_iterable(outline), dtype=np.int32, count=2 * len(outline)).reshape(-1, 2)


def _text_contours(prob_map: np.ndarray, threshold: float, max_candidates: int) -> tuple[np.ndarray, list]:
    """The validated map and the contours the official loop examines: every contour of `prob_map > threshold`
    (RETR_LIST: holes included), at most `max_candidates` + 1 -- the official loop stops only after index
    `max_candidates`."""
    require_geometry_backends()
    prob_map = np.ascontiguousarray(prob_map, dtype=np.float32)
    if prob_map.ndim != 2:
        raise ValueError(f"expected an (H, W) probability map, got shape {prob_map.shape}")
    # findContours reads any non-zero byte as foreground, so the boolean mask is used as bytes, uncopied.
    text_mask = np.greater(prob_map, threshold).view(np.uint8)
    contours, _ = cv2.findContours(text_mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    return prob_map, list(contours[: max_candidates + 1])


def _simplify(contour: np.ndarray, approx_ratio: float) -> np.ndarray | None:
    """Douglas-Peucker at `approx_ratio` x the perimeter (0 keeps the contour) as (K, 2) points; None below 4
    points (simplification never adds points, so a shorter contour is dropped before)."""
    if len(contour) < 4:
        return None
    if approx_ratio > 0:
        contour = cv2.approxPolyDP(contour, approx_ratio * cv2.arcLength(contour, True), True)
    points = contour.reshape(-1, 2)
    return points if len(points) >= 4 else None


def _boundary(points: np.ndarray, box_type: str, unclip_ratio: float, min_size: float) -> np.ndarray | None:
    """The unclipped region of one kept kernel: its minimum-area rectangle for quads (None unless the shorter
    side is above `min_size`), its outline for polygons (None below 4 points)."""
    region = _unclip(points, unclip_ratio)
    if region is None:
        return None
    if box_type == "quad":
        rectangle = cv2.minAreaRect(region)
        if min(rectangle[1]) <= min_size:
            return None
        return cv2.boxPoints(rectangle).astype(np.float64)
    return region.astype(np.float64) if len(region) >= 4 else None


def extract_text_boundaries(
    prob_map: np.ndarray,
    threshold: float = 0.3,
    box_type: str = "quad",
    unclip_ratio: float = 1.5,
    min_score: float = 0.3,
    min_size: float = 5,
    max_candidates: int = 3000,
    approx_ratio: float = 0.01,
    one_pass_scoring: bool = True,
) -> list[tuple[np.ndarray, float]]:
    """Text boundaries of one (H, W) probability map, in its pixel coordinates, as (points (K, 2), score).

    The official DB procedure: contours of `prob_map > threshold` (every contour, holes included), each
    simplified with Douglas-Peucker at `approx_ratio` x its perimeter (0 keeps the raw contour), kept if it
    has at least 4 points and its mean probability reaches `min_score`, then unclipped by `unclip_ratio`.
    `box_type="quad"` returns the minimum-area rectangle of the unclipped region, dropped when its shorter
    side is not above `min_size`; `"poly"` returns the unclipped outline (at least 4 points; `min_size` does
    not apply, as in TCM's released settings). At most `max_candidates` + 1 contours are examined: the
    official loop stops only after index `max_candidates`.

    The scores of all candidates are computed in one pass (`_mean_inside_each`); `one_pass_scoring=False`
    scores them the official way instead, each on a mask of its own bounding box (`_mean_inside`), with
    exactly the same boundaries and scores (see `extract_text_boundaries_per_contour`).
    """
    check_box_type(box_type)
    prob_map, contours = _text_contours(prob_map, threshold, max_candidates)
    candidates = [
        points for points in (_simplify(contour, approx_ratio) for contour in contours) if points is not None
    ]
    if one_pass_scoring:
        scores = _mean_inside_each(prob_map, candidates)
    else:
        scores = [_mean_inside(prob_map, points) for points in candidates]
    boundaries = []
    for points, score in zip(candidates, scores, strict=True):
        if score < min_score:
            continue
        boundary = _boundary(points, box_type, unclip_ratio, min_size)
        if boundary is not None:
            boundaries.append((boundary, score))
    return boundaries


def extract_text_boundaries_per_contour(
    prob_map: np.ndarray, **settings: Any
) -> list[tuple[np.ndarray, float]]:
    """`extract_text_boundaries` (same settings) in the official order of work: each contour scored on a mask
    of its own bounding box. Kept as the reference for tests and the detector benchmark's baseline."""
    return extract_text_boundaries(prob_map, **settings, one_pass_scoring=False)
