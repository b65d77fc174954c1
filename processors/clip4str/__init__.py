"""CLIP4STR pre- and post-processing: character tokenizer, image processor and the processor joining them."""

from .image_processing_clip4str import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, Clip4StrImageProcessor
from .processing_clip4str import Clip4StrProcessor
from .tokenization_clip4str import (
    DEFAULT_CHARSET,
    CharsetAdapter,
    Clip4StrTokenizer,
    normalize_label,
    preprocess_label,
)

__all__ = [
    "DEFAULT_CHARSET",
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "CharsetAdapter",
    "Clip4StrImageProcessor",
    "Clip4StrProcessor",
    "Clip4StrTokenizer",
    "normalize_label",
    "preprocess_label",
]
