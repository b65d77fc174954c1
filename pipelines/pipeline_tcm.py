"""`scene-text-detection` pipeline: scenes in, text regions (score, label, box, polygon) in image pixels out."""

from __future__ import annotations

from typing import Any

import numpy as np
from transformers import Pipeline

from .image_loading import load_rgb_image, split_image_batch
from .onnx_backend import on_backend_device
from .tiled_detection import detect_regions

# Settings of `TcmImageProcessor.post_process_text_detection` a caller may pass per call.
POST_PROCESSING_ARGUMENTS = (
    "threshold",
    "box_type",
    "unclip_ratio",
    "min_score",
    "min_size",
    "max_candidates",
    "approx_ratio",
    "preset",
)
# All call-time detection settings: post-processing, the image processor's resize, the tiling bound.
DETECTION_ARGUMENTS = (*POST_PROCESSING_ARGUMENTS, "size", "max_aspect_ratio")


class SceneTextDetectionPipeline(Pipeline):
    """Finds text regions with a TCM / DBNet detector and its image processor.

    ```python
    from transformers import pipeline

    detector = pipeline("scene-text-detection", model="path/to/detector", trust_remote_code=True)
    detector("scene.jpg")
    # [{"score": 0.91, "label": "text", "box": {"xmin": 12, "ymin": 40, "xmax": 96, "ymax": 61},
    #   "polygon": [[12.0, 40.5], [96.2, 40.5], [96.2, 61.0], [12.0, 61.0]]}, ...]
    ```

    Results follow the object-detection pipeline (`score`, `label`, integer `box` in pixels of the original
    image, clipped to it) plus the region's `polygon` (4 points for quads, more for curved text; not clipped).
    Images of a batch are padded together (`batch_size`). Call-time settings: post-processing (`threshold`,
    `min_score`, `unclip_ratio`, `box_type`, `preset`, ...; default the image processor's `post_processing`),
    `size` (the resize, in any form `TcmImageProcessor` takes; default its `size`) and `max_aspect_ratio`
    (images longer than that many times their height, or the reverse, are read in overlapping tiles and their
    regions merged; default 8, `math.inf` reads every image whole).

    On CPU a detector in eval mode runs as its `optimize_for_inference()` copy, made once when the pipeline is
    created (same maps within float rounding; the copy shares the model's unfused weights and the model object
    itself is not changed): create a new pipeline after changing the model's weights. The model may also be an
    `OnnxDetector` (an exported folder run by ONNX Runtime on the CPU) with the same image processor:

    ```python
    detector = SceneTextDetectionPipeline(
        model=OnnxDetector("detector-onnx"), image_processor=TcmImageProcessor.from_pretrained("detector-onnx")
    )
    ```
    """

    _load_image_processor = True
    _load_processor = False
    _load_tokenizer = False
    _load_feature_extractor = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **on_backend_device(args, kwargs))
        self.detector = detector_for_inference(self.model)

    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        return super().__call__(split_image_batch(inputs), **kwargs)

    def _sanitize_parameters(self, timeout: float | None = None, **kwargs: Any) -> tuple[dict, dict, dict]:
        unknown = set(kwargs) - set(DETECTION_ARGUMENTS)
        if unknown:
            raise TypeError(
                f"scene-text-detection got unexpected arguments {sorted(unknown)}; detection settings are "
                f"{list(DETECTION_ARGUMENTS)}"
            )
        return ({} if timeout is None else {"timeout": timeout}), detection_settings(kwargs), {}

    def preprocess(self, image: Any, timeout: float | None = None) -> dict[str, Any]:
        # Images stay unresized here: the image processor pads each batch to its own largest size in `_forward`,
        # which the pipeline's generic collation (concatenation of equal-sized tensors) cannot do.
        return {"image": np.asarray(load_rgb_image(image, timeout=timeout))}

    def _forward(self, model_inputs: dict[str, Any], **settings: Any) -> dict[str, list]:
        images = model_inputs["image"]
        images = images if isinstance(images, list) else [images]
        detections = detect_regions(
            self.detector, self.image_processor, images, device=self.device, dtype=self.dtype, **settings
        )
        return {"detections": detections}

    def postprocess(self, model_outputs: dict[str, Any]) -> list[dict[str, Any]]:
        detections = model_outputs["detections"]
        # a one-element list when the pipeline ran a single input without its batching iterator, the bare entry
        # when the iterator already unrolled the batch
        if isinstance(detections, list):
            (detections,) = detections
        return format_detections(detections)


def detection_settings(arguments: dict[str, Any]) -> dict[str, Any]:
    """The detection settings a pipeline was given (at creation or call), as `detect_regions` keyword arguments.

    Only the given ones are returned: transformers lays call-time parameters over creation-time ones key by key,
    so a setting absent here keeps the value the pipeline was created with. Values are checked by the image
    processor when it uses them, `max_aspect_ratio` here."""
    given = {key: value for key, value in arguments.items() if value is not None}
    if given.get("max_aspect_ratio", 1) < 1:
        raise ValueError(f"max_aspect_ratio must be >= 1, got {given['max_aspect_ratio']}")
    return given


def detector_for_inference(model: Any) -> Any:
    """What a pipeline runs to detect: on CPU, for a model in eval mode that offers it, the model's
    `optimize_for_inference()` copy (an eval-only detector computing the same maps faster); else the model."""
    if model.device.type != "cpu" or model.training or not hasattr(model, "optimize_for_inference"):
        return model
    return model.optimize_for_inference()


def format_detections(detections: dict[str, Any]) -> list[dict[str, Any]]:
    """Post-processed regions of one image -> object-detection-style dicts with the polygon."""
    return [
        {
            "score": float(score),
            "label": "text",
            "box": dict(zip(("xmin", "ymin", "xmax", "ymax"), (round(v) for v in box.tolist()), strict=True)),
            "polygon": polygon.tolist(),
        }
        for score, box, polygon in zip(
            detections["scores"], detections["boxes"], detections["polygons"], strict=True
        )
    ]
