"""`ocr` pipeline: a text detector finds the words of a scene, a recognizer reads their rectified crops."""

from __future__ import annotations

import os
from typing import Any

from transformers import AutoModel, AutoProcessor, PreTrainedModel, ProcessorMixin

from .crop_recognition import DEFAULT_CROP_MARGIN, recognize_regions
from .onnx_backend import OnnxRecognizer
from .pipeline_tcm import DETECTION_ARGUMENTS, SceneTextDetectionPipeline, detection_settings
from .reading_order_ocr import reading_order
from .tiled_detection import detect_regions


class OcrPipeline(SceneTextDetectionPipeline):
    """Reads whole scenes: detect text regions, rectify each into a straight crop, recognize the crops.

    The scene-text-detection pipeline, whose regions a recognizer then reads: the pipeline's model is the
    detector (TCM / DBNet, with its image processor), the recognizer (CLIP4STR, with its processor) a second
    folder given as `recognizer`. The detector and the cropping read the one image array `preprocess` loads,
    so their coordinates agree:

    ```python
    from transformers import pipeline

    ocr = pipeline("ocr", model="path/to/detector", recognizer="path/to/recognizer", trust_remote_code=True)
    ocr("scene.jpg")
    # [{"polygon": [[x, y], ...], "box": {"xmin", "ymin", "xmax", "ymax"}, "text": "OPEN", "score": 0.97,
    #   "detection_score": 0.88}, ...]   (in reading order)
    ```

    Args:
        recognizer (`str`, `os.PathLike`, `PreTrainedModel` or `OnnxRecognizer`): a recognizer folder / Hub id,
            or a loaded model or ONNX Runtime backend (then give `recognizer_processor`). A folder or id is
            loaded with `AutoModel` and `AutoProcessor` and `recognizer_kwargs` (default
            `{"trust_remote_code": True}`: its code is trusted as the detector's was when this custom pipeline
            was created; pass `{"trust_remote_code": False}` to refuse it, or add a `revision`). It runs on the
            pipeline's device and, when `dtype` is given, in that dtype.
        recognizer_processor (`ProcessorMixin`, *optional*): the recognizer's processor when `recognizer` is
            a model.

    Call-time settings: the detector's post-processing (`threshold`, `min_score`, `unclip_ratio`, `box_type`,
    `preset`, ...), its resize `size` and tiling bound `max_aspect_ratio` (as in the scene-text-detection
    pipeline: images more than 8 times longer than high are read in overlapping tiles), `recognizer_batch_size`
    (crops recognized per forward pass, across all images of a batch; default 32) and `crop_margin` (image
    around each region given to the recognizer, as a fraction of the region's height per side; default 0.15).
    Results are in pixels of the original image; `box` is clipped to it, `score` is the recognizer's confidence
    and `detection_score` the detector's. On CPU a detector in eval mode runs as its `optimize_for_inference()`
    copy, made once when the pipeline is created (the model object itself is not changed). Either model may be
    an ONNX Runtime backend (`OnnxDetector`, `OnnxRecognizer` of folders written by `scenetext export`), with
    the processors saved beside it; the pipeline then runs on the CPU.
    """

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
        elif not isinstance(recognizer, PreTrainedModel | OnnxRecognizer):
            raise TypeError(
                "recognizer must be a folder, Hub id, PreTrainedModel or OnnxRecognizer, got "
                f"{type(recognizer).__name__}"
            )
        if recognizer_processor is None:
            raise ValueError("recognizer_processor is required when recognizer is a loaded model")
        if isinstance(recognizer, OnnxRecognizer):
            if self.device.type != recognizer.device.type:
                raise ValueError(f"an OnnxRecognizer runs on the CPU, but the pipeline runs on {self.device}")
        else:
            recognizer = recognizer.to(self.device).eval()
        self.recognizer = recognizer
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
                f"ocr got unexpected arguments {sorted(unknown)}; detection settings are "
                f"{list(DETECTION_ARGUMENTS)}, recognizer_batch_size and crop_margin"
            )
        forward = detection_settings(kwargs)
        if crop_margin is not None:
            if crop_margin < 0:
                raise ValueError(f"crop_margin must be >= 0, got {crop_margin}")
            forward["crop_margin"] = crop_margin
        if recognizer_batch_size is not None:
            if recognizer_batch_size < 1:
                raise ValueError(f"recognizer_batch_size must be >= 1, got {recognizer_batch_size}")
            forward["recognizer_batch_size"] = recognizer_batch_size
        return ({} if timeout is None else {"timeout": timeout}), forward, {}

    def _forward(
        self,
        model_inputs: dict[str, Any],
        recognizer_batch_size: int = 32,
        crop_margin: float = DEFAULT_CROP_MARGIN,
        **detection: Any,
    ) -> dict[str, list]:
        images = model_inputs["image"]
        images = images if isinstance(images, list) else [images]
        detections = detect_regions(
            self.detector,
            self.image_processor,
            images,
            device=self.device,
            dtype=self.dtype,
            **detection,
        )
        polygons = [[polygon.numpy() for polygon in found["polygons"]] for found in detections]
        readings = recognize_regions(
            self.recognizer, self.recognizer_processor, images, polygons, recognizer_batch_size, crop_margin
        )
        regions = [
            [
                {
                    "polygon": polygon,
                    "box": box.tolist(),
                    "detection_score": score,
                    "text": text,
                    "score": confidence,
                }
                for polygon, box, score, (text, confidence) in zip(
                    image_polygons, found["boxes"], found["scores"], image_readings, strict=True
                )
            ]
            for image_polygons, found, image_readings in zip(polygons, detections, readings, strict=True)
        ]
        return {"regions": regions}

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
