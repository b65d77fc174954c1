"""Word crops for the recognizer: detected regions of a scene rectified into upright, straight strips.

Quadrilaterals are rectified by a perspective warp; curved polygons are straightened by sampling their top and
bottom edges at matching positions and remapping the band between them; crops taller than wide (vertical text)
are turned a quarter turn anticlockwise so the recognizer reads them left to right.
"""

from __future__ import annotations

import numpy as np

try:
    import cv2
except ImportError:
    cv2 = None

# A crop this much taller than wide holds vertical text (a word turned by 90 degrees); single tall glyphs
# such as "I" or "1" in a square-ish box stay as they are.
VERTICAL_ASPECT_RATIO = 1.5


def _require_cv2() -> None:
    if cv2 is None:
        raise ImportError("cropping text regions needs OpenCV: pip install opencv-python-headless")


def order_quad(points: np.ndarray) -> np.ndarray:
    """The 4 corners of a quadrilateral as top-left, top-right, bottom-right, bottom-left (image axes, y down).

    Corners are sorted clockwise around their centre, then rolled so the corner with the smallest x + y comes
    first; a word rotated by up to 45 degrees keeps its reading direction along the first edge.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if points.shape != (4, 2):
        raise ValueError(f"a quadrilateral needs 4 (x, y) points, got shape {points.shape}")
    centre = points.mean(axis=0)
    angles = np.arctan2(points[:, 1] - centre[1], points[:, 0] - centre[0])
    clockwise = points[np.argsort(angles)]  # y grows downwards, so increasing angle runs clockwise
    return np.roll(clockwise, -int(np.argmin(clockwise.sum(axis=1))), axis=0)


def crop_quad(image: np.ndarray, quad: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """Perspective-rectify the quadrilateral `quad` (any corner order) of `image` (H, W[, C]), with `margin` times
    its height of surrounding image added on every side."""
    _require_cv2()
    corners = order_quad(quad)
    top_left, top_right, bottom_right, bottom_left = corners
    width = max(np.linalg.norm(top_right - top_left), np.linalg.norm(bottom_right - bottom_left))
    height = max(np.linalg.norm(bottom_left - top_left), np.linalg.norm(bottom_right - top_right))
    pad = margin * height
    width, height = max(1, round(width + 2 * pad)), max(1, round(height + 2 * pad))
    target = np.array(
        [[pad, pad], [width - pad, pad], [width - pad, height - pad], [pad, height - pad]], dtype=np.float32
    )
    matrix = cv2.getPerspectiveTransform(corners.astype(np.float32), target)
    return cv2.warpPerspective(
        image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def _resample(chain: np.ndarray, count: int) -> np.ndarray:
    """`count` points evenly spaced by arc length along the polyline `chain`."""
    steps = np.linalg.norm(np.diff(chain, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(steps)])
    if arc[-1] == 0:
        return np.repeat(chain[:1], count, axis=0)
    positions = np.linspace(0, arc[-1], count)
    return np.stack([np.interp(positions, arc, chain[:, 0]), np.interp(positions, arc, chain[:, 1])], axis=1)


def polygon_edges(polygon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a text polygon into its top and bottom edges, both running in reading direction.

    The word's 4 corners are the 4 vertices where the outline turns most sharply (along a word's long sides
    it bends gently, at its ends it turns by about 90 degrees twice). Of the 4 outline pieces between them,
    the shorter opposite pair are the ends and the other two the edges. The reading direction is made to
    point right (down for vertical text), and the top edge is the one on the left of it.
    """
    points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    count = len(points)
    incoming = points - np.roll(points, 1, axis=0)
    outgoing = np.roll(points, -1, axis=0) - points
    turning = np.abs(
        np.arctan2(
            incoming[:, 0] * outgoing[:, 1] - incoming[:, 1] * outgoing[:, 0],
            (incoming * outgoing).sum(axis=1),
        )
    )
    corners = np.sort(np.argsort(-turning, kind="stable")[:4])

    def piece(first: int, last: int) -> np.ndarray:
        return points[[(first + step) % count for step in range((last - first) % count + 1)]]

    pieces = [piece(corners[k], corners[(k + 1) % 4]) for k in range(4)]
    lengths = [np.linalg.norm(np.diff(part, axis=0), axis=1).sum() for part in pieces]
    # the edges are the longer opposite pair; the other edge is walked backwards so both start at one end
    first, second = (
        (pieces[1], pieces[3])
        if lengths[0] + lengths[2] <= lengths[1] + lengths[3]
        else (
            pieces[0],
            pieces[2],
        )
    )
    second = second[::-1]
    direction = (first[-1] - first[0]) + (second[-1] - second[0])
    if direction[0] < 0 or (direction[0] == 0 and direction[1] < 0):
        first, second, direction = first[::-1], second[::-1], -direction
    downwards = np.array([-direction[1], direction[0]])  # the reading direction turned a quarter clockwise
    if (first @ downwards).mean() <= (second @ downwards).mean():
        return first, second
    return second, first


def crop_polygon(
    image: np.ndarray, polygon: np.ndarray, samples: int = 32, margin: float = 0.0
) -> np.ndarray:
    """Straighten a (possibly curved) text polygon of `image` into a rectangular strip.

    Both edges are resampled at `samples` matching positions; each output column is the segment from a top
    point to its bottom partner, so the strip's height is the mean distance between the edges and its width
    the mean length of the two edges. `margin` widens the band by that fraction of its thickness on every side.
    """
    _require_cv2()
    points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    if len(points) < 4:
        raise ValueError(f"a text polygon needs at least 4 points, got {len(points)}")
    top, bottom = polygon_edges(points)
    top, bottom = _resample(top, samples), _resample(bottom, samples)
    if margin:
        # widening needs matched points; the widened edges are respaced for the column sampling below
        top, bottom = (_resample(edge, samples) for edge in _widen_band(top, bottom, margin))
    length = (
        np.linalg.norm(np.diff(top, axis=0), axis=1).sum()
        + np.linalg.norm(np.diff(bottom, axis=0), axis=1).sum()
    ) / 2
    thickness = np.linalg.norm(bottom - top, axis=1).mean()
    width, height = max(1, round(length)), max(1, round(thickness))
    columns = np.linspace(0, samples - 1, width)
    column_top = np.stack([np.interp(columns, np.arange(samples), top[:, i]) for i in range(2)], axis=1)
    column_bottom = np.stack([np.interp(columns, np.arange(samples), bottom[:, i]) for i in range(2)], axis=1)
    # pixel centres: row r samples the point (r + 0.5) / height of the way from top to bottom
    fraction = ((np.arange(height) + 0.5) / height)[:, None, None]
    grid = column_top[None] + fraction * (column_bottom - column_top)[None]
    return cv2.remap(
        image,
        grid[..., 0].astype(np.float32),
        grid[..., 1].astype(np.float32),
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True).clip(min=1e-9)


def _widen_band(top: np.ndarray, bottom: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Matched top and bottom edges moved apart, and both extended at their ends, by `margin` times the mean
    distance between them."""
    across = bottom - top
    pad = margin * np.linalg.norm(across, axis=1).mean()
    top, bottom = top - pad * _unit(across), bottom + pad * _unit(across)

    def extend(chain: np.ndarray) -> np.ndarray:
        start = chain[0] + pad * _unit(chain[0] - chain[1])
        end = chain[-1] + pad * _unit(chain[-1] - chain[-2])
        return np.vstack([start, chain, end])

    return extend(top), extend(bottom)


def rectify_region(image: np.ndarray, polygon: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """The upright crop of one detected region: perspective warp for 4 points, edge sampling for more, with
    `margin` times the region's height of surrounding image on every side; a crop over `VERTICAL_ASPECT_RATIO`
    times taller than wide is turned a quarter turn anticlockwise."""
    points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    if len(points) < 4:
        raise ValueError(f"a text region needs at least 4 points, got {len(points)}")
    if margin < 0:
        raise ValueError(f"a crop margin must be >= 0, got {margin}")
    crop = (
        crop_quad(image, points, margin) if len(points) == 4 else crop_polygon(image, points, margin=margin)
    )
    if crop.shape[0] > VERTICAL_ASPECT_RATIO * crop.shape[1]:
        crop = np.ascontiguousarray(np.rot90(crop, k=1))
    return crop
