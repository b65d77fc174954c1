"""Backgrounds, ink colours and camera effects of the synthetic images, all drawn from a numpy Generator.

Images are float32 ``(height, width, 3)`` arrays in 0..255 until the end, so that effects compose without
repeated rounding.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from scenetext.pipelines.image_loading import load_rgb_image

from .file_search import find_files

BACKGROUND_KINDS = ("flat", "gradient", "texture", "clutter")
# Regions of real photographs; needs image files (`find_photo_files`), so it is not among the defaults.
PHOTO = "photo"
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
# Photos are kept in memory at most this long a side: backgrounds are small, and a worker holds every photo.
_PHOTO_MAX_SIDE = 1024

# ITU-R BT.601 luma weights: contrast between ink and background is judged on perceived brightness.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class CameraEffects:
    """How often each camera and lighting effect is applied (probabilities; see `apply_camera_effects`). The
    synthetic word and scene configs extend it."""

    blur_probability: float = 0.4
    motion_blur_probability: float = 0.0
    noise_probability: float = 0.5
    jpeg_probability: float = 0.3
    low_resolution_probability: float = 0.0
    light_probability: float = 0.0


def render_background(
    rng: np.random.Generator,
    width: int,
    height: int,
    kinds: tuple[str, ...],
    photo_files: tuple[str, ...] = (),
) -> np.ndarray:
    """A background of one of ``kinds``: ``flat`` colour, linear ``gradient`` between two colours, smooth
    random ``texture`` (paper, wall, foliage-like), ``clutter`` (a flat or gradient base with shapes and
    lines that are not text, so that a detector learns edges alone are not words), or ``photo`` (a random
    region of one of ``photo_files``, at a random scale, possibly mirrored)."""
    unknown = set(kinds) - {*BACKGROUND_KINDS, PHOTO}
    if not kinds or unknown:
        raise ValueError(
            f"background kinds must be a non-empty subset of {(*BACKGROUND_KINDS, PHOTO)}, got {kinds}"
        )
    if PHOTO in kinds and not photo_files:
        raise ValueError("the 'photo' background needs photos: set background_dirs to folders of images")
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == PHOTO:
        return _photo_region(rng, width, height, photo_files[int(rng.integers(len(photo_files)))])
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


def find_photo_files(folders: Sequence[str | Path]) -> tuple[str, ...]:
    """The image files under ``folders`` (recursively), sorted; a folder that does not exist is an error."""
    return _find_photo_files(tuple(str(folder) for folder in folders))


@functools.lru_cache(maxsize=8)
def _find_photo_files(folders: tuple[str, ...]) -> tuple[str, ...]:
    found = find_files(folders, PHOTO_SUFFIXES, folders, "background")
    if folders and not found:
        raise FileNotFoundError(f"no images ({', '.join(PHOTO_SUFFIXES)}) under {', '.join(folders)}")
    return found


def apply_camera_effects(
    rng: np.random.Generator, image: np.ndarray, effects: CameraEffects, blur_scale: float = 1.0
) -> Image.Image:
    """The camera and lighting effects of ``effects``, each with its probability: uneven
    light, low resolution, defocus (Gaussian, sigma up to ``1.2 * blur_scale``) and motion blur, Gaussian
    noise and JPEG compression; returns the final 8-bit RGB image. Effects whose probability is 0 draw nothing
    from ``rng``, so configs without them give the same images as before they existed."""
    if _happens(rng, effects.light_probability):
        image = _uneven_light(rng, image)
    if _happens(rng, effects.low_resolution_probability):
        image = _low_resolution(rng, image)
    if rng.random() < effects.blur_probability:
        sigma = float(rng.uniform(0.3, 1.2)) * blur_scale
        image = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma)
    if _happens(rng, effects.motion_blur_probability):
        image = _motion_blur(rng, image, blur_scale)
    if rng.random() < effects.noise_probability:
        image = image + rng.normal(0.0, float(rng.uniform(2.0, 12.0)), size=image.shape).astype(np.float32)
    result = Image.fromarray(np.clip(np.rint(image), 0, 255).astype(np.uint8), "RGB")
    if rng.random() < effects.jpeg_probability:
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


def draw_patterns(rng: np.random.Generator, image: np.ndarray) -> None:
    """Draw one text-like but textless pattern onto ``image`` (in place): parallel stripes (blinds, fences,
    railings), a grid (windows, tiles) or a row of repeated bars (barcodes, columns) -- the regular edges that a
    detector trained on plain backgrounds mistakes for words."""
    height, width = image.shape[:2]
    colour = tuple(float(value) for value in _random_colour(rng))
    left, top = int(rng.integers(0, max(1, width // 2))), int(rng.integers(0, max(1, height // 2)))
    right = int(rng.integers(left + max(2, width // 8), width + 1))
    bottom = int(rng.integers(top + max(2, height // 8), height + 1))
    period = int(rng.integers(4, max(5, min(width, height) // 6)))
    thickness = max(1, int(rng.integers(1, max(2, period // 2))))
    kind = int(rng.integers(3))
    if kind in (0, 1):  # vertical or horizontal stripes
        for offset in range(0, (right - left) if kind == 0 else (bottom - top), period):
            if kind == 0:
                cv2.line(image, (left + offset, top), (left + offset, bottom), colour, thickness)
            else:
                cv2.line(image, (left, top + offset), (right, top + offset), colour, thickness)
    else:  # grid
        for x in range(left, right, period):
            cv2.line(image, (x, top), (x, bottom), colour, thickness)
        for y in range(top, bottom, period):
            cv2.line(image, (left, y), (right, y), colour, thickness)


def _happens(rng: np.random.Generator, probability: float) -> bool:
    return probability > 0 and rng.random() < probability


def _uneven_light(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    # A smooth gain field, brighter towards a random point: sunlight, spotlights and shade across a surface.
    height, width = image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    centre_x, centre_y = rng.uniform(0, width), rng.uniform(0, height)
    distance = np.hypot(xs - centre_x, ys - centre_y) / max(math.hypot(width, height), 1.0)
    low, high = float(rng.uniform(0.35, 0.9)), float(rng.uniform(1.0, 1.35))
    gain = high - (high - low) * np.clip(distance * float(rng.uniform(1.0, 2.5)), 0.0, 1.0)
    return image * gain[..., None]


def _low_resolution(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    factor = float(rng.uniform(1.5, 4.0))
    small = cv2.resize(
        image, (max(1, round(width / factor)), max(1, round(height / factor))), interpolation=cv2.INTER_AREA
    )
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _motion_blur(rng: np.random.Generator, image: np.ndarray, blur_scale: float) -> np.ndarray:
    length = max(2, round(float(rng.uniform(2.0, 7.0)) * blur_scale))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    rotation = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), float(rng.uniform(0, 180)), 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    return cv2.filter2D(image, -1, kernel / max(float(kernel.sum()), 1e-6))


def _photo_region(rng: np.random.Generator, width: int, height: int, path: str) -> np.ndarray:
    photo = _load_photo(path)
    photo_height, photo_width = photo.shape[:2]
    # The largest region of the target's aspect ratio that fits, shrunk by a random zoom (a closer look at the
    # surface), at a random place.
    fit = min(photo_width / width, photo_height / height)
    zoom = float(rng.uniform(0.3, 1.0))
    region_width = max(1, min(photo_width, round(width * fit * zoom)))
    region_height = max(1, min(photo_height, round(height * fit * zoom)))
    left = int(rng.integers(0, photo_width - region_width + 1))
    top = int(rng.integers(0, photo_height - region_height + 1))
    region = photo[top : top + region_height, left : left + region_width]
    if rng.random() < 0.5:
        region = region[:, ::-1]
    return cv2.resize(region, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)


@functools.lru_cache(maxsize=1024)
def _load_photo(path: str) -> np.ndarray:
    image = load_rgb_image(path)
    scale = _PHOTO_MAX_SIDE / max(image.size)
    if scale < 1:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    return np.ascontiguousarray(np.asarray(image, np.uint8))
