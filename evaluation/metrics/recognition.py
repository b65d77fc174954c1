"""Word accuracy, 1-NED, CER, confidence and label length under the standard recognition protocols.

The semantics are parseq's test step (`strhub/models/base.py` `_eval_step`), which CLIP4STR reuses:

* ground truth goes through the official label pipeline (`preprocess_label`: whitespace removal, NFKD to
  ASCII, the 25-character limit *before* charset filtering, then the charset adapter); samples it drops are
  counted nowhere;
* predictions go through the charset adapter only;
* a word is correct on exact equality, NED follows ICDAR 2019 (edit distance / longer length).

Other scripts: the "full" protocol compares case-sensitively on a charset of the caller's (the model's): no case
folding, characters outside the charset removed, and labels normalised to NFC instead of folded to ASCII (which
would erase them). The Unicode normalisation is an explicit option of every protocol (`normalize_unicode`:
"ascii" = the official NFKD-to-ASCII folding, the default of 36/62/94; "NFC", "NFKC", "NFD", "NFKD", "none").
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

from scenetext.processors.clip4str.tokenization_clip4str import (
    CharsetAdapter,
    normalize_label,
    unicode_normalization,
)

# The three test charsets of parseq's `test.py`: default, `--cased`, `--cased --punctuation`.
PROTOCOL_CHARSETS: dict[str, str] = {
    "36": string.digits + string.ascii_lowercase,
    "62": string.digits + string.ascii_lowercase + string.ascii_uppercase,
    "94": string.digits + string.ascii_lowercase + string.ascii_uppercase + string.punctuation,
}
# The protocol for any other charset (other scripts, accents): the charset is given by the caller.
FULL_PROTOCOL = "full"
DEFAULT_PROTOCOL = "36"
MAX_LABEL_LENGTH = 25


def protocol_charset(protocol: str | int, charset: str | None = None) -> str:
    """The test charset of a protocol named by its size (36, 62 or 94), or `charset` for the "full" protocol."""
    if str(protocol) == FULL_PROTOCOL:
        if not charset:
            raise ValueError('the "full" recognition protocol needs the charset to compare on (the model\'s)')
        return charset
    if charset is not None:
        raise ValueError(f'protocol {protocol!r} has its own charset; a charset is only taken by "full"')
    known = PROTOCOL_CHARSETS.get(str(protocol))
    if known is None:
        raise ValueError(f"unknown recognition protocol {protocol!r}; expected one of 36, 62, 94, full")
    return known


def protocol_normalization(protocol: str | int, normalize_unicode: bool | str | None = None) -> str:
    """The Unicode normalisation of labels under `protocol`: `normalize_unicode` when given, else the official
    NFKD-to-ASCII folding for 36/62/94 and NFC for "full"."""
    if normalize_unicode is None:
        return "NFC" if str(protocol) == FULL_PROTOCOL else "ascii"
    return unicode_normalization(normalize_unicode)


@dataclass
class RecognitionScores:
    """Sums over the kept samples of one dataset; rates are derived properties in [0, 1]."""

    num_samples: int = 0
    num_correct: int = 0
    num_dropped: int = 0
    sum_ned: float = 0.0
    sum_edit_distance: int = 0
    sum_label_characters: int = 0
    sum_prediction_length: int = 0
    sum_confidence: float = 0.0
    num_confidences: int = 0

    @property
    def accuracy(self) -> float:
        return self.num_correct / self._require_samples()

    @property
    def one_minus_ned(self) -> float:
        return 1.0 - self.sum_ned / self._require_samples()

    @property
    def character_error_rate(self) -> float:
        """Total edit distance over total ground-truth characters (after preprocessing)."""
        self._require_samples()
        return self.sum_edit_distance / self.sum_label_characters

    @property
    def mean_confidence(self) -> float | None:
        """Mean sequence confidence, or None when no confidences were given."""
        return self.sum_confidence / self.num_confidences if self.num_confidences else None

    @property
    def mean_label_length(self) -> float:
        """Mean length of the adapted predictions, which is what parseq reports as "Label Length"."""
        return self.sum_prediction_length / self._require_samples()

    def __add__(self, other: RecognitionScores) -> RecognitionScores:
        return RecognitionScores(
            **{name: getattr(self, name) + getattr(other, name) for name in self.__dataclass_fields__}
        )

    def _require_samples(self) -> int:
        # An empty dataset has no accuracy; reporting 0% would hide a data problem.
        if self.num_samples == 0:
            raise ValueError("no samples were scored (empty dataset, or every label was dropped)")
        return self.num_samples


class RecognitionAccumulator:
    """Scores batches of predictions against raw ground-truth labels under one protocol."""

    def __init__(
        self,
        protocol: str | int = DEFAULT_PROTOCOL,
        max_label_length: int = MAX_LABEL_LENGTH,
        charset: str | None = None,
        normalize_unicode: bool | str | None = None,
    ):
        self.charset = protocol_charset(protocol, charset)
        self.normalize_unicode = protocol_normalization(protocol, normalize_unicode)
        self.adapt = CharsetAdapter(self.charset, fold_case=str(protocol) != FULL_PROTOCOL)
        self.max_label_length = max_label_length
        self.scores = RecognitionScores()

    def prepare_label(self, label: str) -> str | None:
        """The ground truth as compared, or None when the official pipeline drops the sample."""
        label = normalize_label(label, normalize_unicode=self.normalize_unicode)
        if len(label) > self.max_label_length:
            return None
        return self.adapt(label) or None

    def update(
        self,
        predictions: Sequence[str],
        labels: Sequence[str],
        confidences: Sequence[float] | None = None,
    ) -> None:
        if len(predictions) != len(labels):
            raise ValueError(f"got {len(predictions)} predictions for {len(labels)} labels")
        if confidences is not None and len(confidences) != len(labels):
            raise ValueError(f"got {len(confidences)} confidences for {len(labels)} labels")
        scores = self.scores
        for index, (prediction, raw_label) in enumerate(zip(predictions, labels, strict=True)):
            label = self.prepare_label(raw_label)
            if label is None:
                scores.num_dropped += 1
                continue
            prediction = self.adapt(prediction)
            distance = Levenshtein.distance(prediction, label)
            scores.num_samples += 1
            scores.num_correct += prediction == label
            # ICDAR 2019 NED; the longer length is never 0 because empty labels were dropped.
            scores.sum_ned += distance / max(len(prediction), len(label))
            scores.sum_edit_distance += distance
            scores.sum_label_characters += len(label)
            scores.sum_prediction_length += len(prediction)
            if confidences is not None:
                scores.sum_confidence += float(confidences[index])
                scores.num_confidences += 1


def score_recognition(
    predictions: Sequence[str],
    labels: Sequence[str],
    protocol: str | int = DEFAULT_PROTOCOL,
    confidences: Sequence[float] | None = None,
    max_label_length: int = MAX_LABEL_LENGTH,
    charset: str | None = None,
    normalize_unicode: bool | str | None = None,
) -> RecognitionScores:
    """Score predictions against raw ground-truth labels under a protocol (36, 62 or 94 characters, or "full"
    with `charset`); `normalize_unicode` overrides the protocol's Unicode normalisation of labels."""
    accumulator = RecognitionAccumulator(protocol, max_label_length, charset, normalize_unicode)
    accumulator.update(predictions, labels, confidences)
    return accumulator.scores
