"""Scene augmentation of the official TCM / DBNet training pipeline, with the polygons moved exactly as the image.

In order: colour jitter (brightness +-32/255, saturation in [0.5, 1.5]), horizontal flip with probability 0.5,
rotation by an angle in [-10, 10] degrees about the centre (same canvas size, as imgaug's Affine), rescaling by
one factor in [0.5, 3.0], then an EAST-style random crop: the crop's borders are drawn from rows and columns that
no text crosses, so words are kept whole or left out, never cut; the crop is scaled to fit `crop_size` keeping
its aspect ratio and padded at the bottom/right (mmocr's `EastRandomCrop`).

Every random choice comes from one numpy generator seeded by the caller, so the result is a pure function of
(image, polygons, seed): the data loader's order and workers never change it, which exact resumption needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from scenetext.pipelines.image_loading import load_rgb_image
from scenetext.processors.tcm.db_geometry_tcm import ignore_flags


@dataclass(frozen=True)
class AugmentedScene:
    """An augmented scene: RGB uint8 `image` (crop_height, crop_width, 3); `polygons` as (N, 2) float arrays in
    its pixels; `ignore` flags of the polygons kept (those the crop left out are dropped)."""

    image: np.ndarray
    polygons: list[np.ndarray]
    ignore: list[bool]


@dataclass(frozen=True)
class SceneAugment:
    """The official TCM train augmentation; `__call__(image, polygons, ignore, seed)`.

    Args:
        crop_size: (height, width) of the output (640 x 640 in the official recipe).
        brightness: largest brightness change, as a fraction of the 0-255 range.
        saturation: saturation factors are drawn from [1 - saturation, 1 + saturation].
        flip_probability: chance of a horizontal flip.
        max_rotation: rotation angles are drawn from [-max_rotation, max_rotation] degrees.
        scale_range: the rescaling factor range.
        crop_tries: attempts at a crop holding at least one whole text region before falling back to the
            whole image.
        min_crop_side_ratio: a crop side is at least this fraction of the image side.
    """

    crop_size: tuple[int, int] = (640, 640)
    brightness: float = 32 / 255
    saturation: float = 0.5
    flip_probability: float = 0.5
    max_rotation: float = 10.0
    scale_range: tuple[float, float] = (0.5, 3.0)
    crop_tries: int = 10
    min_crop_side_ratio: float = 0.1

    def __post_init__(self) -> None:
        if len(self.crop_size) != 2 or min(self.crop_size) < 1:
            raise ValueError(f"crop_size must be (height, width) of positive ints, got {self.crop_size}")
        low, high = self.scale_range
        if not 0 < low <= high:
            raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got {self.scale_range}")
        if not 0 <= self.flip_probability <= 1:
            raise ValueError(f"flip_probability must be in [0, 1], got {self.flip_probability}")

    def __call__(
        self, image: Image.Image | np.ndarray, polygons: list, ignore: list[bool] | None, seed: int
    ) -> AugmentedScene:
        rng = np.random.default_rng(seed)
        array = np.asarray(load_rgb_image(image, apply_exif_orientation=False))
        points = [np.asarray(polygon, dtype=np.float64).reshape(-1, 2) for polygon in polygons]
        flags = ignore_flags(ignore, len(points))

        array = self._jitter_colour(rng, array)
        if rng.random() < self.flip_probability:
            array = np.ascontiguousarray(array[:, ::-1])
            points = [np.column_stack([array.shape[1] - p[:, 0], p[:, 1]]) for p in points]
        array, points = self._rotate(rng, array, points)
        array, points = self._rescale(rng, array, points)
        return self._crop(rng, array, points, flags)

    def _jitter_colour(self, rng: np.random.Generator, array: np.ndarray) -> np.ndarray:
        brightness = 1 + rng.uniform(-self.brightness, self.brightness)
        saturation = 1 + rng.uniform(-self.saturation, self.saturation)
        pixels = array.astype(np.float32) * brightness
        gray = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        pixels = gray[..., None] + saturation * (pixels - gray[..., None])
        return np.clip(pixels + 0.5, 0, 255).astype(np.uint8)

    def _rotate(
        self, rng: np.random.Generator, array: np.ndarray, points: list[np.ndarray]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        angle = rng.uniform(-self.max_rotation, self.max_rotation)
        height, width = array.shape[:2]
        # Pixel centres sit at integer coordinates in OpenCV's warp, so the image centre is (w-1)/2, (h-1)/2
        # there; polygons use corner-based coordinates, hence the half-pixel shifts around the same matrix.
        matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), angle, 1.0)
        rotated = cv2.warpAffine(array, matrix, (width, height), flags=cv2.INTER_LINEAR)
        moved = [(p - 0.5) @ matrix[:, :2].T + matrix[:, 2] + 0.5 for p in points]
        return rotated, moved

    def _rescale(
        self, rng: np.random.Generator, array: np.ndarray, points: list[np.ndarray]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        factor = rng.uniform(*self.scale_range)
        height, width = array.shape[:2]
        new_width, new_height = max(1, round(width * factor)), max(1, round(height * factor))
        resized = cv2.resize(array, (new_width, new_height), interpolation=cv2.INTER_LINEAR)
        scale = np.array([new_width / width, new_height / height])
        return resized, [p * scale for p in points]

    def _crop(
        self, rng: np.random.Generator, array: np.ndarray, points: list[np.ndarray], flags: list[bool]
    ) -> AugmentedScene:
        height, width = array.shape[:2]
        x0, y0, x1, y1 = self._crop_window(rng, width, height, points, flags)
        window = array[y0:y1, x0:x1]
        target_height, target_width = self.crop_size
        scale = min(target_height / window.shape[0], target_width / window.shape[1])
        new_width = max(1, min(target_width, round(window.shape[1] * scale)))
        new_height = max(1, min(target_height, round(window.shape[0] * scale)))
        canvas = np.zeros((target_height, target_width, 3), dtype=np.uint8)
        canvas[:new_height, :new_width] = cv2.resize(
            window, (new_width, new_height), interpolation=cv2.INTER_LINEAR
        )
        factors = np.array([new_width / window.shape[1], new_height / window.shape[0]])
        kept, kept_flags = [], []
        for polygon, flag in zip(points, flags, strict=True):
            if _inside(polygon, x0, y0, x1, y1, width, height):
                kept.append((polygon - [x0, y0]) * factors)
                kept_flags.append(flag)
        return AugmentedScene(canvas, kept, kept_flags)

    def _crop_window(
        self,
        rng: np.random.Generator,
        width: int,
        height: int,
        points: list[np.ndarray],
        flags: list[bool],
    ) -> tuple[int, int, int, int]:
        """A window whose borders cross no text and that holds a whole cared-for region (the whole image when
        `crop_tries` random windows fail)."""
        free_x = np.ones(width, dtype=bool)
        free_y = np.ones(height, dtype=bool)
        for polygon in points:
            left, top = np.floor(polygon.min(axis=0)).astype(int)
            right, bottom = np.ceil(polygon.max(axis=0)).astype(int)
            free_x[max(left, 0) : max(min(right, width), 0)] = False
            free_y[max(top, 0) : max(min(bottom, height), 0)] = False
        xs, ys = np.flatnonzero(free_x), np.flatnonzero(free_y)
        # Borders may also sit on the image edges.
        xs = np.unique(np.concatenate([xs, [0, width]]))
        ys = np.unique(np.concatenate([ys, [0, height]]))
        cared = [p for p, flag in zip(points, flags, strict=True) if not flag]
        for _ in range(self.crop_tries):
            x0, x1 = np.sort(rng.choice(xs, size=2))
            y0, y1 = np.sort(rng.choice(ys, size=2))
            if x1 - x0 < self.min_crop_side_ratio * width or y1 - y0 < self.min_crop_side_ratio * height:
                continue
            if not cared or any(_inside(p, x0, y0, x1, y1, width, height) for p in cared):
                return int(x0), int(y0), int(x1), int(y1)
        return 0, 0, width, height


def _inside(polygon: np.ndarray, x0: float, y0: float, x1: float, y1: float, width: int, height: int) -> bool:
    """Whether the polygon's bounding box, clipped to the image, is non-empty and lies in the window. Rotation
    can push part of a region off the image; that part is clipped when the targets are drawn."""
    left, top = np.maximum(polygon.min(axis=0), 0)
    right, bottom = np.minimum(polygon.max(axis=0), [width, height])
    if right <= left or bottom <= top:
        return False
    return left >= x0 and top >= y0 and right <= x1 and bottom <= y1
