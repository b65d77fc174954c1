"""The JSON schema that model cards read, and the printed tables."""

import json

import pytest

from scenetext.evaluation.metrics.detection import DetectionCounts, ThresholdSweep
from scenetext.evaluation.metrics.recognition import score_recognition
from scenetext.evaluation.reports import DetectionReport, RecognitionReport, write_json

SCORE_KEYS = {
    "num_samples",
    "num_correct",
    "num_dropped",
    "num_skipped",
    "skipped_by_reason",
    "accuracy",
    "one_minus_ned",
    "character_error_rate",
    "mean_confidence",
    "mean_label_length",
}
COUNT_KEYS = {"num_gt_care", "num_det_care", "num_matched", "precision", "recall", "hmean"}


def recognition_report() -> RecognitionReport:
    return RecognitionReport(
        "36",
        {
            "IIIT5k": score_recognition(["a", "b", "c", "d"], ["a", "b", "c", "x"], confidences=[1.0] * 4),
            "HOST": score_recognition(["a"], ["b"], confidences=[0.5]),
            "mine": score_recognition(["ab"], ["ab"], confidences=[0.25]),
        },
        {"model": "m", "data": "/data"},
        missing=["SVT"],
    )


def test_recognition_json_schema(tmp_path):
    report = json.loads(write_json(recognition_report(), tmp_path / "r.json").read_text())
    assert (
        set(report)
        == {
            "schema_version",
            "task",
            "source",
            "protocol",
            "charset",
            "datasets",
            "groups",
            "missing",
        }
        | SCORE_KEYS
    )
    assert (report["schema_version"], report["task"], report["protocol"]) == (
        1,
        "scene-text-recognition",
        "36",
    )
    assert report["charset"] == "0123456789abcdefghijklmnopqrstuvwxyz"
    assert report["missing"] == ["SVT"]
    assert all(set(scores) == SCORE_KEYS for scores in report["datasets"].values())
    assert report["datasets"]["IIIT5k"]["accuracy"] == 75.0
    assert report["datasets"]["IIIT5k"]["character_error_rate"] == 25.0
    # Only the CLIP4STR and parseq groups hold these sets; "mine" belongs to no group.
    assert set(report["groups"]) == {"clip4str", "parseq-subset", "parseq"}
    clip4str = report["groups"]["clip4str"]
    assert set(clip4str) == {"title", "datasets", "missing"} | SCORE_KEYS
    assert clip4str["datasets"] == ["IIIT5k", "HOST"]
    assert "WOST" in clip4str["missing"]
    assert clip4str["accuracy"] == 60.0  # 3 of 5 samples, weighted by samples
    assert clip4str["mean_confidence"] == 90.0
    # The top level combines every evaluated dataset: 4 of 6 correct.
    assert report["accuracy"] == pytest.approx(200 / 3)


def test_recognition_tables_follow_parseq():
    tables = recognition_report().format_tables()
    assert tables.startswith("Benchmark (CLIP4STR) (36-character protocol):\n")
    assert "| Dataset  | # samples | Accuracy | 1 - NED | Confidence | Label Length |" in tables
    assert "| IIIT5k   |         4 |    75.00 |   75.00 |     100.00 |         1.00 |" in tables
    assert "| Combined |         5 |    60.00 |   60.00 |      90.00 |         1.00 |" in tables
    assert "(not evaluated: SVT, IC13_1015, IC15_1811, IC15_2077, SVTP, CUTE80, WOST)" in tables
    assert "Other (36-character protocol):\n" in tables
    assert tables.endswith("Skipped, not found: SVT")


def test_detection_json_schema(tmp_path):
    sweep = ThresholdSweep(
        0.5, DetectionCounts(10, 8, 6), {0.3: DetectionCounts(10, 12, 6), 0.5: DetectionCounts(10, 8, 6)}
    )
    report = DetectionReport(
        sweep.best,
        num_images=3,
        source={"predictions": "res", "data": "gt"},
        sweep=sweep,
        end_to_end=DetectionCounts(10, 8, 4),
        end_to_end_protocol="36",
    )
    data = json.loads(write_json(report, tmp_path / "d.json").read_text())
    assert (
        set(data)
        == {
            "schema_version",
            "task",
            "source",
            "protocol",
            "iou_threshold",
            "dont_care_threshold",
            "num_images",
            "score_threshold",
            "end_to_end",
            "detection_order",
            "preset",
        }
        | COUNT_KEYS
    )
    assert (data["precision"], data["recall"], data["hmean"]) == (
        75.0,
        60.0,
        pytest.approx(100 * 2 * 0.75 * 0.6 / 1.35),
    )
    assert (data["iou_threshold"], data["dont_care_threshold"]) == (0.5, 0.5)
    assert data["score_threshold"]["mode"] == "best-hmean-sweep"
    assert data["score_threshold"]["threshold"] == 0.5
    assert set(data["score_threshold"]["per_threshold"]) == {"0.30", "0.50"}
    assert set(data["end_to_end"]) == {"protocol"} | COUNT_KEYS
    assert data["end_to_end"]["precision"] == 50.0
    table = report.format_table()
    assert (
        "| End-to-end (36) |        10 |                 8 |       4 |     50.00 |  40.00 |  44.44 |" in table
    )


def test_empty_reports_are_errors():
    with pytest.raises(ValueError, match="no dataset was evaluated"):
        RecognitionReport("36", {}, {})
    with pytest.raises(ValueError, match="no image was evaluated"):
        DetectionReport(DetectionCounts(), 0, {})
