"""Image processor of the TCM text detector: keep-ratio resizing, DB normalisation, padding to a multiple of 32,
training targets and post-processing back to the original image's pixels for the DBNet, PAN and FCENet heads."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image, ImageOps
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature

from .db_geometry_tcm import (
    as_polygon,
    check_box_type,
    extract_text_boundaries,
    ignore_flags,
    make_db_targets,
)
from .fce_geometry_tcm import (
    FCE_LEVEL_RANGES,
    FCE_POST_PROCESSING,
    FCE_STRIDES,
    extract_fce_boundaries,
    make_fce_targets,
)
from .pan_geometry_tcm import PAN_POST_PROCESSING, PAN_STRIDE, extract_pan_boundaries, make_pan_targets

try:
    import cv2
except ImportError:
    cv2 = None

# mmocr 0.4's `img_norm_cfg_r50dcnv2`, used by every TCM config: RGB statistics in 0-255 space (not CLIP's).
DB_MEAN = (122.67891434, 116.66876762, 104.00698793)
DB_STD = (58.395, 57.12, 57.375)
# TCM's PAN and FCENet pipelines normalise with mmocr's ImageNet mean instead (same std).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
HEAD_IMAGE_MEANS = {"dbnet": DB_MEAN, "pan": IMAGENET_MEAN, "fcenet": IMAGENET_MEAN}

# Official post-processing settings, by dataset (TCM's released configs; "mmocr" = mmocr 0.4 DBPostprocessor
# defaults). `threshold` binarises the probability map, `min_score` is the minimum mean probability of a
# region, `min_size` the minimum short side of a quad, `approx_ratio` the Douglas-Peucker tolerance as a
# fraction of the contour length (0: no simplification).
POST_PROCESSING_PRESETS: dict[str, dict[str, Any]] = {
    "mmocr": {
        "box_type": "quad",
        "threshold": 0.3,
        "min_score": 0.3,
        "min_size": 5,
        "unclip_ratio": 1.5,
        "max_candidates": 3000,
        "approx_ratio": 0.01,
    },
    "icdar2015": {
        "box_type": "quad",
        "threshold": 0.28,
        "min_score": 0.2,
        "min_size": 2,
        "unclip_ratio": 1.6,
        "max_candidates": 3000,
        "approx_ratio": 0.001,
    },
    "td500": {
        "box_type": "quad",
        "threshold": 0.08,
        "min_score": 0.17,
        "min_size": 3,
        "unclip_ratio": 1.9,
        "max_candidates": 1000,
        "approx_ratio": 0.0,
    },
    "ctw1500": {
        "box_type": "poly",
        "threshold": 0.08,
        "min_score": 0.3,
        "min_size": 3,
        "unclip_ratio": 2.0,
        "max_candidates": 3000,
        "approx_ratio": 0.0001,
    },
    "totaltext": {
        "box_type": "poly",
        "threshold": 0.347,
        "min_score": 0.3,
        "min_size": 5,
        "unclip_ratio": 1.95,
        "max_candidates": 3000,
        "approx_ratio": 0.004,
    },
}

# The box type of PAN's post-processing per dataset preset (TCM's PAN configs: quads on ICDAR2015, polygons on
# CTW1500); the other PAN settings are mmocr's defaults in every released configuration.
PAN_BOX_TYPES = {
    "mmocr": "poly",
    "icdar2015": "quad",
    "td500": "quad",
    "ctw1500": "poly",
    "totaltext": "poly",
}

# Target keys of each head, in the order `labels` holds them (the model's `HEAD_LABEL_KEYS`).
TARGET_KEYS = {
    "dbnet": ("shrink_map", "shrink_mask", "threshold_map", "threshold_mask"),
    "pan": ("text_kernel", "shrunk_kernel", "effective_mask"),
    "fcenet": (*(f"fce_maps_{stride}" for stride in FCE_STRIDES), "matching_region"),
}
# Downsampling of each FCENet target relative to the input (the others are at the input resolution).
_TARGET_STRIDES = {**{f"fce_maps_{stride}": stride for stride in FCE_STRIDES}, "matching_region": 32}

# Official test scales (mmdet keep-ratio `img_scale` of the test pipelines): the short side goes to
# `shortest_edge` unless that would make the long side exceed `longest_edge`.
TEST_SIZES: dict[str, dict[str, int]] = {
    "mmocr": {"shortest_edge": 1024, "longest_edge": 4068},
    "icdar2015": {"shortest_edge": 1024, "longest_edge": 4068},
    "td500": {"shortest_edge": 736, "longest_edge": 4068},
    "ctw1500": {"shortest_edge": 1024, "longest_edge": 4068},
    "totaltext": {"shortest_edge": 800, "longest_edge": 2944},
}

# The forms `size` takes (transformers' size-dict keys), each a resize rule of `get_resized_size`:
# - shortest_edge + longest_edge: mmdet's keep-ratio rule, the official TCM test scales above;
# - longest_edge alone: keep the ratio, the long side to that length (a photo's words keep their relative size
#   whatever its shape, as for a phone picture read at a fixed pixel budget);
# - height + width: a fixed size, ratio not kept (MhLiao/DB's ICDAR 2015 test resize to 736x1280).
SIZE_FORMS = (("shortest_edge", "longest_edge"), ("longest_edge",), ("height", "width"))


def check_size(size: Mapping[str, int]) -> dict[str, int]:
    """`size` as a plain dict after checking it has one of `SIZE_FORMS` with positive integer sides."""
    if not isinstance(size, Mapping) or tuple(sorted(size)) not in {
        tuple(sorted(form)) for form in SIZE_FORMS
    }:
        raise ValueError(
            f"size must be one of {[dict.fromkeys(form, 'int') for form in SIZE_FORMS]}, got {size!r}"
        )
    if any(isinstance(side, bool) or not isinstance(side, int) or side < 1 for side in size.values()):
        raise ValueError(f"size sides must be integers >= 1, got {dict(size)}")
    return dict(size)


def parse_size(spec: str) -> dict[str, int]:
    """A `size` dict from its short text form (the `--detector-size` of `scenetext ocr`):

    - a preset name of `TEST_SIZES` (`icdar2015`: short side 1024, long side at most 4068);
    - `N`: the long side to N pixels, ratio kept (`{"longest_edge": N}`);
    - `S:L`: the short side to S unless the long side would pass L (`{"shortest_edge": S, "longest_edge": L}`);
    - `HxW`: exactly H rows and W columns (`{"height": H, "width": W}`), ratio not kept.
    """
    text = spec.strip().lower()
    if text in TEST_SIZES:
        return dict(TEST_SIZES[text])
    keys: tuple[str, ...] = ("longest_edge",)
    if ":" in text:
        keys = ("shortest_edge", "longest_edge")
    elif "x" in text:
        keys = ("height", "width")
    parts = text.replace("x", ":").split(":")
    if len(parts) != len(keys) or not all(part.strip().isdigit() for part in parts):
        raise ValueError(
            f"unknown detector size {spec!r}: expected a preset ({', '.join(sorted(TEST_SIZES))}), N (long side), "
            "S:L (short side, long side at most) or HxW (fixed)"
        )
    return check_size(dict(zip(keys, (int(part) for part in parts), strict=True)))


# The test scales of TCM's PAN and FCENet pipelines where they differ from DBNet's (the MultiScaleFlipAug
# `img_scale`, which is what mmdet 2.x resizes to).
HEAD_TEST_SIZES: dict[str, dict[str, dict[str, int]]] = {
    "pan": {
        "icdar2015": {"shortest_edge": 736, "longest_edge": 1333},
        "ctw1500": {"shortest_edge": 640, "longest_edge": 3000},
    },
    "fcenet": {
        "icdar2015": {"shortest_edge": 2260, "longest_edge": 2260},
        "ctw1500": {"shortest_edge": 736, "longest_edge": 1080},
        "totaltext": {"shortest_edge": 960, "longest_edge": 1280},
    },
}


def official_test_size(preset: str, head_type: str = "dbnet") -> dict[str, int]:
    """The official test scale of a dataset preset for a head (DBNet's where the head's configs give none)."""
    if preset not in TEST_SIZES:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(TEST_SIZES)}")
    return dict(HEAD_TEST_SIZES.get(head_type, {}).get(preset, TEST_SIZES[preset]))


# PIL modes holding more than 8 bits per pixel; Pillow's own RGB conversion would clip them at 255. Pillow
# opens 16-bit PNG/TIFF as "I;16*" (older versions as "I").
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _available_cpus() -> int:
    """CPUs this process may run on (its affinity where the OS reports it, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _require_cv2() -> None:
    if cv2 is None:
        raise ImportError("TcmImageProcessor resizes with OpenCV: pip install opencv-python-headless")


def _scale_to_uint8(array: np.ndarray, name: str) -> np.ndarray:
    """8-bit values from an integer, boolean or float array (floats must lie in [0, 1])."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint16:
        return np.round(array / 257.0).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError(f"{name}: float pixel values must be finite")
        if array.size and (array.min() < 0 or array.max() > 1):
            raise ValueError(
                f"{name}: float pixel values must lie in [0, 1], got [{array.min():g}, {array.max():g}]; "
                "pass uint8 for 0-255 data"
            )
        return np.round(array * 255).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ValueError(
                f"{name}: {array.dtype} pixel values must lie in [0, 255], got [{array.min()}, {array.max()}]; "
                "pass uint16 for 16-bit data"
            )
        return array.astype(np.uint8)
    raise TypeError(f"{name}: unsupported pixel dtype {array.dtype}")


def _is_channels_first(shape: tuple[int, ...], prefer_channels_first: bool) -> bool:
    """Whether a 3-D image array stores channels first; torch tensors prefer (C, H, W), numpy (H, W, C)."""
    first, last = shape[0] in (1, 3, 4), shape[-1] in (1, 3, 4)
    return first and (prefer_channels_first or not last)


def _array_to_rgb(array: np.ndarray, prefer_channels_first: bool, name: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a (H, W) or channels-first/last array with 1, 3 or 4 (RGBA) channels."""
    if array.ndim == 3 and _is_channels_first(array.shape, prefer_channels_first):
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"{name}: expected (H, W), (H, W, C) or (C, H, W) with C in 1, 3, 4; got {array.shape}"
        )
    array = _scale_to_uint8(array, name)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    # Alpha is dropped, as OpenCV's imread(IMREAD_COLOR) does in the official pipeline.
    return np.ascontiguousarray(array[:, :, :3])


def _image_size(image: object, name: str) -> tuple[int, int]:
    """(height, width) of an input image without decoding or converting it."""
    if isinstance(image, Image.Image):
        return image.height, image.width
    if isinstance(image, np.ndarray | torch.Tensor):
        shape = tuple(image.shape)
        if len(shape) == 2:
            return shape[0], shape[1]
        if len(shape) == 3:
            channels_first = _is_channels_first(shape, isinstance(image, torch.Tensor))
            return (shape[1], shape[2]) if channels_first else (shape[0], shape[1])
        raise ValueError(f"{name}: expected a 2-D or 3-D array, got shape {shape}")
    raise TypeError(f"{name}: expected a PIL image, numpy array or torch tensor, got {type(image).__name__}")


def to_rgb_array(image: object, apply_exif_orientation: bool = True, name: str = "image") -> np.ndarray:
    """Any supported input as an (H, W, 3) uint8 RGB array.

    PIL images of any mode (16-bit modes scaled from 0-65535, alpha dropped, EXIF orientation applied unless
    `apply_exif_orientation=False`); numpy arrays (H, W), (H, W, C) or (C, H, W); torch tensors (C, H, W) or
    (H, W). uint8/uint16/bool values keep their range, floats must lie in [0, 1].
    """
    if isinstance(image, Image.Image):
        if apply_exif_orientation:
            image = ImageOps.exif_transpose(image)
        if image.mode in _SIXTEEN_BIT_MODES:
            values = np.asarray(image).astype(np.int64)
            return _array_to_rgb(np.round(np.clip(values, 0, 65535) / 257.0).astype(np.uint8), False, name)
        if image.mode != "RGB":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB").convert("RGB")
        return np.asarray(image)
    if isinstance(image, torch.Tensor):
        return _array_to_rgb(image.detach().cpu().numpy(), True, name)
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image, False, name)
    raise TypeError(f"{name}: expected a PIL image, numpy array or torch tensor, got {type(image).__name__}")


class TcmImageProcessor(BaseImageProcessor):
    r"""Pre- and post-processing of TCM / DBNet text detection.

    Calling it resizes each image (`size`, bilinear as in OpenCV; by default keeping its aspect ratio: the
    short side to `shortest_edge` unless the long side would exceed `longest_edge` -- mmdet's keep-ratio rule),
    normalises RGB in 0-255 space with the DB mean/std, and pads at the bottom/right with zeros (after normalisation, as
    mmdet does) to a common size: the largest height and width of the batch rounded up to a multiple of
    `size_divisor`. The official pipeline pads every image alone; given the original sizes, post-processing
    therefore only looks at each image's own padded area, so batching does not change results.

    Args:
        do_resize: resize to `size` (off for images already at training size, e.g. 640x640 crops).
        size: `{"shortest_edge": int, "longest_edge": int}` (the official test scales, `TEST_SIZES`),
            `{"longest_edge": int}` (ratio kept, long side to that length) or `{"height": int, "width": int}`
            (fixed size); also a call-time argument. `parse_size` reads the short text forms.
        do_upscale: let a keep-ratio `size` enlarge images (the official test scales do). Off, images larger
            than `size` are shrunk to it and smaller ones read as they are, as PaddleOCR's `limit_type="max"`
            does: the text of a small picture keeps the pixel size it has, which is what a detector trained at
            that size reads, instead of growing several times larger.
        size_divisor: padded sizes are multiples of it (the network's stride, 32).
        do_normalize, image_mean, image_std: normalisation in 0-255 space; `image_mean` defaults to the mean
            the official configs of `head_type` use (`HEAD_IMAGE_MEANS`).
        apply_exif_orientation: rotate PIL images by their EXIF orientation. The official data loader ignores
            it (`color_ignore_orientation`) because the ICDAR/TotalText annotations refer to the stored pixels,
            so turn it off when evaluating on those datasets.
        max_image_pixels: larger inputs are rejected with a ValueError before any decoding work.
        shrink_ratio, threshold_min, threshold_max, min_text_size: DBNet target settings.
        post_processing: a preset name (`POST_PROCESSING_PRESETS`) or a dict of `post_process_text_detection`
            settings; what the DB head uses when nothing is passed at call time.
        head_type: the detector's head (`TcmConfig.head_type`): which training targets `prepare_targets` makes.
            Post-processing follows the maps the outputs hold, whatever this says.
        pan_post_processing, fce_post_processing: settings of the PAN and FCENet post-processing (partial dicts
            over `PAN_POST_PROCESSING` / `FCE_POST_PROCESSING`, mmocr's defaults and TCM's FCENet values).
        fce_level_ranges: the text-size range (longer box side / image height) each FCENet level learns:
            ICDAR2015's by default; the CTW1500 and Total-Text configs use ((0, 0.25), (0.2, 0.65), (0.55, 1)).
    """

    model_input_names: ClassVar[list[str]] = ["pixel_values"]

    def __init__(
        self,
        do_resize: bool = True,
        size: Mapping[str, int] | None = None,
        do_upscale: bool = True,
        size_divisor: int = 32,
        do_normalize: bool = True,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] = DB_STD,
        apply_exif_orientation: bool = True,
        max_image_pixels: int = 8192 * 8192,
        shrink_ratio: float = 0.4,
        threshold_min: float = 0.3,
        threshold_max: float = 0.7,
        min_text_size: float = 8,
        post_processing: str | Mapping[str, Any] = "icdar2015",
        head_type: str = "dbnet",
        pan_post_processing: Mapping[str, Any] | None = None,
        fce_post_processing: Mapping[str, Any] | None = None,
        fce_level_ranges: Sequence[Sequence[float]] = FCE_LEVEL_RANGES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if head_type not in TARGET_KEYS:
            raise ValueError(f"head_type must be one of {sorted(TARGET_KEYS)}, got {head_type!r}")
        image_mean = HEAD_IMAGE_MEANS[head_type] if image_mean is None else image_mean
        size = check_size(official_test_size("icdar2015", head_type) if size is None else size)
        if size_divisor < 1:
            raise ValueError(f"size_divisor must be >= 1, got {size_divisor}")
        if len(image_mean) != 3 or len(image_std) != 3 or min(image_std) <= 0:
            raise ValueError(f"image_mean/image_std need 3 values (std > 0), got {image_mean}, {image_std}")
        self.do_resize = do_resize
        self.size = size
        self.do_upscale = do_upscale
        self.size_divisor = size_divisor
        self.do_normalize = do_normalize
        self.image_mean = [float(value) for value in image_mean]
        self.image_std = [float(value) for value in image_std]
        self.apply_exif_orientation = apply_exif_orientation
        self.max_image_pixels = max_image_pixels
        self.shrink_ratio = shrink_ratio
        self.threshold_min = threshold_min
        self.threshold_max = threshold_max
        self.min_text_size = min_text_size
        self.post_processing = self._resolve_post_processing(post_processing)
        self.head_type = head_type
        self.pan_post_processing = self._head_settings(PAN_POST_PROCESSING, pan_post_processing, "pan")
        self.fce_post_processing = self._head_settings(FCE_POST_PROCESSING, fce_post_processing, "fce")
        if len(fce_level_ranges) != len(FCE_STRIDES) or any(len(pair) != 2 for pair in fce_level_ranges):
            raise ValueError(
                f"fce_level_ranges needs one (low, high) pair per level {FCE_STRIDES}, got {fce_level_ranges}"
            )
        self.fce_level_ranges = [[float(low), float(high)] for low, high in fce_level_ranges]

    @property
    def _target_keys(self) -> tuple[str, ...]:
        return TARGET_KEYS[self.head_type]

    @staticmethod
    def _head_settings(
        defaults: Mapping[str, Any], settings: Mapping[str, Any] | None, name: str
    ) -> dict[str, Any]:
        unknown = set(settings or {}) - set(defaults)
        if unknown:
            raise ValueError(
                f"unknown {name}_post_processing settings {sorted(unknown)}; expected {sorted(defaults)}"
            )
        return {**defaults, **(settings or {})}

    @classmethod
    def from_preset(cls, name: str, **kwargs: Any) -> TcmImageProcessor:
        """The official test scale and post-processing of a dataset: icdar2015, td500, ctw1500, totaltext,
        mmocr (the test scale of the `head_type` keyword's configs, DBNet's by default). Keyword arguments
        override single settings."""
        kwargs.setdefault("size", official_test_size(name, kwargs.get("head_type", "dbnet")))
        kwargs.setdefault("post_processing", name)
        return cls(**kwargs)

    @staticmethod
    def _resolve_post_processing(setting: str | Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
        """Full post-processing settings from a preset name or a (partial) dict, with call-time overrides."""
        if isinstance(setting, str):
            if setting not in POST_PROCESSING_PRESETS:
                raise ValueError(
                    f"unknown post-processing preset {setting!r}; choose one of {sorted(POST_PROCESSING_PRESETS)}"
                )
            setting = POST_PROCESSING_PRESETS[setting]
        unknown = set(setting) - set(POST_PROCESSING_PRESETS["mmocr"])
        if unknown:
            raise ValueError(
                f"unknown post-processing settings {sorted(unknown)}; "
                f"expected {sorted(POST_PROCESSING_PRESETS['mmocr'])}"
            )
        resolved = {**POST_PROCESSING_PRESETS["mmocr"], **setting}
        resolved.update({key: value for key, value in overrides.items() if value is not None})
        check_box_type(resolved["box_type"])
        return resolved

    # --------------------------------------------------------------------------------------------------------
    # Pre-processing
    # --------------------------------------------------------------------------------------------------------

    def get_resized_size(
        self, height: int, width: int, size: Mapping[str, int] | None = None
    ) -> tuple[int, int]:
        """(height, width) after the resize `size` (default the processor's) describes: a fixed size as given;
        keep-ratio as mmcv's `rescale_size` (scale factor min(longest / long side, shortest / short side), or
        longest / long side alone, sides rounded half up; never above 1 without `do_upscale`), at least 1 px."""
        size = self.size if size is None else size
        if "height" in size:
            return size["height"], size["width"]
        scale = size["longest_edge"] / max(height, width)
        if "shortest_edge" in size:
            scale = min(scale, size["shortest_edge"] / min(height, width))
        if not self.do_upscale:
            scale = min(scale, 1.0)
        return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))

    def _check_size(self, image: object, name: str) -> None:
        height, width = _image_size(image, name)
        if height < 1 or width < 1:
            raise ValueError(f"{name} is empty ({height}x{width})")
        if height * width > self.max_image_pixels:
            raise ValueError(
                f"{name} has {height}x{width} = {height * width:,} pixels, above max_image_pixels="
                f"{self.max_image_pixels:,}; downscale it first or raise the processor's max_image_pixels"
            )

    def __call__(
        self,
        images: object,
        polygons: Sequence[Sequence[object]] | None = None,
        ignore: Sequence[Sequence[bool]] | None = None,
        do_resize: bool | None = None,
        size: Mapping[str, int] | None = None,
        apply_exif_orientation: bool | None = None,
        return_tensors: str | None = "pt",
        **kwargs: Any,
    ) -> BatchFeature:
        """Prepare one image, a list of images, or a batch array/tensor (B, ...) for the detector.

        Returns a BatchFeature with `pixel_values` (B, 3, H, W) float32, `original_sizes` and `resized_sizes`
        (B, 2) int64 as (height, width). With `polygons` (per image, a list of polygons in original-image
        pixels) it also returns `labels`: the DB targets of `prepare_targets` for the resized images, as
        (B, H, W) tensors padded with zeros (padding is masked out). `ignore` gives per-polygon don't-care
        flags ('###'). Note that `BatchFeature.to(device)` does not move the nested `labels` dict.
        """
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        if return_tensors not in ("pt", None):
            raise ValueError(f"only return_tensors='pt' is supported, got {return_tensors!r}")
        do_resize = self.do_resize if do_resize is None else do_resize
        size = self.size if size is None else check_size(size)
        exif = self.apply_exif_orientation if apply_exif_orientation is None else apply_exif_orientation
        batch = list(images) if isinstance(images, list | tuple) else [images]
        if isinstance(images, torch.Tensor | np.ndarray) and images.ndim == 4:
            batch = list(images)
        if not batch:
            raise ValueError("images is empty")
        if polygons is not None and len(polygons) != len(batch):
            raise ValueError(f"polygons has {len(polygons)} entries for {len(batch)} images")
        if ignore is not None and (polygons is None or len(ignore) != len(batch)):
            raise ValueError("ignore needs polygons and one list of flags per image")
        _require_cv2()

        arrays, original_sizes, resized_sizes = [], [], []
        for index, image in enumerate(batch):
            name = f"image {index}"
            self._check_size(image, name)
            array = to_rgb_array(image, exif, name)
            height, width = array.shape[:2]
            if do_resize:
                new_height, new_width = self.get_resized_size(height, width, size)
                if (new_height, new_width) != (height, width):
                    array = cv2.resize(array, (new_width, new_height), interpolation=cv2.INTER_LINEAR)
            arrays.append(array)
            original_sizes.append((height, width))
            resized_sizes.append(array.shape[:2])

        padded_height = self._round_up(max(height for height, _ in resized_sizes))
        padded_width = self._round_up(max(width for _, width in resized_sizes))
        pixel_values = np.zeros((len(arrays), 3, padded_height, padded_width), dtype=np.float32)
        mean = np.asarray(self.image_mean, dtype=np.float32)[:, None, None] if self.do_normalize else 0
        inverse_std = (
            1 / np.asarray(self.image_std, dtype=np.float32)[:, None, None] if self.do_normalize else 1
        )
        for index, array in enumerate(arrays):
            # written straight into the padded batch; the padding stays 0 (mmdet pads after normalising)
            window = pixel_values[index, :, : array.shape[0], : array.shape[1]]
            np.subtract(array.transpose(2, 0, 1), mean, out=window, dtype=np.float32)
            window *= inverse_std

        data = {
            "pixel_values": torch.from_numpy(pixel_values),
            "original_sizes": torch.tensor(original_sizes, dtype=torch.int64),
            "resized_sizes": torch.tensor(resized_sizes, dtype=torch.int64),
        }
        if polygons is not None:
            data["labels"] = self._batch_targets(
                polygons, ignore, original_sizes, resized_sizes, (padded_height, padded_width)
            )
        return BatchFeature(data=data)

    def preprocess(self, images: object, **kwargs: Any) -> BatchFeature:
        """Same as calling the processor (transformers' image processors expose both)."""
        return self(images, **kwargs)

    def _round_up(self, length: int) -> int:
        return math.ceil(length / self.size_divisor) * self.size_divisor

    def _batch_targets(
        self,
        polygons: Sequence[Sequence[object]],
        ignore: Sequence[Sequence[bool]] | None,
        original_sizes: list[tuple[int, int]],
        resized_sizes: list[tuple[int, int]],
        padded_size: tuple[int, int],
    ) -> dict[str, torch.Tensor]:
        maps: dict[str, torch.Tensor] = {}
        for index, image_polygons in enumerate(polygons):
            (height, width), (new_height, new_width) = original_sizes[index], resized_sizes[index]
            scale = np.array([new_width / width, new_height / height])
            scaled = [
                as_polygon(polygon, f"image {index} polygon {number}") * scale
                for number, polygon in enumerate(image_polygons)
            ]
            targets = self.prepare_targets(
                scaled, (new_height, new_width), None if ignore is None else ignore[index]
            )
            for key, value in targets.items():
                stride = _TARGET_STRIDES.get(key, 1)
                if key not in maps:  # zero padding, as mmocr pads the targets of a batch
                    maps[key] = value.new_zeros(
                        len(polygons), *value.shape[:-2], padded_size[0] // stride, padded_size[1] // stride
                    )
                maps[key][index, ..., : value.shape[-2], : value.shape[-1]] = value
        return maps

    # --------------------------------------------------------------------------------------------------------
    # Training targets
    # --------------------------------------------------------------------------------------------------------

    def prepare_targets(
        self,
        polygons: Sequence[object],
        image_size: tuple[int, int],
        ignore: Sequence[bool] | None = None,
        texts: Sequence[str] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Training targets of one image for the processor's `head_type` -- the keys of the detector's `labels`.

        DBNet: (H, W) float32 `shrink_map`, `shrink_mask`, `threshold_map`, `threshold_mask`. PAN: (H, W)
        `text_kernel` and `shrunk_kernel` (instance numbers) and `effective_mask` (see `make_pan_targets`).
        FCENet: per level `fce_maps_<stride>` (C, H // stride, W // stride) and `matching_region` (2, H // 32,
        W // 32) (see `make_fce_targets`).

        Args:
            polygons: text polygons in pixels of the (already resized/cropped) input, each (N, 2) or a flat
                x, y list; parts outside the image are clipped.
            image_size: (height, width) of the input.
            ignore: per-polygon don't-care flags; `texts` equal to '###' are don't-care too.

        For DBNet, don't-care polygons, and polygons that DBNet cannot learn from (fewer than 3 points,
        self-intersecting, area < 1 px, short side < `min_text_size`, nothing left after shrinking) are masked
        out of `shrink_mask` and absent from the other maps. Malformed coordinates raise a ValueError.
        """
        height, width = (int(side) for side in image_size)
        flags = ignore_flags(ignore, len(polygons))
        if texts is not None:
            if len(texts) != len(polygons):
                raise ValueError(f"texts has {len(texts)} entries for {len(polygons)} polygons")
            flags = [flag or text == "###" for flag, text in zip(flags, texts, strict=True)]
        if self.head_type == "pan":
            pan = make_pan_targets(polygons, height, width, ignore=flags)
            return {key: torch.from_numpy(getattr(pan, key)) for key in self._target_keys}
        if self.head_type == "fcenet":
            ranges = tuple(tuple(pair) for pair in self.fce_level_ranges)
            targets = make_fce_targets(polygons, height, width, flags, level_ranges=ranges)
            return {key: torch.from_numpy(value) for key, value in targets.items()}
        targets = make_db_targets(
            polygons,
            height,
            width,
            ignore=flags,
            shrink_ratio=self.shrink_ratio,
            threshold_min=self.threshold_min,
            threshold_max=self.threshold_max,
            min_text_size=self.min_text_size,
        )
        return {key: torch.from_numpy(getattr(targets, key)) for key in self._target_keys}

    # --------------------------------------------------------------------------------------------------------
    # Post-processing
    # --------------------------------------------------------------------------------------------------------

    def post_process_text_detection(
        self,
        outputs: object,
        threshold: float | None = None,
        target_sizes: Sequence[Sequence[int]] | torch.Tensor | None = None,
        box_type: str | None = None,
        unclip_ratio: float | None = None,
        min_score: float | None = None,
        min_size: float | None = None,
        max_candidates: int | None = None,
        approx_ratio: float | None = None,
        preset: str | None = None,
        resized_sizes: Sequence[Sequence[int]] | torch.Tensor | None = None,
        num_workers: int | None = None,
    ) -> list[dict[str, Any]]:
        """Text regions from the detector's maps, per image.

        Args:
            outputs: the model output, or the DB probability map itself, (B, 1, H, W) or (B, H, W). A DBNet
                output is read through its `prob_map`; a PAN output (`pan_maps`) through the PAN
                post-processing and an FCENet output (`fce_classification`, `fce_regression`) through the FCE
                one, with the processor's `pan_post_processing` / `fce_post_processing` settings (FCENet gives
                polygons of its reconstruction points; PAN gives `box_type` outlines, by default the `preset`'s).
            threshold, box_type, unclip_ratio, min_score, min_size, max_candidates, approx_ratio: DB
                post-processing settings (see `extract_text_boundaries`); unset ones come from `preset` if
                given, else from the processor's `post_processing`. `box_type` applies to PAN too.
            target_sizes: (height, width) of each original image; results are then in its pixels. Without it,
                results stay in probability-map pixels.
            resized_sizes: (height, width) each image had in `pixel_values` before padding; by default the
                processor's own resize of `target_sizes` (pass the `resized_sizes` the processor returned if
                you changed `size` at call time).
            num_workers: threads post-processing the images of a batch side by side (OpenCV releases the
                GIL); default one per image up to the CPUs this process may use, 1 for no threads.

        Returns:
            per image `{"scores": (N,) float32, "polygons": list of (K, 2) float32 tensors,
            "boxes": (N, 4) float32 as x_min, y_min, x_max, y_max}`. Quads are 4-point polygons. Polygons are
            not clipped (like the official results, they may reach past the image border by the unclip
            margin); boxes are clipped to the image when `target_sizes` is given.
        """
        settings = self._resolve_post_processing(
            self.post_processing if preset is None else preset,
            threshold=threshold,
            box_type=box_type,
            unclip_ratio=unclip_ratio,
            min_score=min_score,
            min_size=min_size,
            max_candidates=max_candidates,
            approx_ratio=approx_ratio,
        )
        maps, strides, extract = self._detection_maps(outputs, settings, box_type, preset)
        batch_size = maps[0].shape[0]
        target_sizes = self._sizes(target_sizes, batch_size, "target_sizes")
        resized_sizes = self._sizes(resized_sizes, batch_size, "resized_sizes")
        if resized_sizes is not None and target_sizes is None:
            raise ValueError("resized_sizes needs target_sizes")
        if target_sizes is not None and resized_sizes is None:
            resized_sizes = [
                self.get_resized_size(*target) if self.do_resize else target for target in target_sizes
            ]

        def image_detections(index: int) -> dict[str, Any]:
            image_maps = [level[index] for level in maps]
            scale = np.ones(2)
            if target_sizes is not None:
                (height, width), (new_height, new_width) = target_sizes[index], resized_sizes[index]
                # the image's own padded area, as the official single-image pipeline sees it
                padded_height, padded_width = self._round_up(new_height), self._round_up(new_width)
                image_maps = [
                    level[:, : padded_height // stride, : padded_width // stride]
                    for level, stride in zip(image_maps, strides, strict=True)
                ]
                scale = np.array([width / new_width, height / new_height])
            image_size = None if target_sizes is None else target_sizes[index]
            return self._to_original_pixels(extract(image_maps), scale, image_size)

        if num_workers is not None and num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        workers = min(batch_size, num_workers or _available_cpus())
        if workers == 1:
            return [image_detections(index) for index in range(batch_size)]
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(image_detections, range(batch_size)))

    def _detection_maps(
        self, outputs: object, db_settings: dict[str, Any], box_type: str | None, preset: str | None
    ) -> tuple[list[np.ndarray], tuple[int, ...], Any]:
        """The maps of the head that made `outputs` as (batch, channels, h, w) arrays (moved to the CPU once:
        contours and scores are OpenCV work), their strides, and the function turning one image's maps into
        boundaries in input pixels."""

        def field(name: str) -> Any:
            return outputs.get(name) if isinstance(outputs, Mapping) else getattr(outputs, name, None)

        def as_array(tensor: torch.Tensor) -> np.ndarray:
            return tensor.detach().float().cpu().numpy()

        if field("pan_maps") is not None:
            settings = dict(self.pan_post_processing)
            if preset is not None:
                if preset not in PAN_BOX_TYPES:
                    raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PAN_BOX_TYPES)}")
                settings["box_type"] = PAN_BOX_TYPES[preset]
            if box_type is not None:
                settings["box_type"] = box_type

            def extract_pan(image_maps: list[np.ndarray]) -> list[tuple[np.ndarray, float]]:
                found = extract_pan_boundaries(image_maps[0], **settings)
                return [(points * PAN_STRIDE, score) for points, score in found]

            return [as_array(field("pan_maps"))], (PAN_STRIDE,), extract_pan
        if field("fce_classification") is not None:
            levels = len(FCE_STRIDES)
            maps = [as_array(level) for level in (*field("fce_classification"), *field("fce_regression"))]
            return (
                maps,
                FCE_STRIDES * 2,
                lambda image_maps: extract_fce_boundaries(
                    image_maps[:levels], image_maps[levels:], **self.fce_post_processing
                ),
            )
        prob_map = as_array(self._prob_map(outputs))[:, None]
        return [prob_map], (1,), lambda image_maps: extract_text_boundaries(image_maps[0][0], **db_settings)

    @staticmethod
    def _to_original_pixels(
        boundaries: list[tuple[np.ndarray, float]], scale: np.ndarray, image_size: tuple[int, int] | None
    ) -> dict[str, Any]:
        """Result dict of one image: all outlines rescaled and bounded at once (one array of every vertex,
        split back per region), boxes clipped to the image when its size is known."""
        if not boundaries:
            return {"scores": torch.zeros(0), "polygons": [], "boxes": torch.zeros(0, 4)}
        vertices = np.concatenate([points for points, _ in boundaries]) * scale
        starts = np.cumsum([0] + [len(points) for points, _ in boundaries[:-1]])
        boxes = np.hstack([np.minimum.reduceat(vertices, starts), np.maximum.reduceat(vertices, starts)])
        if image_size is not None:
            height, width = image_size
            boxes = np.clip(boxes, 0, [width, height, width, height])
        return {
            "scores": torch.tensor([score for _, score in boundaries], dtype=torch.float32),
            "polygons": [
                torch.from_numpy(part) for part in np.split(vertices.astype(np.float32), starts[1:])
            ],
            "boxes": torch.from_numpy(boxes.astype(np.float32)),
        }

    @staticmethod
    def _prob_map(outputs: object) -> torch.Tensor:
        if isinstance(outputs, Mapping) and "prob_map" in outputs:
            prob_map = outputs["prob_map"]
        else:
            prob_map = getattr(outputs, "prob_map", outputs)
        if isinstance(prob_map, np.ndarray):
            prob_map = torch.from_numpy(prob_map)
        if not isinstance(prob_map, torch.Tensor):
            raise TypeError(
                f"expected model outputs with a prob_map or a tensor, got {type(outputs).__name__}"
            )
        if prob_map.ndim == 4 and prob_map.shape[1] == 1:
            prob_map = prob_map[:, 0]
        if prob_map.ndim != 3:
            raise ValueError(f"prob_map must be (B, 1, H, W) or (B, H, W), got shape {tuple(prob_map.shape)}")
        return prob_map

    @staticmethod
    def _sizes(sizes: object, batch_size: int, name: str) -> list[tuple[int, int]] | None:
        if sizes is None:
            return None
        values = sizes.tolist() if isinstance(sizes, torch.Tensor | np.ndarray) else list(sizes)
        if len(values) != batch_size or any(len(size) != 2 or min(size) < 1 for size in values):
            raise ValueError(
                f"{name} must hold one positive (height, width) per image ({batch_size}), got {values}"
            )
        return [(int(height), int(width)) for height, width in values]


TcmImageProcessor.register_for_auto_class("AutoImageProcessor")
