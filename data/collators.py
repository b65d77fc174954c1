"""Data collators for transformers' `Trainer`: a list of dataset rows in, the model's keyword arguments out.

Rows are those of this package's data sources: recognition rows hold an ``image`` and a ``label``; detection rows
an ``image``, ``polygons`` and optionally ``texts`` (``###`` = don't care) and ``ignore`` flags. Both models
return their ``loss`` when given ``labels``, so ``Trainer`` needs nothing else. Pass
``remove_unused_columns=False`` in the `TrainingArguments`: the rows' columns are not the models' arguments.

    trainer = Trainer(model, args, train_dataset=rows, data_collator=DetectionCollator(image_processor),
                      processing_class=image_processor)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from scenetext.data.augment_detection import SceneAugment
from scenetext.pipelines.image_loading import load_rgb_image

# Images of a row are used in their stored pixel orientation: that is the orientation labels and polygons are
# given in, so an EXIF orientation tag must not turn the picture under them.
STORED_ORIENTATION = {"apply_exif_orientation": False}


def recognition_batch(
    rows: Sequence[dict[str, Any]],
    processor: Any,
    augment: Callable[[Image.Image, int], Image.Image] | None,
    seeds: Sequence[int],
) -> dict[str, torch.Tensor] | None:
    """`pixel_values` and token `labels` of word-crop rows, or None when no label survives.

    Labels go through the tokenizer's official preprocessing (whitespace removal, NFKD to ASCII, length limit,
    charset filter); rows whose label is then dropped are left out, as the official data loader does. With
    `augment`, row `i` is augmented with `seeds[i]`.
    """
    images, labels = [], []
    for number, row in enumerate(rows):
        for key in ("image", "label"):
            if key not in row:
                raise ValueError(f"recognition row {number} has no {key!r}; it has {sorted(row)}")
        label = processor.tokenizer.preprocess_label(row["label"])
        if label is None:
            continue
        image = load_rgb_image(row["image"], **STORED_ORIENTATION)
        images.append(image if augment is None else augment(image, seeds[number]))
        labels.append(label)
    if not images:
        return None
    return dict(processor(images=images, text=labels, return_tensors="pt"))


def detection_batch(
    rows: Sequence[dict[str, Any]],
    image_processor: Any,
    augment: SceneAugment | None,
    seeds: Sequence[int],
) -> dict[str, Any]:
    """`pixel_values` and DB `labels` of scene rows. With `augment` each scene is augmented with its seed into
    a fixed-size crop (not resized again); without, the processor resizes it to its own scale."""
    images, polygons, ignore = [], [], []
    for number, row in enumerate(rows):
        for key in ("image", "polygons"):
            if key not in row:
                raise ValueError(f"detection row {number} has no {key!r}; it has {sorted(row)}")
        texts = row.get("texts") or [""] * len(row["polygons"])
        flags = row.get("ignore") or [False] * len(row["polygons"])
        if not len(texts) == len(flags) == len(row["polygons"]):
            raise ValueError(
                f"detection row {number}: {len(row['polygons'])} polygons, {len(texts)} texts and "
                f"{len(flags)} ignore flags; expected one of each per polygon"
            )
        flags = [bool(flag) or text == "###" for flag, text in zip(flags, texts, strict=True)]
        image = load_rgb_image(row["image"], **STORED_ORIENTATION)
        if augment is None:
            images.append(image)
            polygons.append(row["polygons"])
            ignore.append(flags)
            continue
        scene = augment(image, row["polygons"], flags, seed=seeds[number])
        images.append(scene.image)
        polygons.append(scene.polygons)
        ignore.append(scene.ignore)
    inputs = image_processor(images=images, polygons=polygons, ignore=ignore, do_resize=augment is None)
    return {"pixel_values": inputs["pixel_values"], "labels": dict(inputs["labels"])}


class DetectionCollator:
    """Scene rows -> `pixel_values` + DB `labels` for `TcmForSceneTextDetection`.

    Args:
        image_processor: the detector's image processor (`TcmImageProcessor`, or the same class loaded with
            `AutoImageProcessor` and `trust_remote_code`): normalisation and DB target settings.
        augment: the official training augmentation (e.g. `SceneAugment()`), or None to only resize.
        seed: seeds the stream of per-scene augmentation seeds, so a run is reproducible.
    """

    def __init__(self, image_processor: Any, augment: SceneAugment | None = None, seed: int = 0) -> None:
        _require_interface(
            image_processor,
            "image_processor",
            "a TCM image processor (TcmImageProcessor)",
            ("__call__", "post_process_text_detection"),
        )
        self.image_processor = image_processor
        self.augment = augment
        self._seeds = np.random.default_rng(seed)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        if not rows:
            raise ValueError("DetectionCollator got an empty batch")
        seeds = self._seeds.integers(0, 2**31, size=len(rows)).tolist()
        return detection_batch(rows, self.image_processor, self.augment, seeds)


class RecognitionCollator:
    """Word-crop rows -> `pixel_values` + token `labels` for `Clip4StrForSceneTextRecognition`.

    Labels go through the official preprocessing (whitespace removal, NFKD to ASCII, length limit, charset
    filter); rows whose label is then dropped are left out of the batch, as the official data loader does.

    Args:
        processor: the recognizer's processor (`Clip4StrProcessor`, or the same class loaded with
            `AutoProcessor` and `trust_remote_code`).
        augment: an optional `(image, seed) -> image` transform, e.g. `WordCropRandAugment()`.
        seed: seeds the stream of per-image augmentation seeds.
    """

    def __init__(
        self,
        processor: Any,
        augment: Callable[[Image.Image, int], Image.Image] | None = None,
        seed: int = 0,
    ) -> None:
        _require_interface(
            processor,
            "processor",
            "a CLIP4STR processor (Clip4StrProcessor)",
            ("__call__", "batch_decode", "tokenizer"),
        )
        _require_interface(
            processor.tokenizer, "processor.tokenizer", "a CLIP4STR tokenizer", ("preprocess_label",)
        )
        self.processor = processor
        self.augment = augment
        self._seeds = np.random.default_rng(seed)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        seeds = self._seeds.integers(0, 2**31, size=len(rows)).tolist()
        batch = recognition_batch(rows, self.processor, self.augment, seeds)
        if batch is None:
            tokenizer = self.processor.tokenizer
            raise ValueError(
                f"none of the {len(rows)} labels of this batch survives the label preprocessing (charset "
                f"{tokenizer.charset!r}, at most {tokenizer.max_label_length} characters)"
            )
        return batch


def _require_interface(value: Any, argument: str, expected: str, attributes: Sequence[str]) -> None:
    """Duck typing, not `isinstance`: a processor loaded with `trust_remote_code` is the same code under another
    class object (its module is imported from the saved folder), and must be accepted all the same."""
    missing = [name for name in attributes if not hasattr(value, name)]
    if missing:
        raise TypeError(f"{argument} must be {expected}; {type(value).__name__} has no {', '.join(missing)}")
