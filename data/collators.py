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
from scenetext.processors.clip4str import Clip4StrProcessor
from scenetext.processors.tcm import TcmImageProcessor


def detection_batch(
    rows: Sequence[dict[str, Any]],
    image_processor: TcmImageProcessor,
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
        image = row["image"].convert("RGB") if isinstance(row["image"], Image.Image) else row["image"]
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
        image_processor: the detector's `TcmImageProcessor` (normalisation and DB target settings).
        augment: the official training augmentation (e.g. `SceneAugment()`), or None to only resize.
        seed: seeds the stream of per-scene augmentation seeds, so a run is reproducible.
    """

    def __init__(
        self, image_processor: TcmImageProcessor, augment: SceneAugment | None = None, seed: int = 0
    ) -> None:
        if not isinstance(image_processor, TcmImageProcessor):
            raise TypeError(
                f"image_processor must be a TcmImageProcessor, got {type(image_processor).__name__}"
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
        processor: the recognizer's `Clip4StrProcessor`.
        augment: an optional `(image, seed) -> image` transform, e.g. `WordCropRandAugment()`.
        seed: seeds the stream of per-image augmentation seeds.
    """

    def __init__(
        self,
        processor: Clip4StrProcessor,
        augment: Callable[[Image.Image, int], Image.Image] | None = None,
        seed: int = 0,
    ) -> None:
        if not isinstance(processor, Clip4StrProcessor):
            raise TypeError(f"processor must be a Clip4StrProcessor, got {type(processor).__name__}")
        self.processor = processor
        self.augment = augment
        self._seeds = np.random.default_rng(seed)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        images, labels = [], []
        for number, row in enumerate(rows):
            for key in ("image", "label"):
                if key not in row:
                    raise ValueError(f"recognition row {number} has no {key!r}; it has {sorted(row)}")
            label = self.processor.tokenizer.preprocess_label(row["label"])
            if label is None:
                continue
            image = row["image"]
            if self.augment is not None:
                image = self.augment(image, int(self._seeds.integers(0, 2**31)))
            images.append(image)
            labels.append(label)
        if not images:
            raise ValueError(
                f"none of the {len(rows)} labels of this batch survives the label preprocessing (charset "
                f"{self.processor.tokenizer.charset!r}, at most {self.processor.tokenizer.max_label_length} "
                "characters)"
            )
        return dict(self.processor(images=images, text=labels, return_tensors="pt"))
