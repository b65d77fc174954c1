"""`ocr` pipeline: a text detector finds the words of a scene, a recognizer reads their rectified crops."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from PIL import Image
from transformers import AutoModel, AutoProcessor, Pipeline, PreTrainedModel, ProcessorMixin
from transformers.image_utils import load_image

from .cropping_ocr import rectify_region
from .reading_order_ocr import reading_order

# Settings of the detector's `post_process_text_detection` a caller may pass per call.
DETECTION_ARGUMENTS = (
    "threshold",
    "box_type",
    "unclip_ratio",
    "min_score",
    "min_size",
    "max_candidates",
    "approx_ratio",
    "preset",
)


# Detected regions hug the ink (TCM/DB polygons are unclipped back to the word's own outline), while recognizers
# learn from crops with some background around the word (word-crop datasets, and the synthetic crops here: 5-35%
# of the height per side). The embedded recognizer reads 9 of the 13 sample words from tight crops, all 13 with
# 0.1-0.3 of the height added on every side.
DEFAULT_CROP_MARGIN = 0.15


class OcrPipeline(Pipeline):
    """Reads whole scenes: detect text regions, rectify each into a straight crop, recognize the crops.

    The pipeline's model is the detector (TCM / DBNet, with its image processor); the recognizer (CLIP4STR,
    with its processor) is a second folder given as `recognizer`:

    ```python
    from transformers import pipeline

    ocr = pipeline("ocr", model="path/to/detector", recognizer="path/to/recognizer", trust_remote_code=True)
    ocr("scene.jpg")
    # [{"polygon": [[x, y], ...], "box": {"xmin", "ymin", "xmax", "ymax"}, "text": "OPEN", "score": 0.97,
    #   "detection_score": 0.88}, ...]   (in reading order)
    ```

    Args:
        recognizer (`str`, `os.PathLike` or `PreTrainedModel`): a recognizer folder / Hub id, or a loaded model
            (then give `recognizer_processor`). A folder or id is loaded with `AutoModel` and `AutoProcessor`
            and `recognizer_kwargs` (default `{"trust_remote_code": True}`: its code is trusted as the
            detector's was when this custom pipeline was created; pass `{"trust_remote_code": False}` to
            refuse it, or add a `revision`). It runs on the pipeline's device and, when `dtype` is given,
            in that dtype.
        recognizer_processor (`ProcessorMixin`, *optional*): the recognizer's processor when `recognizer` is
            a model.

    Call-time settings: the detector's post-processing (`threshold`, `min_score`, `unclip_ratio`, `box_type`,
    `preset`, ...), `recognizer_batch_size` (crops recognized per forward pass, across all images of a batch;
    default 32) and `crop_margin` (image around each region given to the recognizer, as a fraction of the
    region's height per side; default 0.15). Results are in pixels of the original image; `box` is clipped to
    it, `score` is the recognizer's confidence and `detection_score` the detector's.
    """

    _load_image_processor = True
    _load_processor = False
    _load_tokenizer = False
    _load_feature_extractor = False

    def __init__(
        self,
        *args: Any,
        recognizer: str | os.PathLike | PreTrainedModel | None = None,
        recognizer_processor: ProcessorMixin | None = None,
        recognizer_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        dtype = kwargs.get("dtype")
        super().__init__(*args, **kwargs)
        if recognizer is None:
            raise ValueError(
                "the ocr pipeline needs a recognizer: pipeline('ocr', model=DETECTOR, recognizer=RECOGNIZER, "
                "trust_remote_code=True)"
            )
        if isinstance(recognizer, str | os.PathLike):
            options = {"trust_remote_code": True, **(recognizer_kwargs or {})}
            if dtype is not None:
                options.setdefault("dtype", dtype)
            recognizer_processor = recognizer_processor or AutoProcessor.from_pretrained(
                recognizer, **{k: v for k, v in options.items() if k != "dtype"}
            )
            recognizer = AutoModel.from_pretrained(recognizer, **options)
        elif not isinstance(recognizer, PreTrainedModel):
            raise TypeError(
                f"recognizer must be a folder, Hub id or PreTrainedModel, got {type(recognizer).__name__}"
            )
        if recognizer_processor is None:
            raise ValueError("recognizer_processor is required when recognizer is a loaded model")
        self.recognizer = recognizer.to(self.device).eval()
        self.recognizer_processor = recognizer_processor

    def _sanitize_parameters(
        self,
        timeout: float | None = None,
        recognizer_batch_size: int | None = None,
        crop_margin: float | None = None,
        **kwargs: Any,
    ) -> tuple[dict, dict, dict]:
        unknown = set(kwargs) - set(DETECTION_ARGUMENTS)
        if unknown:
            raise TypeError(
                f"ocr got unexpected arguments {sorted(unknown)}; detection settings are {list(DETECTION_ARGUMENTS)}"
                ", recognizer_batch_size and crop_margin"
            )
        forward = {"detection_settings": kwargs}
        if crop_margin is not None:
            if crop_margin < 0:
                raise ValueError(f"crop_margin must be >= 0, got {crop_margin}")
            forward["crop_margin"] = crop_margin
        if recognizer_batch_size is not None:
            if recognizer_batch_size < 1:
                raise ValueError(f"recognizer_batch_size must be >= 1, got {recognizer_batch_size}")
            forward["recognizer_batch_size"] = recognizer_batch_size
        return ({} if timeout is None else {"timeout": timeout}), forward, {}

    def preprocess(self, image: Any, timeout: float | None = None) -> dict[str, np.ndarray]:
        return {"image": _rgb_array(image, timeout)}

    def _forward(
        self,
        model_inputs: dict[str, Any],
        detection_settings: dict | None = None,
        recognizer_batch_size: int = 32,
        crop_margin: float = DEFAULT_CROP_MARGIN,
    ) -> dict[str, list]:
        images = model_inputs["image"]
        images = images if isinstance(images, list) else [images]
        batch = self.image_processor(images)
        pixel_values = batch["pixel_values"].to(self.device, self.dtype)
        # DB post-processing reads only the probability map: skip the threshold branch
        outputs = self.model(pixel_values, output_threshold_maps=False)
        detections = self.image_processor.post_process_text_detection(
            outputs.prob_map.float(),
            target_sizes=batch["original_sizes"],
            resized_sizes=batch["resized_sizes"],
            **(detection_settings or {}),
        )
        regions, crops = [], []
        for image, found in zip(images, detections, strict=True):
            image_regions = []
            for score, box, polygon in zip(found["scores"], found["boxes"], found["polygons"], strict=True):
                image_regions.append(
                    {"polygon": polygon.numpy(), "box": box.tolist(), "detection_score": score}
                )
                crops.append(rectify_region(image, polygon.numpy(), crop_margin))
            regions.append(image_regions)
        readings = self._recognize(crops, recognizer_batch_size)
        flat = [region for image_regions in regions for region in image_regions]
        for region, (text, score) in zip(flat, readings, strict=True):
            region["text"], region["score"] = text, score
        return {"regions": regions}

    def _recognize(self, crops: list[np.ndarray], batch_size: int) -> list[tuple[str, float]]:
        readings = []
        for start in range(0, len(crops), batch_size):
            pixel_values = self.recognizer_processor(images=crops[start : start + batch_size])["pixel_values"]
            logits = self.recognizer(pixel_values.to(self.device, self.recognizer.dtype)).logits
            decoded = self.recognizer_processor.batch_decode(logits.float())
            readings.extend(zip(decoded["generated_text"], decoded["scores"], strict=True))
        return readings

    def postprocess(self, model_outputs: dict[str, list]) -> list[dict[str, Any]]:
        regions = model_outputs["regions"]
        # a single input run without the batching iterator keeps its batch of one
        if len(regions) == 1 and isinstance(regions[0], list):
            regions = regions[0]
        order = reading_order([region["box"] for region in regions])
        return [
            {
                "polygon": regions[index]["polygon"].tolist(),
                "box": dict(
                    zip(
                        ("xmin", "ymin", "xmax", "ymax"),
                        (round(v) for v in regions[index]["box"]),
                        strict=True,
                    )
                ),
                "text": regions[index]["text"],
                "score": float(regions[index]["score"]),
                "detection_score": float(regions[index]["detection_score"]),
            }
            for index in order
        ]


def _rgb_array(image: Any, timeout: float | None = None) -> np.ndarray:
    """An (H, W, 3) uint8 RGB array of a path/URL (EXIF orientation applied), PIL image or numpy array; both
    the detector and the cropping read this one array, so their coordinates agree."""
    if isinstance(image, str):
        image = load_image(image, timeout=timeout)
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise TypeError(f"ocr takes file paths, PIL images or numpy arrays, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"numpy images must be uint8 RGB, got dtype {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"numpy images must be (H, W), (H, W, 3) or (H, W, 4), got shape {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"the image is empty ({image.shape[1]}x{image.shape[0]} pixels)")
    return np.ascontiguousarray(image[..., :3])
