"""Smoke run of the detector benchmark at the tiny preset: the record's keys and values are consistent."""

import runpy
from pathlib import Path

import pytest

DETECTOR = Path(__file__).resolve().parents[2] / "benchmarks" / "detector.py"
STAGES = ("preprocess", "model", "postprocess")


@pytest.mark.slow
def test_detector_benchmark_tiny_writes_a_consistent_record(benchmark_record):
    record = benchmark_record("detector", "--preset", "tiny", "--batch-size", "1", "--repeats", "1")

    assert record["preset"] == "tiny" and record["batch_size"] == 1 and record["dtype"] == "fp32"
    assert record["input_size"] == [1024, 1824]  # the ICDAR2015 test scale of a 720x1280 scene, padded
    for prefix in ("", "baseline_"):
        for kind in ("s", "cpu_s"):
            assert all(record[f"{prefix}{stage}_{kind}"] > 0 for stage in STAGES)
        total = sum(record[f"{prefix}{stage}_s"] for stage in STAGES)
        assert record[f"{prefix}images_per_s"] == pytest.approx(1 / total)
    assert record["speedup"] == pytest.approx(record["images_per_s"] / record["baseline_images_per_s"])
    assert record["cpu_speedup"] == pytest.approx(
        record["cpu_images_per_s"] / record["baseline_cpu_images_per_s"]
    )
    # Ours must give the reference results: the same maps within float rounding, the same boundaries.
    assert record["max_abs_prob_map_difference"] < 1e-4
    assert record["postprocess_identical"] is True
    assert record["detections"] > 0


def test_detector_benchmark_rejects_unknown_preset():
    run = runpy.run_path(str(DETECTOR))["run"]
    with pytest.raises(ValueError, match="--preset"):
        run("rn200", 1, "fp32", "cpu", 1)


@pytest.mark.slow
@pytest.mark.parametrize("head", ["pan", "fcenet"])
def test_detector_benchmark_compares_a_head_with_dbnet(head, benchmark_record):
    record = benchmark_record("detector", "--preset", "tiny", "--head", head, "--repeats", "1")
    assert record["head"] == head and record["input_size"] == [1024, 1824]
    assert record["dbnet_model_s"] > 0 and record[f"{head}_model_s"] > 0
    assert record["speed_relative_to_dbnet"] == pytest.approx(
        record["dbnet_model_s"] / record[f"{head}_model_s"]
    )


def test_detector_benchmark_rejects_an_unknown_head():
    run_heads = runpy.run_path(str(DETECTOR))["run_heads"]
    with pytest.raises(ValueError, match="--head"):
        run_heads("tiny", "east", 1, "fp32", "cpu", 1)


@pytest.mark.slow
def test_detector_benchmark_times_the_onnx_runtime_files(benchmark_record):
    pytest.importorskip("onnxruntime", reason="--onnx needs the [onnx] extra")
    record = benchmark_record("detector", "--preset", "tiny", "--batch-size", "1", "--repeats", "1", "--onnx")
    for side in ("onnx", "onnx_int8"):
        assert record[f"{side}_speedup"] == pytest.approx(
            record[f"{side}_images_per_s"] / record["baseline_images_per_s"]
        )
        assert all(record[f"{side}_{stage}_s"] > 0 for stage in STAGES)
    assert record["onnx_max_abs_prob_map_difference"] < 1e-3  # the export's own check bound
    assert record["onnx_int8_max_abs_prob_map_difference"] < 1.0
