"""Reading text regions: rectify each detected region into an upright crop, recognize the crops in batches.

The OCR pipeline, `scenetext ocr` (through it) and evaluation all read crops here, so a crop gives the same
text whichever of them reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .cropping_ocr import rectify_region

# Detected regions hug the ink (TCM/DB polygons are unclipped back to the word's own outline), while recognizers
# learn from crops with some background around the word (word-crop datasets, and the synthetic crops here: 5-35%
# of the height per side). The embedded recognizer reads 9 of the 13 sample words from tight crops, all 13 with
# 0.1-0.3 of the height added on every side.
DEFAULT_CROP_MARGIN = 0.15


@torch.inference_mode()
def recognize_crops(
    recognizer: torch.nn.Module, processor: Any, crops: Sequence[Any], batch_size: int = 32
) -> list[tuple[str, float]]:
    """(text, confidence) of each word crop, read `batch_size` crops per forward pass.

    `processor` is the recognizer's processor (any object with the `Clip4StrProcessor` interface: called with
    `images=`, and `batch_decode(logits)`); crops go to the recognizer's device and floating-point dtype.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device, dtype = _input_placement(recognizer)
    readings = []
    for start in range(0, len(crops), batch_size):
        pixel_values = processor(images=list(crops[start : start + batch_size]), return_tensors="pt")
        logits = recognizer(pixel_values=pixel_values["pixel_values"].to(device, dtype)).logits
        decoded = processor.batch_decode(logits.float())
        readings.extend(zip(decoded["generated_text"], map(float, decoded["scores"]), strict=True))
    return readings


def _input_placement(recognizer: Any) -> tuple[torch.device, torch.dtype]:
    """Where and in which dtype the recognizer takes its images."""
    if not isinstance(recognizer, torch.nn.Module):
        # A backend that is not a module (`OnnxRecognizer`) says it itself.
        return recognizer.device, recognizer.dtype
    # The first parameter, not `model.device`/`model.dtype`: a training wrapper (DDP) or a dynamically
    # quantized model has no such attributes, or reports the int8 weights' dtype.
    parameter = next(parameter for parameter in recognizer.parameters() if parameter.is_floating_point())
    return parameter.device, parameter.dtype


def recognize_regions(
    recognizer: torch.nn.Module,
    processor: Any,
    images: Sequence[np.ndarray],
    polygons: Sequence[Sequence[np.ndarray]],
    batch_size: int = 32,
    crop_margin: float = DEFAULT_CROP_MARGIN,
) -> list[list[tuple[str, float]]]:
    """(text, confidence) of every region of every image, in the order of `polygons[image]`.

    Each region of the (H, W, 3) RGB `images` is rectified with `crop_margin` times its height of image around
    it (see `rectify_region`); crops of all images share the recognizer's batches.
    """
    if len(images) != len(polygons):
        raise ValueError(f"got {len(images)} images but polygons for {len(polygons)}")
    crops = [
        rectify_region(image, region, crop_margin)
        for image, regions in zip(images, polygons, strict=True)
        for region in regions
    ]
    readings = iter(recognize_crops(recognizer, processor, crops, batch_size))
    return [[next(readings) for _ in regions] for regions in polygons]
