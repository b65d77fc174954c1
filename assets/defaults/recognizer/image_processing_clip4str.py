"""Image processor of CLIP4STR: any picture of a word -> a normalised 224x224 RGB tensor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from PIL import Image, ImageOps
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature

try:
    import torch
except ImportError:  # numpy and PIL inputs work without torch; torch tensors cannot exist then
    torch = None

# Official test-time normalisation (`strhub/data/module.py` `get_transform` called without mean/std by
# test.py and read.py): released checkpoints are evaluated with it.
TEST_MEAN = (0.5, 0.5, 0.5)
TEST_STD = (0.5, 0.5, 0.5)
# CLIP's statistics, which official *training* and validation used (`openai_meanstd: true`).
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_MODES_WITH_ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALLOWED_CHANNELS = {1: "gray", 2: "gray + alpha", 3: "RGB", 4: "RGB + alpha"}


class Clip4StrImageProcessor(BaseImageProcessor):
    """Resizes word crops to a fixed size and normalises them, as the official CLIP4STR test transform
    `Resize((224, 224), BICUBIC) -> ToTensor -> Normalize(mean, std)`.

    The resize does not keep the aspect ratio (the model was trained on stretched crops). RGB PIL images and
    `uint8` arrays are resized by PIL itself, so they match torchvision's transform on PIL images bit for
    bit; other inputs follow the same recipe in floating point.

    Accepted images, alone or in a list (a 4-D array or tensor is a batch):
    - PIL images of any mode. The EXIF orientation is applied first. L, P, CMYK, YCbCr... are converted to
      RGB; modes with transparency (RGBA, LA, P with a transparent colour...) are composited over
      `background_color` (white by default: text photographed or rendered on a transparent background then
      reads as on paper; the official pipeline's `convert("RGB")` would instead expose whatever colour the
      transparent pixels store, often black). 16-bit modes (I;16, I) are scaled by 1/65535, so their full
      range is kept instead of being clipped to 8 bits (I, 32-bit integers, is read as 16-bit data, the way
      Pillow used to open 16-bit PNGs); F images must already lie in [0, 1].
    - numpy arrays, channels last as PIL and OpenCV give them: (H, W) or (H, W, C) with C = 1 (gray),
      2 (gray + alpha), 3 (RGB; convert OpenCV's BGR first) or 4 (RGBA). `uint8` is scaled by 1/255,
      `uint16` by 1/65535, floats must lie in [0, 1].
    - torch tensors, channels first as torchvision gives them: (H, W) or (C, H, W), same channel counts and
      dtypes as numpy.

    Args:
        size (`dict[str, int]` or `int` or `(height, width)`, *optional*, defaults to 224x224):
            Output size.
        image_mean (`float` or `tuple[float, float, float]`, *optional*, defaults to 0.5):
            Per-channel mean subtracted after scaling to [0, 1]. 0.5 is the official test-time value, which
            released checkpoints are evaluated with; official training used CLIP's mean
            (`OPENAI_CLIP_MEAN`).
        image_std (`float` or `tuple[float, float, float]`, *optional*, defaults to 0.5):
            Per-channel standard deviation (`OPENAI_CLIP_STD` for official training).
        do_normalize (`bool`, *optional*, defaults to `True`):
            Whether to normalise; without it `pixel_values` are in [0, 1].
        background_color (`tuple[int, int, int]`, *optional*, defaults to white):
            The 8-bit RGB colour transparent pixels are composited over.
    """

    model_input_names: ClassVar[list[str]] = ["pixel_values"]

    def __init__(
        self,
        size: dict[str, int] | int | Sequence[int] | None = None,
        image_mean: float | Sequence[float] = TEST_MEAN,
        image_std: float | Sequence[float] = TEST_STD,
        do_normalize: bool = True,
        background_color: Sequence[int] = (255, 255, 255),
        **kwargs: Any,
    ) -> None:
        # Keys that `BaseImageProcessor` machinery may hand back from a saved config; this processor has a
        # fixed bicubic resize and always scales to [0, 1].
        for fixed in ("do_resize", "resample", "do_rescale", "rescale_factor", "image_processor_type"):
            kwargs.pop(fixed, None)
        super().__init__(**kwargs)
        self.size = _size_dict(size if size is not None else 224)
        self.image_mean = _per_channel(image_mean, "image_mean")
        self.image_std = _per_channel(image_std, "image_std")
        self.do_normalize = do_normalize
        self.background_color = _background(background_color)

    def preprocess(
        self,
        images: Any,
        size: dict[str, int] | int | Sequence[int] | None = None,
        image_mean: float | Sequence[float] | None = None,
        image_std: float | Sequence[float] | None = None,
        do_normalize: bool | None = None,
        return_tensors: str | None = "pt",
    ) -> BatchFeature:
        """Turn one image or a batch into `pixel_values` of shape (batch, 3, height, width).

        Arguments left to `None` take the processor's settings. `return_tensors` is `"pt"` (torch, the
        default) or `"np"`/`None` (numpy float32).
        """
        size = _size_dict(size) if size is not None else self.size
        mean = self.image_mean if image_mean is None else _per_channel(image_mean, "image_mean")
        std = self.image_std if image_std is None else _per_channel(image_std, "image_std")
        # float32 column vectors: the same float32 operations as torchvision's `Normalize` (subtract, divide).
        mean = np.asarray(mean, dtype=np.float32)[:, None, None]
        std = np.asarray(std, dtype=np.float32)[:, None, None]
        do_normalize = self.do_normalize if do_normalize is None else do_normalize
        if return_tensors not in ("pt", "np", None):
            raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}")

        pixel_values = []
        for index, image in enumerate(_as_image_list(images)):
            scaled = self._resize_and_scale(image, index, size["height"], size["width"])
            pixel_values.append((scaled - mean) / std if do_normalize else scaled)
        if not pixel_values:
            raise ValueError("images is empty: expected at least one image")
        return BatchFeature(data={"pixel_values": np.stack(pixel_values)}, tensor_type=return_tensors)

    def _resize_and_scale(self, image: Any, index: int, height: int, width: int) -> np.ndarray:
        """One image -> float32 array (3, height, width) in [0, 1]."""
        if isinstance(image, Image.Image):
            image = ImageOps.exif_transpose(image)
            _check_not_empty(image.height, image.width, index, f"PIL image of size {image.size}")
            image = self._pil_to_rgb_or_float(image, index)
        else:
            image = self._array_to_rgb_or_float(image, index)
        if isinstance(image, Image.Image):
            # 8-bit path: PIL resizes the uint8 image exactly as torchvision's `Resize` does, and the
            # division matches `ToTensor` (float32 / 255).
            resized = image.resize((width, height), Image.Resampling.BICUBIC)
            channels_first = np.asarray(resized).transpose(2, 0, 1).astype(np.float32, order="C")
            return channels_first / np.float32(255)
        # Float path, (H, W, 3) in [0, 1]: the same PIL bicubic filter on 32-bit float planes, so both paths
        # agree up to 8-bit rounding.
        return np.stack([_resize_plane(image[..., channel], width, height) for channel in range(3)])

    def _pil_to_rgb_or_float(self, image: Image.Image, index: int) -> Image.Image | np.ndarray:
        if image.mode == "RGB":
            return image
        if image.mode in _SIXTEEN_BIT_MODES:
            values = np.asarray(image)
            if values.min() < 0 or values.max() > 65535:
                raise ValueError(
                    f"image {index}: mode {image.mode} holds values in [{values.min()}, {values.max()}]; "
                    "expected 16-bit data in [0, 65535]"
                )
            return _gray_to_rgb(values.astype(np.float32) / np.float32(65535))
        if image.mode == "F":
            return _gray_to_rgb(_check_unit_range(np.asarray(image, dtype=np.float32), index))
        if image.mode in _MODES_WITH_ALPHA or (image.mode == "P" and "transparency" in image.info):
            background = Image.new("RGBA", image.size, (*self.background_color, 255))
            return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
        try:
            return image.convert("RGB")
        except ValueError as error:
            raise ValueError(f"image {index}: PIL mode {image.mode} cannot be converted to RGB") from error

    def _array_to_rgb_or_float(self, image: Any, index: int) -> Image.Image | np.ndarray:
        """A numpy array (channels last) or torch tensor (channels first) -> RGB PIL image or float array."""
        if torch is not None and isinstance(image, torch.Tensor):
            kind = "torch tensor (channels first: (H, W) or (C, H, W))"
            shape = tuple(image.shape)
            if image.dtype == torch.bfloat16:
                image = image.float()
            array = image.detach().cpu().numpy()
            if array.ndim == 3:
                array = array.transpose(1, 2, 0)
        elif isinstance(image, np.ndarray):
            kind = "numpy array (channels last: (H, W) or (H, W, C))"
            shape = image.shape
            array = image
        else:
            raise TypeError(
                f"image {index}: expected a PIL image, numpy array or torch tensor, got {type(image).__name__}"
            )
        if array.ndim == 2:
            array = array[..., None]
        channels = array.shape[-1] if array.ndim == 3 else None
        if channels not in _ALLOWED_CHANNELS:
            raise ValueError(
                f"image {index}: {kind} of shape {shape} is not an image with "
                f"{', '.join(f'{n} ({name})' for n, name in _ALLOWED_CHANNELS.items())} channels"
            )
        _check_not_empty(array.shape[0], array.shape[1], index, f"{kind} of shape {shape}")

        if array.dtype == np.uint8:
            # PIL infers L, LA, RGB or RGBA from the shape; the 8-bit path then matches PIL inputs exactly.
            squeezed = array[..., 0] if channels == 1 else array
            return self._pil_to_rgb_or_float(Image.fromarray(np.ascontiguousarray(squeezed)), index)
        if array.dtype == np.uint16:
            array = array.astype(np.float32) / np.float32(65535)
        elif np.issubdtype(array.dtype, np.floating):
            array = _check_unit_range(array.astype(np.float32), index)
        else:
            raise TypeError(f"image {index}: {kind} has dtype {array.dtype}; expected uint8, uint16 or float")

        color = array[..., :1].repeat(3, axis=-1) if channels <= 2 else array[..., :3]
        if channels in (2, 4):
            alpha = array[..., -1:]
            background = np.asarray(self.background_color, dtype=np.float32) / np.float32(255)
            color = color * alpha + background * (1 - alpha)
        return color


def _as_image_list(images: Any) -> list[Any]:
    """A single image, a list/tuple of images, or a 4-D batch -> list of single images."""
    if isinstance(images, list | tuple):
        return list(images)
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)
    if torch is not None and isinstance(images, torch.Tensor) and images.ndim == 4:
        return list(images.unbind(0))
    return [images]


def _check_not_empty(height: int, width: int, index: int, description: str) -> None:
    if height == 0 or width == 0:
        raise ValueError(f"image {index}: {description} is empty (height {height}, width {width})")


def _check_unit_range(array: np.ndarray, index: int) -> np.ndarray:
    if not np.isfinite(array).all():
        raise ValueError(f"image {index}: float image contains NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 1:
        raise ValueError(
            f"image {index}: float image has values in [{low:g}, {high:g}]; expected [0, 1] "
            "(pass uint8 data for 0..255 images)"
        )
    return array


def _resize_plane(plane: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bicubic resize of one float plane in [0, 1], pass by pass as PIL resizes 8-bit images: horizontally,
    then vertically, clipping the filter's overshoot to [0, 1] after each pass as PIL clips to [0, 255]."""
    image = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32))
    for pass_size in ((width, image.height), (width, height)):
        if image.size != pass_size:
            resized = np.asarray(image.resize(pass_size, Image.Resampling.BICUBIC))
            image = Image.fromarray(np.clip(resized, 0, 1))
    return np.asarray(image, dtype=np.float32)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=-1)


def _size_dict(size: dict[str, int] | int | Sequence[int]) -> dict[str, int]:
    if isinstance(size, dict):
        if set(size) != {"height", "width"}:
            raise ValueError(f"size must have the keys 'height' and 'width', got {size}")
        height, width = size["height"], size["width"]
    elif isinstance(size, int):
        height = width = size
    elif isinstance(size, Sequence) and len(size) == 2:
        height, width = size
    else:
        raise ValueError(f"size must be an int, (height, width) or {{'height', 'width'}}, got {size!r}")
    if not all(isinstance(v, int) and v > 0 for v in (height, width)):
        raise ValueError(f"size must be positive integers, got height={height!r}, width={width!r}")
    return {"height": height, "width": width}


def _per_channel(value: float | Sequence[float], name: str) -> tuple[float, float, float]:
    if isinstance(value, int | float):
        value = (value,) * 3
    values = tuple(float(v) for v in value)
    if len(values) != 3:
        raise ValueError(f"{name} must be one number or three (R, G, B), got {value!r}")
    if name == "image_std" and 0 in values:
        raise ValueError(f"image_std must not contain 0, got {value!r}")
    return values


def _background(color: Sequence[int]) -> tuple[int, int, int]:
    values = tuple(color)
    if len(values) != 3 or not all(isinstance(v, int) and 0 <= v <= 255 for v in values):
        raise ValueError(f"background_color must be three integers in [0, 255], got {color!r}")
    return values


Clip4StrImageProcessor.register_for_auto_class("AutoImageProcessor")
