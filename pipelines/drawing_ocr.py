"""Pictures of OCR and detection results: outlines coloured by confidence, labelled with text and score."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .image_loading import load_rgb_image


def score_color(score: float) -> tuple[int, int, int]:
    """Red for 0, amber around 0.5, green for 1: a reader spots doubtful words at a glance."""
    score = min(max(float(score), 0.0), 1.0)
    return (round(255 * min(1.0, 2 * (1 - score))), round(200 * min(1.0, 2 * score)), 0)


def _label(result: Mapping[str, Any]) -> str:
    score = result.get("score")
    text = result.get("text", result.get("generated_text"))
    parts = [] if text is None else [str(text)]
    if score is not None:
        parts.append(f"{float(score):.2f}")
    return " ".join(parts)


def _outline(result: Mapping[str, Any], index: int) -> list[tuple[float, float]]:
    if "polygon" in result:
        points = np.asarray(result["polygon"], dtype=np.float64).reshape(-1, 2)
    elif "box" in result:
        box = result["box"]
        points = np.array(
            [
                [box["xmin"], box["ymin"]],
                [box["xmax"], box["ymin"]],
                [box["xmax"], box["ymax"]],
                [box["xmin"], box["ymax"]],
            ],
            dtype=np.float64,
        )
    else:
        raise ValueError(f"result {index} has neither 'polygon' nor 'box': {sorted(result)}")
    return [tuple(point) for point in points]


def draw_results(
    image: Image.Image | np.ndarray, results: Sequence[Mapping[str, Any]], font_size: int | None = None
) -> Image.Image:
    """A copy of `image` with each result's outline and label (text and score) drawn on it.

    Args:
        image: the picture the results refer to (PIL image or RGB/gray `uint8` array).
        results: dicts with a `polygon` (list of [x, y]) or a `box` ({xmin, ymin, xmax, ymax}), and optionally
            `text` (or `generated_text`) and `score` -- the output of the `ocr` or `scene-text-detection`
            pipelines.
        font_size: label size in pixels; by default 1/40 of the image's longer side, at least 12.

    Returns:
        A new RGB PIL image; outlines are coloured from red (score 0) to green (score 1).
    """
    # Upright, as the pipelines read it: results are in those coordinates. A copy: drawing works in place.
    canvas = load_rgb_image(image).copy()
    draw = ImageDraw.Draw(canvas)
    size = font_size or max(12, round(max(canvas.size) / 40))
    font = ImageFont.load_default(size=size)
    line_width = max(2, size // 8)
    for index, result in enumerate(results):
        color = score_color(result.get("score", 1.0))
        outline = _outline(result, index)
        draw.polygon(outline, outline=color, width=line_width)
        label = _label(result)
        if not label:
            continue
        # The label sits above the region's top-left corner, inside the picture.
        x = min(point[0] for point in outline)
        y = min(point[1] for point in outline)
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        x = min(max(0.0, x), max(0.0, canvas.width - (right - left)))
        y = max(0.0, y - (bottom - top) - 2 * line_width)
        draw.rectangle((x, y, x + right - left + 4, y + bottom + 2), fill=color)
        draw.text((x + 2, y), label, fill=(255, 255, 255), font=font)
    return canvas
