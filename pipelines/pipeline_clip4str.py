"""`scene-text-recognition` pipeline (also `image-to-text`): word crops in, `[{"generated_text", "score"}]` out."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from transformers import Pipeline

from .image_loading import load_rgb_image, split_image_batch
from .onnx_backend import on_backend_device


class SceneTextRecognitionPipeline(Pipeline):
    """Reads the word in each image with a CLIP4STR recognizer and its processor.

    ```python
    from transformers import pipeline

    reader = pipeline("scene-text-recognition", model="path/to/recognizer", trust_remote_code=True)
    reader("word.png")  # [{"generated_text": "hello", "score": 0.98}]
    reader(["a.png", pil_image, numpy_array], batch_size=8)  # one list per image
    ```

    Inputs are anything `load_rgb_image` reads (file paths, URLs, bytes, PIL images, numpy arrays, torch tensors),
    alone or in a list; a 4-D array or tensor is a batch of images (N, C, H, W for tensors). The score is the
    product of the per-character confidences (and of the end token), as `Clip4StrProcessor.batch_decode`.
    `max_new_tokens=n` (or `generate_kwargs={"max_new_tokens": n}`, as image-to-text pipelines take it) caps
    the characters read at n.
    """

    _load_processor = True
    _load_image_processor = False
    _load_tokenizer = False
    _load_feature_extractor = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # the model may be an `OnnxRecognizer` (an exported folder, run by ONNX Runtime on the CPU)
        super().__init__(*args, **on_backend_device(args, kwargs))
        self._use_adapter_processor()
        self._match_charset()

    def _use_adapter_processor(self) -> None:
        """For a PEFT adapter folder (`pipeline(model=ADAPTER)`), transformers loads the processor of the base
        model named in `adapter_config.json`; the one saved beside the adapter is what it was trained with (its
        charset, onto which the model resized itself, and its image normalisation)."""
        adapter = getattr(self.model, "adapter_name_or_path", None)
        if adapter is None or self.processor.tokenizer.name_or_path != self.model.name_or_path:
            return  # no adapter, or a processor that is not the base folder's (the caller chose it)
        # An adapter saved without its processor keeps the base's, with the model's charset (below).
        with contextlib.suppress(OSError):
            self.processor = type(self.processor).from_pretrained(adapter)

    def _match_charset(self) -> None:
        """Decode with the characters the model writes, also when the processor came from elsewhere than the
        model's adapter (see above)."""
        config = getattr(self.model, "config", None)  # an `OnnxRecognizer` has none: its folder is one piece
        if config is None:
            return
        tokenizer = self.processor.tokenizer
        charset = config.charset
        if tokenizer.charset != charset:
            self.processor.tokenizer = type(tokenizer)(
                charset=charset,
                max_label_length=tokenizer.max_label_length,
                normalize=tokenizer.normalize,
                normalize_unicode=getattr(tokenizer, "normalize_unicode", True),
            )

    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        return super().__call__(split_image_batch(inputs), **kwargs)

    def _sanitize_parameters(
        self,
        timeout: float | None = None,
        max_new_tokens: int | None = None,
        generate_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> tuple[dict, dict, dict]:
        if kwargs:
            raise TypeError(
                f"scene-text-recognition got unexpected arguments {sorted(kwargs)}; it takes timeout, "
                f"max_new_tokens and generate_kwargs={{'max_new_tokens': n}}"
            )
        max_new_tokens = _max_new_tokens(max_new_tokens, generate_kwargs)
        postprocess_params = {} if max_new_tokens is None else {"max_new_tokens": max_new_tokens}
        return ({} if timeout is None else {"timeout": timeout}), {}, postprocess_params

    def preprocess(self, image: Any, timeout: float | None = None) -> dict[str, torch.Tensor]:
        image = load_rgb_image(image, timeout=timeout)
        pixel_values = self.processor(images=image, return_tensors="pt")["pixel_values"]
        return {"pixel_values": pixel_values.to(self.dtype)}

    def _forward(self, model_inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"logits": self.model(model_inputs["pixel_values"]).logits}

    def postprocess(
        self, model_outputs: dict[str, torch.Tensor], max_new_tokens: int | None = None
    ) -> list[dict[str, Any]]:
        logits = model_outputs["logits"].float()
        if max_new_tokens is None:
            decoded = self.processor.batch_decode(logits)
            readings = zip(decoded["generated_text"], decoded["scores"], strict=True)
        else:
            readings = self._decode_at_most(logits, max_new_tokens)
        return [{"generated_text": text, "score": float(score)} for text, score in readings]

    def _decode_at_most(self, logits: torch.Tensor, max_new_tokens: int) -> list[tuple[str, float]]:
        """Readings of at most `max_new_tokens` characters. The decoder reads all positions at once, so the
        cap applies to decoding: a word that ends within it is read (and scored, with its end token) as
        without the cap; a longer one is cut after `max_new_tokens` characters and scored on those."""
        decoded = self.processor.batch_decode(logits[:, : max_new_tokens + 1])
        cut = self.processor.batch_decode(logits[:, :max_new_tokens])
        readings = zip(decoded["generated_text"], decoded["scores"], strict=True)
        return [
            (text, score) if len(text) <= max_new_tokens else (cut_text, cut_score)
            for (text, score), cut_text, cut_score in zip(
                readings, cut["generated_text"], cut["scores"], strict=True
            )
        ]


def _max_new_tokens(max_new_tokens: int | None, generate_kwargs: dict[str, Any] | None) -> int | None:
    """The cap on decoded characters given as `max_new_tokens` or in `generate_kwargs` (as image-to-text
    pipelines take it); the other generation settings do not apply to this non-autoregressive read."""
    generate_kwargs = dict(generate_kwargs or {})
    from_generate_kwargs = generate_kwargs.pop("max_new_tokens", None)
    if generate_kwargs:
        raise TypeError(
            f"scene-text-recognition does not use generate_kwargs {sorted(generate_kwargs)}: it reads every "
            "character position at once; only max_new_tokens (a cap on the characters read) applies"
        )
    if (
        max_new_tokens is not None
        and from_generate_kwargs is not None
        and max_new_tokens != from_generate_kwargs
    ):
        raise ValueError(
            f"max_new_tokens={max_new_tokens} and generate_kwargs['max_new_tokens']={from_generate_kwargs} differ"
        )
    cap = max_new_tokens if max_new_tokens is not None else from_generate_kwargs
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise ValueError(f"max_new_tokens must be an integer >= 1, got {cap!r}")
    return cap
