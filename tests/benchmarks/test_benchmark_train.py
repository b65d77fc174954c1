"""Smoke run of the training benchmark at the tiny presets: the record's keys and values are consistent."""

import math
import runpy
from pathlib import Path

import pytest

TRAIN = Path(__file__).resolve().parents[2] / "benchmarks" / "train.py"


@pytest.mark.slow
@pytest.mark.parametrize(("task", "image_side"), [("recognizer", 32), ("detector", 128)])
def test_train_benchmark_tiny_writes_a_consistent_record(benchmark_record, task, image_side):
    record = benchmark_record(
        "train", "--task", task, "--preset", "tiny", "--batch-size", "2", "--steps", "2"
    )
    assert record["task"] == task and record["preset"] == "tiny" and record["device"] == "cpu"
    # The tiny recipes' inputs: 32 x 32 word crops, 128 x 128 scene crops.
    assert record["input_shape"] == [2, 3, image_side, image_side]
    assert len(record["step_times_s"]) == 2 and min(record["step_times_s"]) > 0
    assert record["samples_per_s"] == pytest.approx(2 / (sum(record["step_times_s"]) / 2))
    assert record["step_time_p50_s"] <= record["step_time_p95_s"]
    assert record["peak_memory_gb"] > 0 and record["peak_memory_source"]
    assert record["trainable_parameters"] > 0 and record["parameter_groups"] >= 2
    assert math.isfinite(record["final_loss"]) and record["final_loss"] > 0
    if task == "recognizer":
        # tiny-recognizer: max_label_length 12 and the default six permutations.
        assert record["label_length"] == 12 and record["perm_num"] == 6


def test_train_benchmark_rejects_a_preset_of_the_other_task():
    run = runpy.run_path(str(TRAIN))["run"]
    with pytest.raises(ValueError, match="--preset for the detector"):
        run("detector", "b16", 2, "fp32", "cpu", 1)
