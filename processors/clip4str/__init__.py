"""CLIP4STR pre- and post-processing: character tokenizer, image processor and the processor joining them."""

from .image_processing_clip4str import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, Clip4StrImageProcessor
from .processing_clip4str import Clip4StrProcessor
from .tokenization_clip4str import (
    DEFAULT_CHARSET,
    UNICODE_NORMALIZATIONS,
    CharsetAdapter,
    Clip4StrTokenizer,
    charset_from_labels,
    normalize_label,
    preprocess_label,
)

__all__ = [
    "DEFAULT_CHARSET",
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "UNICODE_NORMALIZATIONS",
    "CharsetAdapter",
    "Clip4StrImageProcessor",
    "Clip4StrProcessor",
    "Clip4StrTokenizer",
    "charset_from_labels",
    "normalize_label",
    "preprocess_label",
]
