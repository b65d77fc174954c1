"""Character-level tokenizer of CLIP4STR and the label normalisation of its data pipeline."""

from __future__ import annotations

import functools
import json
import os
import re
import unicodedata
from collections.abc import Iterable
from typing import ClassVar

from transformers import PreTrainedTokenizer

# The 94 printable ASCII characters without space, in the order of the official `94_full` charset: the order
# fixes the token ids, so checkpoints trained with it need exactly this string.
DEFAULT_CHARSET = (
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" + "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
)
VOCAB_FILES_NAMES = {"vocab_file": "vocab.json"}


# Unicode normalisations of labels. "ascii" is the official pipeline (NFKD, then every non-ASCII code point
# dropped: accents fall off and other scripts vanish), right for the ASCII protocols and wrong for any other
# script; the Unicode normal forms keep every script ("NFC" composes "a" + combining diaeresis into one "ä", the
# form fonts and keyboards produce); "none" leaves labels as stored.
UNICODE_NORMALIZATIONS = ("ascii", "NFC", "NFKC", "NFD", "NFKD", "none")


class CharsetAdapter:
    """Maps a text onto a target charset the way parseq / CLIP4STR do at training and test time.

    A charset without upper-case letters lower-cases the text first (and one without lower-case letters
    upper-cases it), then every character outside the charset is removed. This is how the 36-character
    lowercase alphanumeric protocol ignores case and punctuation. `fold_case=False` skips the case step
    (a case-sensitive comparison whatever the charset holds, as the "full" evaluation protocol wants).
    """

    def __init__(self, charset: str, fold_case: bool = True) -> None:
        self.charset = charset
        self.lowercase_only = fold_case and charset == charset.lower()
        self.uppercase_only = fold_case and charset == charset.upper()
        self._unsupported = re.compile(f"[^{re.escape(charset)}]")

    def __call__(self, text: str) -> str:
        if self.lowercase_only:
            text = text.lower()
        elif self.uppercase_only:
            text = text.upper()
        return self._unsupported.sub("", text)


@functools.lru_cache(maxsize=16)
def _charset_adapter(charset: str) -> CharsetAdapter:
    # Data pipelines call `preprocess_label` once per sample; compiling the regex once per charset keeps
    # that cheap.
    return CharsetAdapter(charset)


def unicode_normalization(normalize_unicode: bool | str) -> str:
    """The name in `UNICODE_NORMALIZATIONS` of a `normalize_unicode` setting: `True` is the official "ascii"
    folding and `False` is "none", as the boolean options of the data sources have always meant."""
    if normalize_unicode is True:
        return "ascii"
    if normalize_unicode is False:
        return "none"
    if normalize_unicode not in UNICODE_NORMALIZATIONS:
        raise ValueError(
            f"normalize_unicode must be true, false or one of {', '.join(UNICODE_NORMALIZATIONS)}; "
            f"got {normalize_unicode!r}"
        )
    return normalize_unicode


def normalize_label(label: str, remove_whitespace: bool = True, normalize_unicode: bool | str = True) -> str:
    """Whitespace removal and Unicode normalisation, the first two steps of the official label pipeline.

    `normalize_unicode` is one of `UNICODE_NORMALIZATIONS` (or `True` = "ascii", the official NFKD-to-ASCII
    folding, `False` = "none")."""
    form = unicode_normalization(normalize_unicode)
    if remove_whitespace:
        label = "".join(label.split())
    if form == "ascii":
        label = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode()
    elif form != "none":
        label = unicodedata.normalize(form, label)
    return label


def charset_from_labels(
    labels: Iterable[str],
    base_charset: str = "",
    remove_whitespace: bool = True,
    normalize_unicode: bool | str = "NFC",
) -> str:
    """The characters `labels` use after normalisation (`normalize_label`): a charset built from data.

    Characters of `base_charset` (the charset of a checkpoint being fine-tuned) come first, in its order, so a
    model keeps its ids where it can; the others follow in code-point order, which makes the result independent
    of the order the labels are read in. Characters of `base_charset` that no label uses are left out.
    """
    seen: set[str] = set()
    for label in labels:
        seen.update(normalize_label(label, remove_whitespace, normalize_unicode))
    known = [character for character in base_charset if character in seen]
    return "".join(known + sorted(seen - set(known)))


def preprocess_label(
    label: str,
    charset: str,
    max_label_length: int = 25,
    remove_whitespace: bool = True,
    normalize_unicode: bool | str = True,
) -> str | None:
    """The official ground-truth pipeline (parseq `LmdbDataset._preprocess_labels`), with the Unicode
    normalisation as an option (`normalize_label`; the official one is the default).

    Returns the label mapped onto `charset`, or `None` when the sample is dropped: longer than
    `max_label_length` after normalisation (checked *before* charset filtering, as the official code
    does) or empty after charset filtering.
    """
    label = normalize_label(label, remove_whitespace, normalize_unicode)
    if len(label) > max_label_length:
        return None
    label = _charset_adapter(charset)(label)
    return label or None


class Clip4StrTokenizer(PreTrainedTokenizer):
    """Character tokenizer of CLIP4STR / PARSeq: one token per character of `charset`.

    Token ids follow the official `Tokenizer`: `[E]` (end of sequence) is 0, the charset characters are
    1..N in charset order, `[B]` (beginning of sequence) is N+1 and `[P]` (padding) is N+2. The recognition
    head predicts only ids 0..N. Calling the tokenizer encodes labels as `[B] c1 ... cn [E]` padded with
    `[P]`, which is exactly the `labels` tensor the model's `forward` takes::

        tokenizer(["Hello", "a1"], padding=True, return_tensors="pt")["input_ids"]

    Labels are checked before encoding. By default (`normalize=False`) a label must use only charset
    characters and have at most `max_label_length` characters; anything else raises a `ValueError` that names
    the label. With `normalize=True` (at construction or per call) the official data pipeline is applied
    first: whitespace removal, NFKD folding to ASCII, the length limit, then the charset adapter (lower-case
    for a charset without upper-case letters, removal of unsupported characters). A label that pipeline
    would drop (too long, or empty after filtering) still raises, since a batch cannot silently lose a
    sample; use [`~Clip4StrTokenizer.preprocess_label`], which returns `None` for those, to filter a dataset.

    Args:
        vocab_file (`str`, *optional*):
            A `vocab.json` written by `save_pretrained` (token -> id). When given, the charset is read from it.
        charset (`str`, *optional*):
            The characters the model reads, in id order. Defaults to the official 94-character charset.
        max_label_length (`int`, *optional*, defaults to 25):
            The longest label the model decodes (the official `max_label_length`).
        normalize (`bool`, *optional*, defaults to `False`):
            Whether labels go through the official normalisation instead of being rejected when they do not
            fit the charset as given.
        normalize_unicode (`bool` or `str`, *optional*, defaults to `True`):
            The Unicode step of that normalisation (`UNICODE_NORMALIZATIONS`): `True` / "ascii" is the official
            NFKD-to-ASCII folding, which removes every non-ASCII character; a charset of another script needs
            "NFC" (or "NFKC", "none"). Used by `preprocess_label` and by `normalize=True`.
    """

    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names: ClassVar[list[str]] = ["input_ids"]

    def __init__(
        self,
        vocab_file: str | None = None,
        charset: str | None = None,
        max_label_length: int = 25,
        normalize: bool = False,
        normalize_unicode: bool | str = True,
        eos_token: str = "[E]",
        bos_token: str = "[B]",
        pad_token: str = "[P]",
        **kwargs,
    ) -> None:
        # `from_pretrained` hands the special tokens back as `AddedToken` objects.
        eos_token, bos_token, pad_token = str(eos_token), str(bos_token), str(pad_token)
        if vocab_file is not None:
            vocab_charset = _charset_from_vocab_file(vocab_file, eos_token, bos_token, pad_token)
            if charset is not None and charset != vocab_charset:
                raise ValueError(
                    f"charset {charset!r} does not match the charset stored in {vocab_file} ({vocab_charset!r})"
                )
            charset = vocab_charset
        charset = DEFAULT_CHARSET if charset is None else charset
        _check_charset(charset)
        if not isinstance(max_label_length, int) or max_label_length < 1:
            raise ValueError(f"max_label_length must be a positive integer, got {max_label_length!r}")
        self.charset = charset
        self.max_label_length = max_label_length
        self.normalize = normalize
        unicode_normalization(normalize_unicode)  # fails early on an unknown form
        self.normalize_unicode = normalize_unicode
        tokens = [eos_token, *charset, bos_token, pad_token]
        self.vocab = {token: index for index, token in enumerate(tokens)}
        self.ids_to_tokens = dict(enumerate(tokens))
        # `padding="max_length"` then gives the fixed [B] + 25 characters + [E] layout.
        kwargs.setdefault("model_max_length", max_label_length + 2)
        # `[B] ... [E]` around every label, as the official `Tokenizer.encode`.
        kwargs["special_tokens_pattern"] = "bos_eos"
        # Labels are plain text: "[E]" typed in a label is the three characters '[', 'E', ']'.
        kwargs["split_special_tokens"] = True
        super().__init__(
            charset=charset,
            max_label_length=max_label_length,
            normalize=normalize,
            normalize_unicode=normalize_unicode,
            eos_token=eos_token,
            bos_token=bos_token,
            pad_token=pad_token,
            **kwargs,
        )

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)

    def preprocess_label(self, label: str) -> str | None:
        """The official label pipeline for this tokenizer's charset; `None` when the sample would be dropped."""
        return preprocess_label(
            label, self.charset, self.max_label_length, normalize_unicode=self.normalize_unicode
        )

    def check_label(self, label: str, normalize: bool | None = None) -> str:
        """Return the label that will be encoded, or raise a `ValueError` saying why it cannot be.

        `normalize` overrides the tokenizer's `normalize` setting for this call.
        """
        if not isinstance(label, str):
            raise TypeError(f"a label must be a str, got {type(label).__name__}: {label!r}")
        normalize = self.normalize if normalize is None else normalize
        if normalize:
            normalized = normalize_label(label, normalize_unicode=self.normalize_unicode)
            if len(normalized) > self.max_label_length:
                raise ValueError(
                    f"label {label!r} has {len(normalized)} characters after whitespace removal and Unicode "
                    f"folding, more than max_label_length={self.max_label_length}; the official pipeline drops "
                    "such samples (filter them with `preprocess_label`, which returns None)"
                )
            adapted = _charset_adapter(self.charset)(normalized)
            if not adapted:
                raise ValueError(
                    f"label {label!r} has no character of the charset after normalisation; the official "
                    "pipeline drops such samples (filter them with `preprocess_label`, which returns None)"
                )
            return adapted
        unsupported = sorted(set(label) - set(self.charset))
        if unsupported:
            raise ValueError(
                f"label {label!r} has characters outside the {len(self.charset)}-character charset: "
                f"{''.join(unsupported)!r}; expected only characters of {self.charset!r}, or pass "
                "normalize=True to apply the official normalisation (whitespace removal, accents folded to "
                "ASCII, case folded for a caseless charset, unsupported characters removed)"
            )
        if len(label) > self.max_label_length:
            raise ValueError(
                f"label {label!r} has {len(label)} characters, more than max_label_length="
                f"{self.max_label_length}"
            )
        if not label:
            # The official pipeline never trains on empty labels: it drops them.
            raise ValueError("label '' is empty; expected at least one character")
        return label

    def prepare_for_tokenization(
        self, text: str, is_split_into_words: bool = False, normalize: bool | None = None, **kwargs
    ) -> tuple[str, dict]:
        return self.check_label(text, normalize), kwargs

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        return list(text)

    def _convert_token_to_id(self, token: str) -> int:
        if token not in self.vocab:
            raise ValueError(f"token {token!r} is not in the vocabulary ([E], the charset, [B], [P])")
        return self.vocab[token]

    def _convert_id_to_token(self, index: int) -> str:
        if index not in self.ids_to_tokens:
            raise ValueError(f"token id {index} is outside the vocabulary of {len(self.vocab)} tokens")
        return self.ids_to_tokens[index]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        # Characters, not words: no separator between tokens.
        return "".join(tokens)

    def _decode(self, token_ids: int | list[int], skip_special_tokens: bool = False, **kwargs) -> str:
        """Ids to text. With `skip_special_tokens=True` the text ends at the first `[E]`, as the official
        greedy decoding: what a model emits after its end-of-sequence token is not part of the text."""
        token_ids = [token_ids] if isinstance(token_ids, int) else list(token_ids)
        if skip_special_tokens and self.eos_token_id in token_ids:
            token_ids = token_ids[: token_ids.index(self.eos_token_id)]
        return super()._decode(token_ids, skip_special_tokens=skip_special_tokens, **kwargs)

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        if not os.path.isdir(save_directory):
            raise FileNotFoundError(f"cannot save the vocabulary: {save_directory} is not a directory")
        vocab_file = os.path.join(
            save_directory,
            (filename_prefix + "-" if filename_prefix else "") + VOCAB_FILES_NAMES["vocab_file"],
        )
        with open(vocab_file, "w", encoding="utf-8") as handle:
            json.dump(self.vocab, handle, indent=1, ensure_ascii=False)
            handle.write("\n")
        return (vocab_file,)


def _check_charset(charset: str) -> None:
    if not isinstance(charset, str) or not charset:
        raise ValueError(f"charset must be a non-empty string, got {charset!r}")
    repeated = sorted({c for c in charset if charset.count(c) > 1})
    if repeated:
        raise ValueError(
            f"charset has repeated characters {''.join(repeated)!r}; each character needs one id"
        )


def _charset_from_vocab_file(vocab_file: str, eos_token: str, bos_token: str, pad_token: str) -> str:
    """Read the charset back from a `vocab.json` laid out as `[E]`, charset, `[B]`, `[P]`."""
    try:
        with open(vocab_file, encoding="utf-8") as handle:
            vocab = json.load(handle)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"vocabulary file {vocab_file} does not exist") from error
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    expected_ids = list(range(len(tokens)))
    ids = sorted(vocab.values())
    if (
        ids != expected_ids
        or len(tokens) < 4
        or tokens[0] != eos_token
        or tokens[-2:] != [bos_token, pad_token]
        or any(len(token) != 1 for token in tokens[1:-2])
    ):
        raise ValueError(
            f"{vocab_file} is not a CLIP4STR vocabulary: expected ids 0..N+2 for {eos_token}, N single "
            f"characters, {bos_token}, {pad_token}"
        )
    return "".join(tokens[1:-2])


Clip4StrTokenizer.register_for_auto_class("AutoTokenizer")
