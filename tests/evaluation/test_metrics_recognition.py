import pytest

from scenetext.evaluation.metrics.recognition import (
    RecognitionAccumulator,
    RecognitionScores,
    protocol_charset,
    score_recognition,
)


def test_protocol_charsets_have_the_official_sizes_and_no_space():
    for protocol in ("36", "62", "94"):
        charset = protocol_charset(protocol)
        assert len(set(charset)) == int(protocol)
        assert " " not in charset


def test_unknown_protocol_is_rejected_by_name():
    with pytest.raises(ValueError, match="'37'"):
        protocol_charset("37")


def test_36_char_protocol_on_hand_checked_words():
    # "Hello"/"hello": case ignored -> correct. "w0rld!"/"World": "w0rld" vs "world", 1 edit over 5.
    # "caf"/"café": the label folds to "cafe" -> 1 edit over 4.
    scores = score_recognition(["Hello", "w0rld!", "caf"], ["hello", "World", "café"], protocol=36)
    assert scores.num_samples == 3
    assert scores.num_correct == 1
    assert scores.accuracy == pytest.approx(1 / 3)
    assert scores.one_minus_ned == pytest.approx(1 - (0 + 1 / 5 + 1 / 4) / 3)
    assert scores.character_error_rate == pytest.approx(2 / 14)
    assert scores.mean_label_length == pytest.approx((5 + 5 + 3) / 3)
    assert scores.mean_confidence is None


def test_prediction_gets_only_the_charset_adapter():
    # The same accented word is right as a label and wrong as a prediction: "café" -> "caf" vs "cafe".
    assert score_recognition(["café"], ["café"]).num_correct == 0
    # A full-width prediction loses every character: NED 1.
    scores = score_recognition(["Ｈｅｌｌｏ"], ["hello"])
    assert scores.one_minus_ned == 0.0
    assert scores.mean_label_length == 0.0
    # Whitespace inside a label is removed, inside a prediction it is simply not in the charset.
    assert score_recognition(["he llo"], ["hel lo"]).num_correct == 1


def test_length_limit_applies_before_charset_filtering():
    label = "a-b-c-d-e-f-g-h-i-j-k-l-m-"  # 26 characters, 13 after the 36-char adapter
    scores = score_recognition(["abcdefghijklm", "ok"], [label, "ok"])
    assert scores.num_dropped == 1
    assert scores.num_samples == 1
    assert scores.accuracy == 1.0


def test_labels_empty_under_the_protocol_are_dropped_not_scored():
    scores = score_recognition(["", "x"], ["!?", "x"], protocol="36")
    assert (scores.num_dropped, scores.num_samples, scores.num_correct) == (1, 1, 1)


def test_62_char_protocol_is_case_sensitive_and_94_keeps_punctuation():
    predictions, labels = ["Hello", "hello!"], ["hello", "hello!"]
    assert score_recognition(predictions, labels, protocol=36).num_correct == 2
    assert score_recognition(predictions, labels, protocol=62).num_correct == 1
    scores_94 = score_recognition(predictions, labels, protocol=94)
    assert scores_94.num_correct == 1
    assert scores_94.one_minus_ned == pytest.approx(1 - (1 / 5) / 2)


def test_mean_confidence_and_accumulating_batches():
    accumulator = RecognitionAccumulator("36")
    accumulator.update(["a", "b"], ["a", "c"], [0.5, 0.25])
    accumulator.update(["c"], ["c"], [1.0])
    scores = accumulator.scores
    assert scores.num_samples == 3
    assert scores.accuracy == pytest.approx(2 / 3)
    assert scores.mean_confidence == pytest.approx(1.75 / 3)


def test_combined_scores_are_sample_weighted_sums():
    first = score_recognition(["a"], ["a"])
    second = score_recognition(["a", "b", "c"], ["x", "y", "c"])
    combined = first + second
    assert combined.num_samples == 4
    assert combined.accuracy == pytest.approx(2 / 4)


def test_empty_dataset_is_an_error_not_zero_percent():
    with pytest.raises(ValueError, match="no samples"):
        _ = RecognitionScores().accuracy
    with pytest.raises(ValueError, match="no samples"):
        _ = score_recognition(["x"], ["~~~"]).accuracy


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError, match="2 predictions for 1 labels"):
        score_recognition(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="1 confidences for 2 labels"):
        score_recognition(["a", "b"], ["a", "b"], confidences=[1.0])


# -- the "full" protocol for other charsets; the Unicode normalisation as an option ---------------------------

GERMAN = "abcdefghijklmnopqrstuvwxyzäöüßABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÜ"


def test_full_protocol_compares_case_sensitively_on_the_given_charset():
    # "Größe" right; "größe" wrong by case (1 edit over 5); "Strasse" vs "Straße": 2 edits over 7; the label
    # "Tür!" loses "!" (outside the charset) and "Tür" is read right.
    scores = score_recognition(
        ["Größe", "größe", "Strasse", "Tür"],
        ["Größe", "Größe", "Straße", "Tür!"],
        protocol="full",
        charset=GERMAN,
    )
    assert (scores.num_samples, scores.num_correct) == (4, 2)
    assert scores.one_minus_ned == pytest.approx(1 - (0 + 1 / 5 + 2 / 7 + 0) / 4)


def test_full_protocol_keeps_case_even_for_a_caseless_charset():
    # The 36-style rule would lower-case the label for a charset without capitals; "full" does not, so a
    # capital the charset lacks is removed like any other unknown character.
    lowercase = "абвгдежзийклмнопрстуфхцчшщъыьэюя"
    assert score_recognition(["ёж"], ["Ёж"], protocol="full", charset=lowercase + "ё").num_correct == 0
    assert score_recognition(["ж"], ["Ёж"], protocol="full", charset=lowercase + "ё").num_correct == 1


def test_full_protocol_normalises_to_nfc_unless_told_otherwise():
    decomposed = "Gro\u0308ße"  # o + combining diaeresis
    assert score_recognition(["Größe"], [decomposed], protocol="full", charset=GERMAN).num_correct == 1
    # With "none" the label keeps its combining mark, which the charset lacks: "Groe" vs "Größe".
    kept = score_recognition(
        ["Größe"], [decomposed], protocol="full", charset=GERMAN, normalize_unicode="none"
    )
    assert kept.num_correct == 0


def test_ascii_protocols_fold_by_default_and_take_another_normalisation_explicitly():
    # Official: "Größe" -> "Groe" (ö -> o, ß dropped), lower-cased by the 36 protocol: "groe".
    assert score_recognition(["groe"], ["Größe"], protocol=36).num_correct == 1
    # NFC keeps ö and ß, which the 36 charset then removes: "gre".
    assert score_recognition(["gre"], ["Größe"], protocol=36, normalize_unicode="NFC").num_correct == 1


def test_full_protocol_needs_a_charset_and_the_others_refuse_one():
    with pytest.raises(ValueError, match='"full" recognition protocol needs the charset'):
        RecognitionAccumulator("full")
    with pytest.raises(ValueError, match="only taken by"):
        protocol_charset("62", GERMAN)
    assert protocol_charset("full", GERMAN) == GERMAN
