"""Detecting the text regions of whole images, for the detection and OCR pipelines: the image processor's resize,
the detector, DB post-processing, and tiling of images far longer than they are high (or the reverse).

A detector sees each image resized to its processor's `size`. An image whose long side is many times its short
side (a 10000x50 strip of text) comes out a few pixels high there, and no word in it is found. Such an image is
cut along its long side into overlapping tiles whose long side is `max_aspect_ratio` times the short side; each
tile is resized as an image of that shape (so its text keeps a height the detector reads), and the regions of all
tiles are mapped back to the image and de-duplicated (`merge_tile_regions`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

try:
    import shapely
except ImportError:
    shapely = None

# Images up to 8 times longer than high are read whole; longer ones are tiled. At the embedded detector's scale
# (long side 512) a tile of 8:1 is 64 pixels high, the height its training scenes' words have.
DEFAULT_MAX_ASPECT_RATIO = 8.0
# Neighbouring tiles overlap by half a tile, so every word shorter than half a tile lies whole in some tile.
TILE_OVERLAP = 0.5
# Tiles of one image run through the detector this many at a time (a long strip has hundreds).
TILES_PER_FORWARD = 16
# Two regions of different tiles are one word when their IoU passes DUPLICATE_IOU, or when a smaller region lies
# inside a larger one by CONTAINED_FRACTION of its area (the part of a word that a tile's edge cut off).
DUPLICATE_IOU = 0.5
CONTAINED_FRACTION = 0.7


@dataclass(frozen=True)
class Window:
    """A tile of an image: rows `top:bottom`, columns `left:right`."""

    top: int
    left: int
    bottom: int
    right: int


def tile_windows(height: int, width: int, max_aspect_ratio: float) -> list[Window]:
    """The tiles an image of `height` x `width` is read in: itself when its long side is at most
    `max_aspect_ratio` times its short side, else windows along the long side, `max_aspect_ratio` times the
    short side long, overlapping by `TILE_OVERLAP`, the last one ending at the image's end."""
    if max_aspect_ratio < 1:
        raise ValueError(f"max_aspect_ratio must be >= 1, got {max_aspect_ratio}")
    short, long = min(height, width), max(height, width)
    if long <= max_aspect_ratio * short:
        return [Window(0, 0, height, width)]
    length = round(max_aspect_ratio * short)
    stride = max(1, round(length * (1 - TILE_OVERLAP)))
    starts = list(range(0, long - length + 1, stride))
    if starts[-1] + length < long:
        starts.append(long - length)
    if width >= height:
        return [Window(0, start, height, start + length) for start in starts]
    return [Window(start, 0, start + length, width) for start in starts]


def merge_tile_regions(detections: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One image's regions from its tiles' post-processed detections (already in image pixels), each word once.

    Larger regions are kept first; a region is dropped when it has an IoU above `DUPLICATE_IOU` with a kept one
    (the same word found whole in two tiles) or lies inside a kept one by `CONTAINED_FRACTION` of its area (a
    word cut by a tile edge, found whole in the neighbouring tile). Kept regions stay in tile order.
    """
    if shapely is None:
        raise ImportError("merging the regions of tiled images needs shapely: pip install shapely")
    polygons = [polygon for found in detections for polygon in found["polygons"]]
    if not polygons:
        return {"scores": torch.zeros(0), "polygons": [], "boxes": torch.zeros(0, 4)}
    scores = torch.cat([found["scores"] for found in detections])
    boxes = torch.cat([found["boxes"] for found in detections])
    shapes = [shapely.make_valid(shapely.Polygon(polygon.numpy())) for polygon in polygons]
    areas = np.array([shape.area for shape in shapes])
    kept: list[int] = []
    for index in np.argsort(-areas, kind="stable"):
        shape = shapes[index]
        if areas[index] <= 0:
            continue
        for other in kept:
            overlap = shape.intersection(shapes[other]).area
            union = areas[index] + areas[other] - overlap
            if overlap / union > DUPLICATE_IOU or overlap / areas[index] > CONTAINED_FRACTION:
                break
        else:
            kept.append(int(index))
    kept.sort()
    return {"scores": scores[kept], "polygons": [polygons[index] for index in kept], "boxes": boxes[kept]}


def detect_regions(
    detector: Any,
    image_processor: Any,
    images: Sequence[np.ndarray],
    size: Mapping[str, int] | None = None,
    max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    **settings: Any,
) -> list[dict[str, Any]]:
    """The text regions of each (H, W, 3) RGB image, post-processed into its pixels: per image
    `{"scores", "polygons", "boxes"}` as `TcmImageProcessor.post_process_text_detection` returns them.

    Images read whole share one forward pass (padded together, as the processor does); a tiled image (see
    `tile_windows`) runs its tiles `TILES_PER_FORWARD` at a time and merges their regions. `detector` is a TCM
    model or any backend called the same way (`detector(pixel_values, output_threshold_maps=False).prob_map`:
    `OnnxDetector`); `size` is a call-time resize of the processor, `settings` are post-processing settings.
    """
    windows = [tile_windows(*image.shape[:2], max_aspect_ratio) for image in images]
    results: list[dict[str, Any] | None] = [None] * len(images)
    whole = [index for index, image_windows in enumerate(windows) if len(image_windows) == 1]
    if whole:
        found = _detect(
            detector, image_processor, [images[index] for index in whole], settings, size, device, dtype
        )
        for index, detections in zip(whole, found, strict=True):
            results[index] = detections
    for index, image_windows in enumerate(windows):
        if len(image_windows) == 1:
            continue
        tiles = [images[index][w.top : w.bottom, w.left : w.right] for w in image_windows]
        found = []
        for start in range(0, len(tiles), TILES_PER_FORWARD):
            chunk = tiles[start : start + TILES_PER_FORWARD]
            found.extend(_detect(detector, image_processor, chunk, settings, size, device, dtype))
        results[index] = merge_tile_regions(
            [_shifted(detections, window) for detections, window in zip(found, image_windows, strict=True)]
        )
    return results


def _detect(
    detector: Any,
    image_processor: Any,
    images: Sequence[np.ndarray],
    settings: dict[str, Any],
    size: Mapping[str, int] | None,
    device: torch.device | str,
    dtype: torch.dtype,
) -> list[dict[str, Any]]:
    """Post-processed regions of images read whole, in one forward pass."""
    batch = image_processor(list(images), size=size)
    # DB post-processing reads only the probability map: skip the threshold branch
    outputs = detector(batch["pixel_values"].to(device, dtype), output_threshold_maps=False)
    # post-processing reads each map only inside its image's own padded area, given the sizes below
    return image_processor.post_process_text_detection(
        outputs.prob_map.float(),
        target_sizes=batch["original_sizes"],
        resized_sizes=batch["resized_sizes"],
        **settings,
    )


def _shifted(detections: dict[str, Any], window: Window) -> dict[str, Any]:
    """A tile's regions moved from tile pixels to image pixels."""
    offset = torch.tensor([window.left, window.top], dtype=torch.float32)
    return {
        "scores": detections["scores"],
        "polygons": [polygon + offset for polygon in detections["polygons"]],
        "boxes": detections["boxes"] + offset.repeat(2),
    }
