"""`scene-text-recognition` pipeline (also `image-to-text`): word crops in, `[{"generated_text", "score"}]` out."""

from __future__ import annotations

from typing import Any

import torch
from transformers import Pipeline

from .image_loading import load_rgb_image


class SceneTextRecognitionPipeline(Pipeline):
    """Reads the word in each image with a CLIP4STR recognizer and its processor.

    ```python
    from transformers import pipeline

    reader = pipeline("scene-text-recognition", model="path/to/recognizer", trust_remote_code=True)
    reader("word.png")  # [{"generated_text": "hello", "score": 0.98}]
    reader(["a.png", pil_image, numpy_array], batch_size=8)  # one list per image
    ```

    Inputs are anything `load_rgb_image` reads (file paths, URLs, bytes, PIL images, numpy arrays, torch tensors),
    alone or in a list. The score
    is the product of the per-character confidences (and of the end token), as `Clip4StrProcessor.batch_decode`.
    """

    _load_processor = True
    _load_image_processor = False
    _load_tokenizer = False
    _load_feature_extractor = False

    def _sanitize_parameters(self, timeout: float | None = None, **kwargs: Any) -> tuple[dict, dict, dict]:
        if kwargs:
            raise TypeError(f"scene-text-recognition got unexpected arguments {sorted(kwargs)}")
        return ({} if timeout is None else {"timeout": timeout}), {}, {}

    def preprocess(self, image: Any, timeout: float | None = None) -> dict[str, torch.Tensor]:
        image = load_rgb_image(image, timeout=timeout)
        pixel_values = self.processor(images=image, return_tensors="pt")["pixel_values"]
        return {"pixel_values": pixel_values.to(self.dtype)}

    def _forward(self, model_inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"logits": self.model(model_inputs["pixel_values"]).logits}

    def postprocess(self, model_outputs: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        decoded = self.processor.batch_decode(model_outputs["logits"].float())
        return [
            {"generated_text": text, "score": float(score)}
            for text, score in zip(decoded["generated_text"], decoded["scores"], strict=True)
        ]
