"""Character-level tokenizer of CLIP4STR and the label normalisation of its data pipeline."""

from __future__ import annotations

import re
import unicodedata


class CharsetAdapter:
    """Maps a text onto a target charset the way parseq / CLIP4STR do at training and test time.

    A charset without upper-case letters lower-cases the text first (and one without lower-case letters
    upper-cases it), then every character outside the charset is removed. This is how the 36-character
    lowercase alphanumeric protocol ignores case and punctuation.
    """

    def __init__(self, charset: str) -> None:
        self.charset = charset
        self.lowercase_only = charset == charset.lower()
        self.uppercase_only = charset == charset.upper()
        self._unsupported = re.compile(f"[^{re.escape(charset)}]")

    def __call__(self, text: str) -> str:
        if self.lowercase_only:
            text = text.lower()
        elif self.uppercase_only:
            text = text.upper()
        return self._unsupported.sub("", text)


def normalize_label(label: str, remove_whitespace: bool = True, normalize_unicode: bool = True) -> str:
    """Whitespace removal and NFKD-to-ASCII folding, the first two steps of the official label pipeline."""
    if remove_whitespace:
        label = "".join(label.split())
    if normalize_unicode:
        label = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode()
    return label


def preprocess_label(
    label: str,
    charset: str,
    max_label_length: int = 25,
    remove_whitespace: bool = True,
    normalize_unicode: bool = True,
) -> str | None:
    """The official ground-truth pipeline (parseq `LmdbDataset._preprocess_labels`).

    Returns the label mapped onto `charset`, or `None` when the sample is dropped: longer than
    `max_label_length` after normalisation (checked *before* charset filtering, as the official code
    does) or empty after charset filtering.
    """
    label = normalize_label(label, remove_whitespace, normalize_unicode)
    if len(label) > max_label_length:
        return None
    label = CharsetAdapter(charset)(label)
    return label or None
