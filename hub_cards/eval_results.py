"""Evaluation JSON written by `scenetext evaluate` -> the card's `model-index` results and its results table.

The JSON's schema is documented in `scenetext.evaluation.reports`; only schema version 1 is read.
Rates there are percentages, and they stay percentages on the card (as the papers print them).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult

from .mapping_files import read_mapping_file
from .model_kinds import ModelKind

SUPPORTED_SCHEMA_VERSION = 1

_RECOGNITION_KEYS = ("num_samples", "accuracy", "one_minus_ned", "character_error_rate")
_DETECTION_KEYS = ("num_images", "precision", "recall", "hmean")


def load_evaluation_report(path: str | Path, kind: ModelKind) -> dict[str, Any]:
    """Read an evaluation JSON and check that it evaluates a model of `kind`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, another schema version, another task (the report of another model type) or a
            missing score, each naming the file and the part that is wrong.
    """
    path = Path(path)
    report = read_mapping_file(path, "evaluation JSON")
    version = report.get("schema_version")
    if version != SUPPORTED_SCHEMA_VERSION:
        raise ValueError(
            f"evaluation JSON {path}: schema_version {version!r} is not supported "
            f"(expected {SUPPORTED_SCHEMA_VERSION}, as written by `scenetext evaluate`)"
        )
    task = report.get("task")
    if task != kind.task:
        raise ValueError(
            f"evaluation JSON {path}: task {task!r} is not the evaluation of a {kind.model_type} model "
            f"(a {kind.display_name} folder needs a {kind.task!r} report)"
        )
    if kind.task == "scene-text-recognition":
        datasets = report.get("datasets")
        if not isinstance(datasets, dict) or not datasets:
            raise ValueError(f"evaluation JSON {path}: 'datasets' must map benchmark names to scores")
        for name, scores in datasets.items():
            _require_numbers(scores, _RECOGNITION_KEYS, f"evaluation JSON {path}: datasets.{name}")
    else:
        _require_numbers(report, _DETECTION_KEYS, f"evaluation JSON {path}")
    return report


def _require_numbers(scores: object, keys: tuple[str, ...], where: str) -> None:
    if not isinstance(scores, dict):
        raise ValueError(f"{where}: expected an object of scores, got {type(scores).__name__}")
    for key in keys:
        value = scores.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{where}: {key!r} must be a finite number, got {value!r}")


def detection_dataset_name(report: dict[str, Any]) -> str:
    """The dataset a detection report scored: its preset (named after the dataset), else the data folder."""
    if report.get("preset"):
        return str(report["preset"])
    data = report.get("source", {}).get("data")
    return Path(data).name if data else "custom"


def eval_results(report: dict[str, Any], kind: ModelKind) -> list[EvalResult]:
    """The report as Hub evaluation results (one per dataset and metric), rounded as tables print them."""
    if kind.task == "scene-text-recognition":
        protocol = report.get("protocol", "36")
        results = []
        for name, scores in report["datasets"].items():
            common = {
                "task_type": kind.pipeline_tag,
                "task_name": "Scene Text Recognition",
                "dataset_type": name.lower(),
                "dataset_name": name,
                "dataset_split": "test",
            }
            results.append(
                EvalResult(
                    **common,
                    metric_type="accuracy",
                    metric_name=f"Word accuracy ({protocol}-character protocol)",
                    metric_value=round(scores["accuracy"], 2),
                )
            )
            results.append(
                EvalResult(
                    **common,
                    metric_type="cer",
                    metric_name="Character error rate",
                    metric_value=round(scores["character_error_rate"], 2),
                )
            )
        return results
    name = detection_dataset_name(report)
    common = {
        "task_type": kind.pipeline_tag,
        "task_name": "Scene Text Detection",
        "dataset_type": name.lower(),
        "dataset_name": name,
        "dataset_split": "test",
    }
    return [
        EvalResult(**common, metric_type=metric, metric_name=title, metric_value=round(report[key], 2))
        for metric, title, key in (
            ("precision", "Precision (IoU 0.5)", "precision"),
            ("recall", "Recall (IoU 0.5)", "recall"),
            ("f1", "Hmean (IoU 0.5)", "hmean"),
        )
    ]


def results_table(report: dict[str, Any], kind: ModelKind) -> str:
    """A Markdown table of this model's scores next to the paper's, for the datasets that were evaluated."""
    if kind.task == "scene-text-recognition":
        names = list(report["datasets"])
        rows = {name: report["datasets"][name] for name in names}
        header = ["Dataset", "# samples", "Accuracy", "1 - NED"]
        own = [
            [str(rows[n]["num_samples"]), _percent(rows[n]["accuracy"]), _percent(rows[n]["one_minus_ned"])]
            for n in names
        ]
    else:
        names = [detection_dataset_name(report)]
        header = ["Dataset", "# images", "Precision", "Recall", "Hmean"]
        own = [
            [str(report["num_images"]), *(_percent(report[key]) for key in ("precision", "recall", "hmean"))]
        ]
    columns = [column for column in kind.reported if any(name in column.scores for name in names)]
    header += [f"{column.label}" for column in columns]
    lines = ["| " + " | ".join(header) + " |", "|:--|" + "--:|" * (len(header) - 1)]
    for name, values in zip(names, own, strict=True):
        reported = [_percent(column.scores[name]) if name in column.scores else "-" for column in columns]
        lines.append("| " + " | ".join([name, *values, *reported]) + " |")
    return "\n".join(lines)


def _percent(value: float) -> str:
    return f"{value:.2f}"
