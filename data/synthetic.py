"""Synthetic word crops (recognition) and scenes with exact quadrilateral ground truth (detection).

These are the embedded default training data of the small demo models. Every sample is a pure function of
``(seed, index)``: its random generator is seeded with both, so a sample does not depend on which shard,
DataLoader worker or rank produces it, and the same seed gives identical pixels. A held-out set is the same
generator with another seed.

Scene ground truth: each word is rendered as a tight ink mask, and the mask is placed with an affine map
(rotation about its centre, then translation); the quadrilateral is that map applied to the mask's frame,
in continuous image coordinates (pixel ``(i, j)`` covers ``[j, j + 1] x [i, i + 1]``), clockwise from the
word's top-left corner. Words keep at least ``word_gap`` pixels apart and lie fully inside the image.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np
from datasets import IterableDataset
from shapely.geometry import Polygon

from .fonts import find_font_files, fonts_covering
from .samples import DETECTION_FEATURES, RECOGNITION_FEATURES, encode_png
from .synthetic_backgrounds import (
    BACKGROUND_KINDS,
    CameraEffects,
    apply_camera_effects,
    composite,
    draw_distractors,
    draw_patterns,
    find_photo_files,
    pick_ink_colour,
    render_background,
)
from .synthetic_text import TextSampling
from .text_rendering import Font, available_fonts, render_text_mask

# Separate random streams, so that word crops and scenes of the same seed are unrelated.
_WORD_STREAM, _SCENE_STREAM = 0, 1


@dataclass(frozen=True)
class SyntheticWordConfig(CameraEffects):
    """How synthetic word crops look. Ranges are ``(low, high)``, inclusive.

    Attributes:
        text: what the words say.
        font_paths: extra TrueType/OpenType files besides Pillow's and OpenCV's built-in fonts.
        font_dirs: folders searched for more font files (``"system"`` = the system font folders, see
            `fonts.find_font_files`); only the fonts that can draw every character of ``text.charset`` are used.
        background_dirs: folders of photographs for the ``"photo"`` background kind.
        font_size: em size in pixels.
        max_rotation: largest in-plane rotation, degrees.
        perspective_probability: share of crops whose corners are jittered (a mild perspective view).
        slant_probability / bold_probability: shares of oblique and heavier or lighter lettering.
        outline_probability: share of words with an outline or drop shadow of another colour.
        backgrounds: kinds of backgrounds, see `synthetic_backgrounds.BACKGROUND_KINDS`.
        min_contrast: least brightness difference (0..255) between ink and background.
        curve_probability: share of words set on a curved (arc) baseline.
        The camera effects and uneven lighting are `CameraEffects` probabilities.
    """

    text: TextSampling = field(default_factory=TextSampling)
    font_paths: tuple[str, ...] = ()
    font_dirs: tuple[str, ...] = ()
    background_dirs: tuple[str, ...] = ()
    font_size: tuple[int, int] = (20, 48)
    max_rotation: float = 4.0
    perspective_probability: float = 0.3
    slant_probability: float = 0.25
    bold_probability: float = 0.4
    outline_probability: float = 0.15
    # No "clutter" by default: a line across a short crop can hide a character and make the label unreadable.
    backgrounds: tuple[str, ...] = ("flat", "gradient", "texture")
    min_contrast: float = 60.0
    curve_probability: float = 0.0

    def __post_init__(self) -> None:
        _check_range("font_size", self.font_size, minimum=8)


@dataclass(frozen=True)
class SyntheticSceneConfig(CameraEffects):
    """How synthetic scenes look. Ranges are ``(low, high)``, inclusive.

    Attributes:
        text: what the words say.
        font_paths, font_dirs, background_dirs: as in `SyntheticWordConfig`.
        image_size: range of each side of the image, pixels.
        num_words: how many words are attempted; fewer are placed when the image is full.
        font_size: em size in pixels.
        max_angle: largest rotation of a word, degrees; ``horizontal_probability`` of words are not rotated.
        word_gap: least distance between two words' quadrilaterals, pixels.
        distractors: how many non-text shapes and lines are drawn on top of the background.
        pattern_probability: share of scenes with a regular textless pattern (stripes, grid: fences, blinds,
            windows, tiles) under the words.
        negative_probability: share of scenes with no text at all (hard negatives: a detector must stay quiet).
        backgrounds, min_contrast, slant/bold probabilities, camera effects: as in `SyntheticWordConfig`.
    """

    text: TextSampling = field(default_factory=lambda: TextSampling(max_length=10))
    font_paths: tuple[str, ...] = ()
    font_dirs: tuple[str, ...] = ()
    background_dirs: tuple[str, ...] = ()
    image_size: tuple[int, int] = (320, 640)
    num_words: tuple[int, int] = (1, 8)
    font_size: tuple[int, int] = (16, 64)
    max_angle: float = 30.0
    horizontal_probability: float = 0.3
    word_gap: float = 4.0
    distractors: tuple[int, int] = (0, 6)
    pattern_probability: float = 0.0
    negative_probability: float = 0.0
    backgrounds: tuple[str, ...] = BACKGROUND_KINDS
    min_contrast: float = 60.0
    slant_probability: float = 0.2
    bold_probability: float = 0.4
    blur_probability: float = 0.3  # scenes: less defocus than word crops

    def __post_init__(self) -> None:
        _check_range("image_size", self.image_size, minimum=32)
        _check_range("num_words", self.num_words, minimum=0)
        _check_range("font_size", self.font_size, minimum=8)
        _check_range("distractors", self.distractors, minimum=0)


def render_word_sample(index: int, seed: int = 0, config: SyntheticWordConfig | None = None) -> dict:
    """The synthetic word crop number ``index`` of ``seed``: ``{"image", "label", "source"}``."""
    config = config or SyntheticWordConfig()
    rng = _sample_rng(seed, index, _WORD_STREAM)
    text = config.text.sample(rng)
    mask = _render_styled_mask(rng, text, config.font_size, config)
    if config.curve_probability > 0 and rng.random() < config.curve_probability:
        mask = _curve_baseline(rng, mask)
    mask = _place_in_crop(rng, mask, config)
    height, width = mask.shape
    image = render_background(rng, width, height, config.backgrounds, _photos(config.background_dirs))
    ink = pick_ink_colour(rng, image, config.min_contrast)
    if rng.random() < config.outline_probability:
        _draw_outline_or_shadow(rng, image, mask, ink)
    composite(image, mask, ink)
    picture = apply_camera_effects(rng, image, config, blur_scale=height / 48)
    return {"image": picture, "label": text, "source": f"synthetic-words-seed{seed}:{index}"}


def render_scene_sample(index: int, seed: int = 0, config: SyntheticSceneConfig | None = None) -> dict:
    """The synthetic scene number ``index`` of ``seed``:
    ``{"image", "polygons", "texts", "ignore", "source"}`` with one exact quadrilateral per word."""
    config = config or SyntheticSceneConfig()
    rng = _sample_rng(seed, index, _SCENE_STREAM)
    width, height = (int(rng.integers(config.image_size[0], config.image_size[1] + 1)) for _ in range(2))
    image = render_background(rng, width, height, config.backgrounds, _photos(config.background_dirs))
    if config.pattern_probability > 0 and rng.random() < config.pattern_probability:
        draw_patterns(rng, image)
    draw_distractors(rng, image, int(rng.integers(config.distractors[0], config.distractors[1] + 1)))
    placed: list[Polygon] = []
    polygons, texts = [], []
    num_words = int(rng.integers(config.num_words[0], config.num_words[1] + 1))
    if config.negative_probability > 0 and rng.random() < config.negative_probability:
        num_words = 0
    for _ in range(num_words):
        text = config.text.sample(rng)
        placement = _place_word(rng, text, config, width, height, placed)
        if placement is None:
            continue
        mask, matrix, quad = placement
        _composite_word(rng, image, mask, matrix, quad, config.min_contrast)
        placed.append(Polygon(quad))
        polygons.append([float(value) for point in quad for value in point])
        texts.append(text)
    picture = apply_camera_effects(rng, image, config)
    return {
        "image": picture,
        "polygons": polygons,
        "texts": texts,
        "ignore": [False] * len(texts),
        "source": f"synthetic-scenes-seed{seed}:{index}",
    }


def synthetic_word_dataset(
    num_samples: int,
    seed: int = 0,
    config: SyntheticWordConfig | None = None,
    samples_per_shard: int = 1000,
    start: int = 0,
) -> IterableDataset:
    """A stream of ``num_samples`` synthetic word crops (`RECOGNITION_FEATURES`), sharded by index ranges;
    ``start`` begins the stream at that sample without rendering the ones before it (resuming a run)."""
    config = config or SyntheticWordConfig()
    return _stream(
        render_word_sample, RECOGNITION_FEATURES, num_samples, seed, config, samples_per_shard, start
    )


def synthetic_scene_dataset(
    num_samples: int,
    seed: int = 0,
    config: SyntheticSceneConfig | None = None,
    samples_per_shard: int = 64,
    start: int = 0,
) -> IterableDataset:
    """A stream of ``num_samples`` synthetic scenes (`DETECTION_FEATURES`), sharded by index ranges; ``start``
    as for `synthetic_word_dataset`."""
    config = config or SyntheticSceneConfig()
    return _stream(
        render_scene_sample, DETECTION_FEATURES, num_samples, seed, config, samples_per_shard, start
    )


def _stream(render, features, num_samples, seed, config, samples_per_shard, start) -> IterableDataset:
    return IterableDataset.from_generator(
        _generate,
        features=features,
        gen_kwargs={
            "shards": _index_ranges(num_samples, samples_per_shard, start),
            "seed": _check_seed(seed),
            "config": config,
            "render": render,
        },
    )


def _generate(shards: list[tuple[int, int]], seed: int, config, render) -> Iterator[dict]:
    for start, stop in shards:
        for index in range(start, stop):
            sample = render(index, seed, config)
            yield {**sample, "image": encode_png(sample["image"])}


def _render_styled_mask(
    rng: np.random.Generator,
    text: str,
    font_size: tuple[int, int],
    config: SyntheticWordConfig | SyntheticSceneConfig,
) -> np.ndarray:
    font = _pick_font(rng, _fonts(config.font_paths, config.font_dirs, config.text.charset))
    size = int(rng.integers(font_size[0], font_size[1] + 1))
    boldness = float(rng.uniform(-0.5, 1.0)) if rng.random() < config.bold_probability else 0.0
    slant = float(rng.uniform(-0.3, 0.3)) if rng.random() < config.slant_probability else 0.0
    mask = render_text_mask(text, font, size, boldness, slant)
    # Condensed and extended lettering.
    stretch = float(rng.uniform(0.8, 1.25))
    width = max(1, round(mask.shape[1] * stretch))
    return cv2.resize(
        mask, (width, mask.shape[0]), interpolation=cv2.INTER_AREA if stretch < 1 else cv2.INTER_CUBIC
    )


def _curve_baseline(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """Bend the word along an arc: each column moves up or down by a parabola across the word's width (a
    sign on a round surface, text set on a curve), by up to half the text height at the ends."""
    height, width = mask.shape
    sag = float(rng.uniform(-0.5, 0.5)) * height
    xs = np.arange(width, dtype=np.float32)
    bend = sag * ((2 * xs / max(width - 1, 1)) - 1) ** 2  # 0 at the centre, `sag` at both ends
    shift = bend - bend.min()  # how far each column moves down, >= 0
    rows = height + math.ceil(float(shift.max()))
    map_x = np.broadcast_to(xs, (rows, width)).copy()
    map_y = np.arange(rows, dtype=np.float32)[:, None] - shift[None, :]
    return cv2.remap(mask, map_x, map_y, cv2.INTER_LINEAR, borderValue=0)


def _place_in_crop(rng: np.random.Generator, mask: np.ndarray, config: SyntheticWordConfig) -> np.ndarray:
    """Warp the word into a crop: padding, rotation and optional perspective, like a detector's box."""
    height, width = mask.shape
    pad_x, pad_y = rng.uniform(0.05, 0.35) * height, rng.uniform(0.05, 0.35) * height
    source = np.array(
        [
            [-pad_x, -pad_y],
            [width + pad_x, -pad_y],
            [width + pad_x, height + pad_y],
            [-pad_x, height + pad_y],
        ],
        np.float32,
    )
    angle = math.radians(float(rng.uniform(-config.max_rotation, config.max_rotation)))
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], np.float32)
    target = source @ rotation.T
    if rng.random() < config.perspective_probability:
        target = target + rng.uniform(-0.12, 0.12, size=(4, 2)).astype(np.float32) * height
    target -= target.min(axis=0)
    crop_width, crop_height = (math.ceil(value) for value in target.max(axis=0))
    homography = cv2.getPerspectiveTransform(source, target)
    return cv2.warpPerspective(
        mask, homography, (max(crop_width, 1), max(crop_height, 1)), flags=cv2.INTER_LINEAR
    )


def _draw_outline_or_shadow(
    rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, ink: np.ndarray
) -> None:
    decoration = pick_ink_colour(rng, ink[None, None, :], 80.0)
    size = max(1, round(mask.shape[0] / 20))
    if rng.random() < 0.5:
        outline = cv2.dilate(mask, np.ones((2 * size + 1, 2 * size + 1), np.uint8))
        composite(image, outline, decoration)
    else:
        shift = np.float32([[1, 0, 2 * size], [0, 1, 2 * size]])
        composite(image, cv2.warpAffine(mask, shift, mask.shape[::-1]), decoration)


def _place_word(
    rng: np.random.Generator,
    text: str,
    config: SyntheticSceneConfig,
    width: int,
    height: int,
    placed: list[Polygon],
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Find a free spot for ``text``: returns its mask, the 2x3 mask-to-image map and the quad, or None."""
    low, high = config.font_size
    for attempt in range(12):
        if attempt % 4 == 0:
            # After every four failed spots the word is drawn again with a smaller largest size (x0.6): long
            # words at large sizes do not fit small images.
            mask = _render_styled_mask(rng, text, (low, high), config)
            high = max(low, int(high * 0.6))
        mask_height, mask_width = mask.shape
        horizontal = rng.random() < config.horizontal_probability
        angle = 0.0 if horizontal else math.radians(float(rng.uniform(-config.max_angle, config.max_angle)))
        cos, sin = math.cos(angle), math.sin(angle)
        half_extent_x = (abs(cos) * mask_width + abs(sin) * mask_height) / 2
        half_extent_y = (abs(sin) * mask_width + abs(cos) * mask_height) / 2
        if 2 * half_extent_x >= width - 2 or 2 * half_extent_y >= height - 2:
            continue
        centre_x = float(rng.uniform(half_extent_x + 1, width - half_extent_x - 1))
        centre_y = float(rng.uniform(half_extent_y + 1, height - half_extent_y - 1))
        # Continuous coordinates: rotate about the mask's centre, then move that centre to (centre_x, centre_y).
        matrix = np.array(
            [
                [cos, -sin, centre_x - cos * mask_width / 2 + sin * mask_height / 2],
                [sin, cos, centre_y - sin * mask_width / 2 - cos * mask_height / 2],
            ]
        )
        frame = np.array([[0, 0], [mask_width, 0], [mask_width, mask_height], [0, mask_height]], np.float64)
        quad = frame @ matrix[:, :2].T + matrix[:, 2]
        polygon = Polygon(quad)
        if any(polygon.distance(other) < config.word_gap for other in placed):
            continue
        return mask, matrix, quad
    return None


def _composite_word(
    rng: np.random.Generator,
    image: np.ndarray,
    mask: np.ndarray,
    matrix: np.ndarray,
    quad: np.ndarray,
    min_contrast: float,
) -> None:
    height, width = image.shape[:2]
    left, top = (max(0, math.floor(value) - 1) for value in quad.min(axis=0))
    right = min(width, math.ceil(quad[:, 0].max()) + 1)
    bottom = min(height, math.ceil(quad[:, 1].max()) + 1)
    # OpenCV maps pixel centres (index coordinates); the continuous map shifts by half a pixel on both sides.
    index_matrix = matrix.copy()
    index_matrix[:, 2] += matrix[:, :2] @ np.array([0.5, 0.5]) - 0.5
    index_matrix[:, 2] -= (left, top)
    alpha = cv2.warpAffine(mask, index_matrix, (right - left, bottom - top), flags=cv2.INTER_LINEAR)
    region = image[top:bottom, left:right]
    ink = pick_ink_colour(rng, region[alpha > 0] if (alpha > 0).any() else region, min_contrast)
    composite(region, alpha, ink)


def _pick_font(rng: np.random.Generator, fonts: tuple[Font, ...]) -> Font:
    # At least half of the words use a TrueType file (Pillow's bundled font or font files), the rest OpenCV's
    # faces, so that the single bundled Pillow face is not drowned out by OpenCV's several; with many font
    # files every font is equally likely.
    truetype = [font for font in fonts if font.opencv_face is None]
    opencv = [font for font in fonts if font.opencv_face is not None]
    truetype_share = max(0.5, len(truetype) / len(fonts))
    family = truetype if truetype and (not opencv or rng.random() < truetype_share) else opencv
    return family[int(rng.integers(len(family)))]


@functools.lru_cache(maxsize=8)
def _fonts(font_paths: tuple[str, ...], font_dirs: tuple[str, ...], charset: str) -> tuple[Font, ...]:
    found = ()
    if font_dirs:
        searched = find_font_files(None if tuple(font_dirs) == ("system",) else font_dirs)
        found = fonts_covering(charset, searched)
        if not found:
            raise FileNotFoundError(
                f"no font under {', '.join(font_dirs)} can draw every character of {charset!r}"
            )
    # The built-in fonts too must draw the charset (Pillow's bundled one has no umlauts).
    return available_fonts((*font_paths, *found), charset=charset)


def _photos(background_dirs: tuple[str, ...]) -> tuple[str, ...]:
    return find_photo_files(background_dirs) if background_dirs else ()


def _sample_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, index])


def _index_ranges(num_samples: int, samples_per_shard: int, start: int = 0) -> list[tuple[int, int]]:
    """Shards of ``samples_per_shard`` consecutive indices; with ``start``, the indices before it are left out
    (the first shard is cut), so one stream over the shards continues exactly at sample ``start``."""
    if num_samples < 0 or samples_per_shard < 1 or start < 0:
        raise ValueError(
            f"need num_samples >= 0, samples_per_shard >= 1 and start >= 0, got {num_samples}, "
            f"{samples_per_shard} and {start}"
        )
    return [
        (max(first, start), min(first + samples_per_shard, num_samples))
        for first in range(0, num_samples, samples_per_shard)
        if first + samples_per_shard > start
    ]


def _check_seed(seed: int) -> int:
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return seed


def _check_range(name: str, value: tuple[int, int], minimum: int) -> None:
    if len(value) != 2 or not minimum <= value[0] <= value[1]:
        raise ValueError(f"{name} must be a (low, high) pair with {minimum} <= low <= high, got {value}")
