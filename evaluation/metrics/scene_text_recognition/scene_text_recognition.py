"""`evaluate` metric: word accuracy and 1 - NED of scene text recognition under the 36, 62 or 94-character
protocol (parseq / CLIP4STR). A thin wrapper over `scenetext.evaluation.metrics.recognition.score_recognition`,
loaded with `evaluate.load(<this folder>)`; the numbers are that function's.
"""

import datasets
import evaluate

from scenetext.evaluation.metrics.metric_info import metric_info
from scenetext.evaluation.metrics.recognition import DEFAULT_PROTOCOL, MAX_LABEL_LENGTH, score_recognition

_DESCRIPTION = """Word accuracy and 1 - normalised edit distance, the scene text recognition numbers of parseq and
CLIP4STR. Ground-truth labels go through the official preprocessing (whitespace removed, NFKD to ASCII, samples
longer than `max_label_length` dropped, then the protocol's charset); predictions only through the charset."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): the recognised words.
    references (`list[str]`): the raw ground-truth labels.
    protocol (`str` or `int`, defaults to "36"): the test charset, 36, 62 or 94 characters, or "full": the
        given `charset`, compared case-sensitively (other scripts and accents).
    charset (`str`, *optional*): the charset of the "full" protocol (the model's).
    normalize_unicode (`bool` or `str`, *optional*): the labels' Unicode step instead of the protocol's
        ("ascii" = official NFKD-to-ASCII for 36/62/94; "NFC" for "full"; also "NFKC", "NFD", "NFKD", "none").
    max_label_length (`int`, defaults to 25): longer ground-truth labels drop their sample.
Returns:
    accuracy, one_minus_ned (in [0, 1]), num_samples (kept), num_dropped.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SceneTextRecognition(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return metric_info(
            _DESCRIPTION,
            _KWARGS_DESCRIPTION,
            {"predictions": datasets.Value("string"), "references": datasets.Value("string")},
        )

    def _compute(
        self,
        predictions,
        references,
        protocol=DEFAULT_PROTOCOL,
        max_label_length=MAX_LABEL_LENGTH,
        charset=None,
        normalize_unicode=None,
    ):
        scores = score_recognition(
            predictions,
            references,
            protocol,
            max_label_length=max_label_length,
            charset=charset,
            normalize_unicode=normalize_unicode,
        )
        return {
            "accuracy": scores.accuracy,
            "one_minus_ned": scores.one_minus_ned,
            "num_samples": scores.num_samples,
            "num_dropped": scores.num_dropped,
        }
