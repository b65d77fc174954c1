"""CLIP4STR processor: images and labels in, `pixel_values`/`labels` out; logits back to text."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from transformers import ProcessorMixin
from transformers.image_processing_utils import BatchFeature

from .image_processing_clip4str import Clip4StrImageProcessor
from .tokenization_clip4str import Clip4StrTokenizer


class Clip4StrProcessor(ProcessorMixin):
    """Wraps a [`Clip4StrImageProcessor`] and a [`Clip4StrTokenizer`].

    `processor(images=..., text=...)` gives the model's inputs: `pixel_values`, and `labels` (`[B] ... [E]`
    padded with `[P]`) when text is given. `processor.batch_decode(outputs.logits)` turns the model's logits
    into text and confidences with the official greedy decoding.

    Args:
        image_processor ([`Clip4StrImageProcessor`]): resizes and normalises the images.
        tokenizer ([`Clip4StrTokenizer`]): the character vocabulary and label normalisation.
    """

    def __init__(self, image_processor: Clip4StrImageProcessor, tokenizer: Clip4StrTokenizer) -> None:
        super().__init__(image_processor, tokenizer)

    def __call__(
        self,
        images: Any = None,
        text: str | list[str] | None = None,
        return_tensors: str | None = "pt",
        normalize: bool | None = None,
        **images_kwargs: Any,
    ) -> BatchFeature:
        """Prepare images and/or labels for the model.

        Args:
            images: one image or a batch, in any form [`Clip4StrImageProcessor`] accepts.
            text (`str` or `list[str]`): the labels. They are checked (or normalised, with
                `normalize=True`) by the tokenizer and encoded as `[B] ... [E]` padded with `[P]`.
            return_tensors (`str`, *optional*, defaults to `"pt"`): `"pt"` or `"np"`.
            normalize (`bool`, *optional*): overrides the tokenizer's `normalize` setting for this call.
            images_kwargs: passed to the image processor (`size`, `image_mean`, `image_std`, ...).

        Returns:
            [`BatchFeature`] with `pixel_values` when images are given and `labels` when text is given.
        """
        if images is None and text is None:
            raise ValueError("Clip4StrProcessor needs `images`, `text` or both; got neither")
        data = {}
        if images is not None:
            data.update(self.image_processor(images, return_tensors=return_tensors, **images_kwargs))
        if text is not None:
            if isinstance(text, str):
                text = [text]
            encoded = self.tokenizer(text, padding=True, return_tensors=return_tensors, normalize=normalize)
            data["labels"] = encoded["input_ids"]
            if images is not None and len(data["labels"]) != len(data["pixel_values"]):
                raise ValueError(
                    f"got {len(data['pixel_values'])} images but {len(data['labels'])} labels; expected one "
                    "label per image"
                )
        return BatchFeature(data=data, tensor_type=return_tensors)

    def batch_decode(self, logits: torch.Tensor | np.ndarray) -> dict[str, list]:
        """Greedy decoding of recognition logits, as parseq's `Tokenizer.decode`.

        Each position takes its most probable class; the text stops at the first `[E]`. The score of a
        sample is the product of the maximum softmax probabilities of the kept characters and of the `[E]`
        position that ended them (every position when no `[E]` was predicted).

        Args:
            logits (`torch.Tensor` of shape `(batch, positions, len(charset) + 1)`):
                The model's `logits` (classes `[E]` and the charset; `[B]` and `[P]` are never predicted).

        Returns:
            `dict` with `generated_text` (`list[str]`) and `scores` (`list[float]`).
        """
        if not isinstance(logits, torch.Tensor | np.ndarray):
            raise TypeError(
                f"batch_decode expects the logits tensor (outputs.logits), got {type(logits).__name__}"
            )
        logits = torch.as_tensor(logits)
        if not torch.is_floating_point(logits):
            raise TypeError(
                f"batch_decode expects floating-point logits, got dtype {logits.dtype}; decode token ids "
                "with `processor.tokenizer.batch_decode(ids, skip_special_tokens=True)`"
            )
        num_classes = len(self.tokenizer.charset) + 1
        if logits.ndim != 3 or logits.shape[-1] != num_classes:
            raise ValueError(
                f"logits must have shape (batch, positions, {num_classes}) for [E] + the "
                f"{len(self.tokenizer.charset)}-character charset, got {tuple(logits.shape)}"
            )
        probabilities, ids = logits.float().softmax(-1).max(-1)
        is_end = ids == self.tokenizer.eos_token_id
        positions = torch.arange(ids.shape[1], device=ids.device)
        # Index of the first [E], or the sequence length when there is none.
        first_end = torch.where(is_end, positions, ids.shape[1]).min(-1).values
        kept_in_score = positions[None, :] <= first_end[:, None]
        scores = torch.where(kept_in_score, probabilities, torch.ones_like(probabilities)).prod(-1)
        texts = [
            "".join(self.tokenizer.charset[i - 1] for i in sample[:end])
            for sample, end in zip(ids.tolist(), first_end.tolist(), strict=True)
        ]
        return {"generated_text": texts, "scores": scores.tolist()}

    @classmethod
    def _get_arguments_from_pretrained(
        cls, pretrained_model_name_or_path: str, processor_dict: dict | None = None, **kwargs: Any
    ) -> list[Any]:
        # The parts are this folder's own classes. Loading them directly, rather than through the Auto
        # classes as `ProcessorMixin` does, needs no second `trust_remote_code` and gives the same classes
        # whether the package is installed or the code came with a Hub folder.
        kwargs.pop("trust_remote_code", None)
        return [
            Clip4StrImageProcessor.from_pretrained(pretrained_model_name_or_path, **kwargs),
            Clip4StrTokenizer.from_pretrained(pretrained_model_name_or_path, **kwargs),
        ]

    @property
    def model_input_names(self) -> list[str]:
        return ["pixel_values"]


Clip4StrProcessor.register_for_auto_class("AutoProcessor")
