"""`scene-text-detection` pipeline: scenes in, text regions (score, label, box, polygon) in image pixels out."""

from __future__ import annotations

from typing import Any

from transformers import Pipeline

from .image_loading import load_rgb_image, split_image_batch

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
    Images of a batch are padded together (`batch_size`); post-processing settings (`threshold`,
    `min_score`, `unclip_ratio`, `box_type`, `preset`, ...) can be given per call and default to the image
    processor's `post_processing`.

    On CPU a detector in eval mode runs as its `optimize_for_inference()` copy, made once when the pipeline is
    created (same maps within float rounding; the copy shares the model's unfused weights and the model object
    itself is not changed): create a new pipeline after changing the model's weights.
    """

    _load_image_processor = True
    _load_processor = False
    _load_tokenizer = False
    _load_feature_extractor = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.detector = detector_for_inference(self.model)

    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        return super().__call__(split_image_batch(inputs), **kwargs)

    def _sanitize_parameters(self, timeout: float | None = None, **kwargs: Any) -> tuple[dict, dict, dict]:
        unknown = set(kwargs) - set(POST_PROCESSING_ARGUMENTS)
        if unknown:
            raise TypeError(
                f"scene-text-detection got unexpected arguments {sorted(unknown)}; post-processing settings are "
                f"{list(POST_PROCESSING_ARGUMENTS)}"
            )
        # PAN and FCENet outputs are post-processed in `_forward` (their maps are not one map per image).
        return ({} if timeout is None else {"timeout": timeout}), kwargs, kwargs

    def preprocess(self, image: Any, timeout: float | None = None) -> dict[str, Any]:
        # Images stay unresized here: the image processor pads each batch to its own largest size in `_forward`,
        # which the pipeline's generic collation (concatenation of equal-sized tensors) cannot do.
        return {"image": load_rgb_image(image, timeout=timeout)}

    def _forward(self, model_inputs: dict[str, Any], **settings: Any) -> dict[str, list]:
        images = model_inputs["image"]
        images = images if isinstance(images, list) else [images]
        batch = self.image_processor(images)
        pixel_values = batch["pixel_values"].to(self.device, self.dtype)
        # post-processing reads only the probability map: skip the threshold branch
        outputs = self.detector(pixel_values, output_threshold_maps=False)
        if getattr(outputs, "prob_map", None) is None:  # a PAN or FCENet head
            detections = self.image_processor.post_process_text_detection(
                outputs,
                target_sizes=batch["original_sizes"],
                resized_sizes=batch["resized_sizes"],
                **settings,
            )
            return {"detections": detections}
        # post-processing reads each map only inside its image's own padded area, given the sizes below
        return {
            "prob_map": list(outputs.prob_map.float().cpu()),
            "original_size": batch["original_sizes"].tolist(),
            "resized_size": batch["resized_sizes"].tolist(),
        }

    def postprocess(self, model_outputs: dict[str, Any], **settings: Any) -> list[dict[str, Any]]:
        if "detections" in model_outputs:
            return format_detections(_unwrap(model_outputs["detections"]))
        prob_map, original_size, resized_size = (
            _unwrap(model_outputs[key]) for key in ("prob_map", "original_size", "resized_size")
        )
        # (1, 1, H, W) once the batching iterator has unrolled (and re-batched) it, (1, H, W) otherwise
        prob_map = prob_map.reshape(1, *prob_map.shape[-2:])
        (detections,) = self.image_processor.post_process_text_detection(
            prob_map, target_sizes=[original_size], resized_sizes=[resized_size], **settings
        )
        return format_detections(detections)


def detector_for_inference(model: Any) -> Any:
    """What a pipeline runs to detect: on CPU, for a model in eval mode that offers it, the model's
    `optimize_for_inference()` copy (an eval-only detector computing the same maps faster); else the model."""
    if model.device.type != "cpu" or model.training or not hasattr(model, "optimize_for_inference"):
        return model
    return model.optimize_for_inference()


def _unwrap(value: Any) -> Any:
    """One image's entry of a `_forward` output: a one-element list when the pipeline ran a single input
    without its batching iterator, the bare entry when the iterator already unrolled the batch."""
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


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
