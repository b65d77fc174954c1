"""The one way an image enters this package: whatever the caller holds -> an upright 8-bit RGB PIL image.

Every entry point (the three pipelines, `scenetext ocr`, evaluation, the data sources and collators) reads
images through `load_rgb_image`, so a file gives the same pixels wherever it is read. The value range of
each PIL mode is kept: a 16-bit PNG is scaled from 0..65535 (PIL's own `convert("RGB")` clips it, which
turns most 16-bit pictures white), and transparent pixels are composited on white (text rendered on a
transparent background is dark ink; on white it reads as on paper, and white is also the recognizer's
default `background_color`).
"""

from __future__ import annotations

import io
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

try:
    import torch
except ImportError:  # torch is optional for reading images; tensors are then simply not accepted
    torch = None

# Modes holding 16 (or 32) bits per pixel that `convert("RGB")` would clip to 0..255 instead of scaling.
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_MODES_WITH_ALPHA = ("RGBA", "RGBa", "LA", "La", "PA")
WHITE = (255, 255, 255)


def load_rgb_image(
    image: Any, apply_exif_orientation: bool = True, timeout: float | None = None
) -> Image.Image:
    """`image` as a non-empty 8-bit RGB PIL image.

    Args:
        image: a file path (`str` or `Path`) or http(s) URL, encoded bytes, a PIL image of any mode, a numpy
            array ((H, W) or (H, W, C) with C in 1-4; uint8, uint16, bool, or float in [0, 1]) or a torch
            tensor ((H, W), (C, H, W) or, when the first axis cannot be channels, (H, W, C)).
        apply_exif_orientation: rotate/flip as the EXIF orientation tag says (what a photo viewer shows).
            Off for datasets whose annotations are given in the stored pixel orientation (ICDAR).
        timeout: seconds to wait for a URL.

    Raises:
        FileNotFoundError: a path that does not exist.
        TypeError: an input of another type, or an array of an unsupported dtype.
        ValueError: undecodable data, an empty image, or an array of an unsupported shape or range; the message
            names the input (its path, or its type and size).
    """
    name = _describe(image)
    if isinstance(image, str | Path | bytes | bytearray | memoryview):
        image = _decode(_read_bytes(image, name, timeout), name)
    elif torch is not None and isinstance(image, torch.Tensor):
        image = _array_to_image(_tensor_to_channels_last(image), name)
    elif isinstance(image, np.ndarray):
        image = _array_to_image(image, name)
    elif not isinstance(image, Image.Image):
        raise TypeError(
            f"expected an image path, URL, bytes, PIL image, numpy array or torch tensor, got {name}"
        )
    if apply_exif_orientation:
        image = ImageOps.exif_transpose(image)
    if image.width < 1 or image.height < 1:
        raise ValueError(f"{name}: the image is empty ({image.width}x{image.height} pixels)")
    rgb = _to_rgb(image, name)
    if not apply_exif_orientation and "exif" in rgb.info:
        # The stored orientation is final: a later reader (an image processor) must not rotate it after all.
        rgb = rgb.copy()
        del rgb.info["exif"]
    return rgb


def split_image_batch(inputs: Any) -> Any:
    """A 4-D numpy array or torch tensor as the list of its images (each read by `load_rgb_image` with that
    type's convention: (H, W, C) arrays, (C, H, W) tensors); any other input unchanged. The pipelines call it
    first, so a batch tensor gets one result per image as a list of images does."""
    is_array = isinstance(inputs, np.ndarray) or (torch is not None and isinstance(inputs, torch.Tensor))
    return list(inputs) if is_array and inputs.ndim == 4 else inputs


def _describe(image: Any) -> str:
    """How an error message names the input: its path or URL, else its type and size."""
    if isinstance(image, str | Path):
        return str(image)
    if isinstance(image, bytes | bytearray | memoryview):
        return f"image bytes ({len(image)} bytes)"
    if isinstance(image, Image.Image):
        return f"PIL image (mode {image.mode}, {image.width}x{image.height})"
    if isinstance(image, np.ndarray) or (torch is not None and isinstance(image, torch.Tensor)):
        return f"{type(image).__name__} of shape {tuple(image.shape)} and dtype {image.dtype}"
    return type(image).__name__


def _read_bytes(
    source: str | Path | bytes | bytearray | memoryview, name: str, timeout: float | None
) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    if isinstance(source, str) and source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=timeout) as response:
            return response.read()
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no such image file")
    return path.read_bytes()


def _decode(data: bytes, name: str) -> Image.Image:
    if not data:
        raise ValueError(f"{name}: empty file (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except UnidentifiedImageError:
        raise ValueError(f"{name}: not an image file (no format Pillow reads)") from None
    except Image.DecompressionBombError as error:
        raise ValueError(f"{name}: image too large ({error})") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"{name}: unreadable image ({type(error).__name__}: {error})") from None
    return image


def _tensor_to_channels_last(tensor: Any) -> np.ndarray:
    if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16
        tensor = tensor.float()
    array = tensor.detach().cpu().numpy()
    # Tensors are channels first (torchvision's convention) unless the first axis cannot be channels.
    if array.ndim == 3 and array.shape[0] <= 4:
        array = array.transpose(1, 2, 0)
    return array


def _array_to_image(array: np.ndarray, name: str) -> Image.Image:
    """An (H, W) or (H, W, C) array -> L, LA, RGB or RGBA PIL image, its values scaled to 0..255."""
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (2, 3, 4)):
        raise ValueError(f"{name}: expected (H, W) or (H, W, C) with C in 1, 2, 3, 4")
    if array.dtype == np.bool_:
        array = np.where(array, np.uint8(255), np.uint8(0))
    elif array.dtype == np.uint16:
        array = _round_to_uint8(array / 257.0)
    elif np.issubdtype(array.dtype, np.floating):
        if array.size and not (array.min() >= 0 and array.max() <= 1):  # NaN fails both comparisons
            raise ValueError(f"{name}: float values must lie in [0, 1], got [{array.min()}, {array.max()}]")
        array = _round_to_uint8(array * 255.0)
    elif array.dtype != np.uint8:
        raise TypeError(f"{name}: expected uint8, uint16, bool or float values, got dtype {array.dtype}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"{name}: the image is empty ({array.shape[1]}x{array.shape[0]} pixels)")
    # uint8 (H, W), (H, W, 2), (H, W, 3), (H, W, 4) become L, LA, RGB, RGBA
    return Image.fromarray(np.ascontiguousarray(array))


def _round_to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _to_rgb(image: Image.Image, name: str) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in _SIXTEEN_BIT_MODES:
        return _gray_to_rgb(np.asarray(image, dtype=np.float64) / 257.0)
    if image.mode == "I":
        # 32-bit integers: most often 16-bit data widened by PIL; other ranges are stretched to 0..255.
        return _gray_to_rgb(_stretch(np.asarray(image, dtype=np.float64), upper=65535.0) * 255.0)
    if image.mode == "F":
        # 32-bit floats: intensities in [0, 1] by convention; other ranges are stretched to 0..255.
        return _gray_to_rgb(_stretch(np.asarray(image, dtype=np.float64), upper=1.0) * 255.0)
    if image.mode in _MODES_WITH_ALPHA or (image.mode == "P" and "transparency" in image.info):
        background = Image.new("RGBA", image.size, (*WHITE, 255))
        return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as error:
        raise ValueError(f"{name}: PIL mode {image.mode} cannot be converted to RGB") from error


def _stretch(values: np.ndarray, upper: float) -> np.ndarray:
    """`values` in [0, 1]: divided by `upper` when they lie in [0, upper], else min-max stretched."""
    low, high = float(values.min()), float(values.max())
    if low >= 0 and high <= upper:
        return values / upper
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def _gray_to_rgb(gray: np.ndarray) -> Image.Image:
    return Image.fromarray(_round_to_uint8(gray)).convert("RGB")
