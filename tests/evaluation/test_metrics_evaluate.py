"""The `evaluate` metric modules give the plain functions' numbers; `compute_metrics` feeds Trainer with them."""

import numpy as np
import pytest
from transformers import EvalPrediction

from scenetext.evaluation.metrics.detection import TextRegions, score_detection
from scenetext.evaluation.metrics.recognition import score_recognition
from scenetext.evaluation.metrics.trainer_metrics import (
    DETECTION_METRIC,
    RECOGNITION_METRIC,
    load_metric,
    recognition_compute_metrics,
)
from scenetext.processors.clip4str import Clip4StrImageProcessor, Clip4StrProcessor, Clip4StrTokenizer

PREDICTIONS = ["hello", "World", "caf", "x"]
LABELS = ["hello", "world!", "café", "a label far longer than twenty-five characters"]


@pytest.mark.parametrize("protocol", ["36", "62", "94"])
def test_recognition_metric_gives_the_plain_function_numbers(protocol):
    result = load_metric(RECOGNITION_METRIC).compute(
        predictions=PREDICTIONS, references=LABELS, protocol=protocol
    )
    scores = score_recognition(PREDICTIONS, LABELS, protocol)
    assert result == {
        "accuracy": scores.accuracy,
        "one_minus_ned": scores.one_minus_ned,
        "num_samples": 3,
        "num_dropped": 1,
    }
    if protocol == "36":  # hello, world and cafe -> caf: two of three
        assert result["accuracy"] == pytest.approx(2 / 3)


def test_recognition_metric_takes_the_full_protocol_with_a_charset():
    charset = "abcdefghijklmnopqrstuvwxyzäöüßABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÜ"
    result = load_metric(RECOGNITION_METRIC).compute(
        predictions=["Größe", "strasse"], references=["Größe", "Straße"], protocol="full", charset=charset
    )
    assert (result["accuracy"], result["num_samples"]) == (0.5, 2)


def test_detection_metric_gives_the_plain_function_numbers():
    square = [[0, 0], [10, 0], [10, 10], [0, 10]]
    shifted = [[1, 0], [11, 0], [11, 10], [1, 10]]
    far = [[50, 50], [60, 50], [60, 60], [50, 60]]
    predictions = [[shifted, far], [far]]
    references = [
        {"polygons": [square], "transcriptions": ["word"]},
        {"polygons": [square, far], "transcriptions": ["word", "###"]},
    ]
    result = load_metric(DETECTION_METRIC).compute(predictions=predictions, references=references)
    counts = score_detection(
        (TextRegions(ref["polygons"], ref["transcriptions"]), TextRegions(det))
        for det, ref in zip(predictions, references, strict=True)
    )
    # image 1: one match, one false positive; image 2: the detection lies in a don't-care region
    assert (result["num_gt_care"], result["num_det_care"], result["num_matched"]) == (2, 2, 1)
    assert result["hmean"] == pytest.approx(counts.hmean) == pytest.approx(0.5)


def test_recognition_compute_metrics_decodes_logits_and_labels():
    tokenizer = Clip4StrTokenizer()
    processor = Clip4StrProcessor(Clip4StrImageProcessor(), tokenizer)
    labels = processor(text=["abc", "hello"], return_tensors="np")["labels"]
    # logits that read "abc" for both samples: one-hot over [E] + charset, the [B] column dropped
    ids = labels[0][1:]
    logits = np.full((2, len(ids), len(tokenizer.charset) + 1), -10.0, dtype=np.float32)
    for position, token in enumerate(ids):
        logits[:, position, min(token, len(tokenizer.charset))] = 10.0
    padded_labels = np.where(labels == tokenizer.pad_token_id, -100, labels)
    result = recognition_compute_metrics(processor)(
        EvalPrediction(predictions=(logits, logits), label_ids=padded_labels)
    )
    assert (result["accuracy"], result["num_samples"]) == (0.5, 2)


def test_recognition_compute_metrics_full_protocol_uses_the_tokenizer_charset():
    charset = "abcdefghijklmnopqrstuvwxyzäöüßABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÜ"
    tokenizer = Clip4StrTokenizer(charset=charset, normalize_unicode="NFC")
    processor = Clip4StrProcessor(Clip4StrImageProcessor(), tokenizer)
    labels = processor(text=["Größe", "große"], return_tensors="np")["labels"]
    # Logits reading "Größe" for both: right for the first, wrong by case for the second (case-sensitive).
    ids = labels[0][1:]
    logits = np.full((2, len(ids), len(charset) + 1), -10.0, dtype=np.float32)
    for position, token in enumerate(ids):
        logits[:, position, min(token, len(charset))] = 10.0
    result = recognition_compute_metrics(processor, protocol="full")(
        EvalPrediction(predictions=logits, label_ids=labels)
    )
    assert (result["accuracy"], result["num_samples"]) == (0.5, 2)
