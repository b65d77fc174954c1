"""Smoke run of the recognizer benchmark at the tiny preset: the record's keys and values are consistent."""

import runpy
from pathlib import Path

import pytest

RECOGNIZER = Path(__file__).resolve().parents[2] / "benchmarks" / "recognizer.py"


def test_recognizer_benchmark_tiny_writes_a_consistent_record(benchmark_record):
    record = benchmark_record("recognizer", "--preset", "tiny", "--batch-size", "2", "--repeats", "1")
    assert record["preset"] == "tiny" and record["batch_size"] == 2
    assert record["decoding_steps"] == 26
    assert record["images_per_s"] > 0 and record["baseline_images_per_s"] > 0
    assert record["speedup"] == pytest.approx(record["images_per_s"] / record["baseline_images_per_s"])
    assert record["latency_p50_s"] == pytest.approx(record["encoder_s"] + record["decoding_s"])
    # Cached decoding must give the reference ids in fp32.
    assert record["fp32_ids_identical"] is True
    # The reference encodes every caption at both stages (refine_iters = 1); ours never encodes more.
    assert record["baseline_caption_rows_encoded"] == 2 * 2
    assert 1 <= record["caption_rows_encoded"] <= 2 * 2


def test_recognizer_benchmark_rejects_unknown_preset():
    run = runpy.run_path(str(RECOGNIZER))["run"]
    with pytest.raises(ValueError, match="--preset"):
        run("vit-xxl", 2, "fp32", "cpu", 1)


def test_recognizer_benchmark_int8_quantizes_and_reports_agreement(benchmark_record):
    record = benchmark_record(
        "recognizer", "--preset", "tiny", "--batch-size", "2", "--repeats", "1", "--dtype", "int8"
    )
    assert record["dtype"] == "int8" and 0.0 <= record["ids_agreement"] <= 1.0
    assert record["fp32_ids_identical"] is True


@pytest.mark.slow
def test_recognizer_benchmark_times_the_onnx_runtime_files(benchmark_record):
    pytest.importorskip("onnxruntime", reason="--onnx needs the [onnx] extra")
    record = benchmark_record(
        "recognizer", "--preset", "tiny", "--batch-size", "2", "--repeats", "1", "--onnx"
    )
    assert record["onnx_fp32_ids_agreement"] == 1.0  # the export's own check: the same ids as PyTorch
    assert 0.0 <= record["onnx_int8_ids_agreement"] <= 1.0
    for side in ("onnx_fp32", "onnx_int8"):
        assert record[f"{side}_images_per_s"] > 0 and record[f"{side}_speedup"] > 0
