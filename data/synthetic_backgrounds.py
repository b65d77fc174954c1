"""Backgrounds, ink colours and camera effects of the synthetic images, all drawn from a numpy Generator.

Images are float32 ``(height, width, 3)`` arrays in 0..255 until the end, so that effects compose without
repeated rounding.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from scenetext.pipelines.image_loading import load_rgb_image

BACKGROUND_KINDS = ("flat", "gradient", "texture", "clutter")

# ITU-R BT.601 luma weights: contrast between ink and background is judged on perceived brightness.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def render_background(
    rng: np.random.Generator, width: int, height: int, kinds: tuple[str, ...]
) -> np.ndarray:
    """A background of one of ``kinds``: ``flat`` colour, linear ``gradient`` between two colours, smooth
    random ``texture`` (paper, wall, foliage-like), or ``clutter`` (a flat or gradient base with shapes and
    lines that are not text, so that a detector learns edges alone are not words)."""
    unknown = set(kinds) - set(BACKGROUND_KINDS)
    if not kinds or unknown:
        raise ValueError(f"background kinds must be a non-empty subset of {BACKGROUND_KINDS}, got {kinds}")
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "flat":
        flat = np.empty((height, width, 3), np.float32)
        flat[...] = _random_colour(rng)
        return flat
    if kind == "gradient":
        return _gradient(rng, width, height)
    if kind == "texture":
        return _texture(rng, width, height)
    base = _gradient(rng, width, height) if rng.random() < 0.5 else _texture(rng, width, height)
    draw_distractors(rng, base, int(rng.integers(2, 8)))
    return base


def draw_distractors(rng: np.random.Generator, image: np.ndarray, count: int) -> None:
    """Draw ``count`` random rectangles, ellipses and lines onto ``image`` (in place)."""
    height, width = image.shape[:2]
    scale = min(width, height)
    for _ in range(count):
        colour = tuple(float(value) for value in _random_colour(rng))
        x, y = int(rng.integers(width)), int(rng.integers(height))
        shape = int(rng.integers(3))
        if shape == 0:
            w, h = (int(v) for v in rng.integers(scale // 20 + 1, scale // 3 + 2, size=2))
            thickness = -1 if rng.random() < 0.5 else int(rng.integers(1, 4))
            cv2.rectangle(image, (x, y), (x + w, y + h), colour, thickness, cv2.LINE_AA)
        elif shape == 1:
            axes = tuple(int(v) for v in rng.integers(scale // 30 + 1, scale // 5 + 2, size=2))
            thickness = -1 if rng.random() < 0.5 else int(rng.integers(1, 4))
            cv2.ellipse(
                image, (x, y), axes, float(rng.uniform(0, 180)), 0, 360, colour, thickness, cv2.LINE_AA
            )
        else:
            end = (int(rng.integers(width)), int(rng.integers(height)))
            cv2.line(image, (x, y), end, colour, int(rng.integers(1, 5)), cv2.LINE_AA)


def pick_ink_colour(rng: np.random.Generator, background: np.ndarray, min_contrast: float) -> np.ndarray:
    """A random colour whose brightness differs from the mean of ``background`` pixels by at least
    ``min_contrast`` (0..255), falling back to black or white, whichever is farther."""
    background_luma = float(np.asarray(background, np.float32).reshape(-1, 3).mean(axis=0) @ _LUMA)
    for _ in range(16):
        colour = _random_colour(rng)
        if abs(float(colour @ _LUMA) - background_luma) >= min_contrast:
            return colour
    return np.full(3, 0.0 if background_luma > 127.5 else 255.0, np.float32)


def apply_camera_effects(
    rng: np.random.Generator,
    image: np.ndarray,
    blur_probability: float,
    noise_probability: float,
    jpeg_probability: float,
    blur_scale: float = 1.0,
) -> Image.Image:
    """Gaussian blur (sigma up to ``1.2 * blur_scale``), Gaussian noise and JPEG compression, each with its
    probability; returns the final 8-bit RGB image."""
    if rng.random() < blur_probability:
        sigma = float(rng.uniform(0.3, 1.2)) * blur_scale
        image = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma)
    if rng.random() < noise_probability:
        image = image + rng.normal(0.0, float(rng.uniform(2.0, 12.0)), size=image.shape).astype(np.float32)
    result = Image.fromarray(np.clip(np.rint(image), 0, 255).astype(np.uint8), "RGB")
    if rng.random() < jpeg_probability:
        buffer = io.BytesIO()
        result.save(buffer, format="JPEG", quality=int(rng.integers(30, 91)))
        result = load_rgb_image(buffer.getvalue())
    return result


def composite(image: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    """Alpha-blend a flat ``colour`` onto ``image`` (in place) with ``alpha`` in 0..255."""
    weight = (alpha.astype(np.float32) / 255.0)[..., None]
    image *= 1.0 - weight
    image += weight * colour


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.0, 255.0, size=3).astype(np.float32)


def _gradient(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    start, end = _random_colour(rng), _random_colour(rng)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    position = xs * np.cos(angle) + ys * np.sin(angle)
    position = (position - position.min()) / max(float(np.ptp(position)), 1.0)
    return (start + position[..., None] * (end - start)).astype(np.float32)


def _texture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    # Coarse random noise, smoothly upsampled: blotchy surfaces at a random grain, tinted around a colour.
    grain = int(rng.integers(4, 32))
    coarse = rng.normal(0.0, 1.0, size=(max(2, height // grain), max(2, width // grain), 3)).astype(
        np.float32
    )
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    base = _random_colour(rng)
    return np.clip(base + smooth * float(rng.uniform(8.0, 40.0)), 0.0, 255.0).astype(np.float32)
