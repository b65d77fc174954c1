"""Evaluation reports: the paper-style tables printed by `scenetext evaluate` and the JSON they write.

JSON schema (``schema_version`` 1). Rates are percentages (0-100, as the papers print them); counts are
integers. Keys present in every report: ``schema_version``, ``task``, ``source`` (``{"model": path}`` or
``{"predictions": path}``, plus ``"data": path`` when a data folder was read).

Recognition (``task`` = ``"scene-text-recognition"``)::

    protocol              "36" | "62" | "94" | "full"  (test charset size; 36 = case-insensitive alphanumeric;
                                             full = the model's charset, case-sensitive)
    charset               the test charset itself
    datasets              {name: SCORES}, in table order
    groups                {group: {"title", "datasets": [evaluated members], "missing": [members not
                          evaluated], **SCORES}}, the sample-weighted "Combined" row of each paper table
                          that has at least one evaluated member (see `benchmarks.BENCHMARK_GROUPS`)
    missing               requested benchmarks that were not found
    **SCORES              sample-weighted over every evaluated dataset (for one dataset: its own scores)

    SCORES = {"num_samples", "num_correct", "num_dropped" (labels the official preprocessing removed, by
              the data source or in scoring), "num_skipped" and "skipped_by_reason" ({reason: count} of the
              corrupt records the source skipped; 0 and {} for prediction files), "accuracy", "one_minus_ned",
              "character_error_rate", "mean_confidence" (null without model scores),
              "mean_label_length" (characters of the adapted predictions, as parseq reports)}

Detection (``task`` = ``"scene-text-detection"``)::

    protocol              "icdar2015-iou"
    iou_threshold, dont_care_threshold
    num_images, num_gt_care, num_det_care, num_matched, precision, recall, hmean
    score_threshold       {"mode": "all" | "fixed" | "best-hmean-sweep", "threshold": float | null,
                          "per_threshold": {str(threshold): {counts + precision, recall, hmean}} (sweep)}
    end_to_end            null, or {"protocol", counts + precision, recall, hmean} when transcriptions
                          were scored
    detection_order       "file" (the default protocol) or "score" (descending, as the official script with
                          confidences)
    preset                null or the detector preset name
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scenetext.data.corrupt_records import CorruptRecord
from scenetext.evaluation.metrics.detection import (
    DONT_CARE_AREA_THRESHOLD,
    IOU_THRESHOLD,
    DetectionCounts,
    ThresholdSweep,
)
from scenetext.evaluation.metrics.recognition import RecognitionScores, protocol_charset

from .benchmarks import BENCHMARK_GROUPS, GROUP_TITLES

SCHEMA_VERSION = 1


def recognition_scores_dict(scores: RecognitionScores) -> dict:
    """The SCORES block of the recognition JSON (rates in percent)."""
    return {
        **_counts_and_percentages(
            scores,
            ("num_samples", "num_correct", "num_dropped"),
            ("accuracy", "one_minus_ned", "character_error_rate", "mean_confidence"),
        ),
        "mean_label_length": scores.mean_label_length,
    }


def detection_counts_dict(counts: DetectionCounts) -> dict:
    """Counts and rates (percent) of a detection or end-to-end result."""
    return _counts_and_percentages(
        counts, ("num_gt_care", "num_det_care", "num_matched"), ("precision", "recall", "hmean")
    )


def _counts_and_percentages(result: object, counts: Sequence[str], rates: Sequence[str]) -> dict:
    """The named attributes of `result` in the report's units: counts as they are, rates (fractions, or None
    when there is nothing to rate) in percent."""
    values = {name: getattr(result, name) for name in counts}
    for name in rates:
        rate = getattr(result, name)
        values[name] = None if rate is None else 100 * rate
    return values


def combine(scores: Sequence[RecognitionScores]) -> RecognitionScores:
    """Sample-weighted combination: sums of the per-dataset sums."""
    total = RecognitionScores()
    for item in scores:
        total += item
    return total


@dataclass
class RecognitionReport:
    """Scores of one recognizer on several datasets under one protocol."""

    protocol: str
    datasets: dict[str, RecognitionScores]
    source: dict[str, str]
    missing: list[str] = field(default_factory=list)
    # Per dataset, the corrupt records its source skipped, counted by reason (see `skip_reasons`).
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)
    charset: str | None = None  # the model's, under the "full" protocol

    def __post_init__(self) -> None:
        if not self.datasets:
            raise ValueError("no dataset was evaluated: an empty evaluation has no accuracy")

    def skipped_counts(self, names: Sequence[str]) -> dict:
        """`num_skipped` and `skipped_by_reason` summed over the datasets `names`."""
        by_reason: Counter[str] = Counter()
        for name in names:
            by_reason.update(self.skipped.get(name, {}))
        return {"num_skipped": sum(by_reason.values()), "skipped_by_reason": dict(sorted(by_reason.items()))}

    def table_groups(self) -> list[tuple[str, list[str], list[str]]]:
        """(title, evaluated members, missing members) of each table to print, in order.

        Standard groups with an evaluated member come first; datasets in none of them share a last table.
        """
        tables = []
        shown: set[str] = set()
        for group, members in BENCHMARK_GROUPS.items():
            evaluated = [name for name in members if name in self.datasets]
            if evaluated:
                missing = [name for name in members if name not in self.datasets]
                tables.append((group, evaluated, missing))
                shown.update(evaluated)
        others = [name for name in self.datasets if name not in shown]
        if others:
            tables.append(("other" if tables else "results", others, []))
        return tables

    def to_dict(self) -> dict:
        groups = {}
        for group, evaluated, missing in self.table_groups():
            if group in BENCHMARK_GROUPS:
                groups[group] = {
                    "title": GROUP_TITLES[group],
                    "datasets": evaluated,
                    "missing": missing,
                    **recognition_scores_dict(combine([self.datasets[name] for name in evaluated])),
                    **self.skipped_counts(evaluated),
                }
        return {
            "schema_version": SCHEMA_VERSION,
            "task": "scene-text-recognition",
            "source": self.source,
            "protocol": self.protocol,
            "charset": protocol_charset(self.protocol, self.charset),
            **recognition_scores_dict(combine(list(self.datasets.values()))),
            **self.skipped_counts(list(self.datasets)),
            "datasets": {
                name: {**recognition_scores_dict(scores), **self.skipped_counts([name])}
                for name, scores in self.datasets.items()
            },
            "groups": groups,
            "missing": self.missing,
        }

    def _protocol_name(self) -> str:
        if self.charset is not None:
            return f"full {len(self.charset)}-character charset, case-sensitive"
        return f"{self.protocol}-character protocol"

    def format_tables(self) -> str:
        """parseq's `test.py` tables: one per group, each closed by its sample-weighted Combined row."""
        blocks = []
        for group, evaluated, missing in self.table_groups():
            title = GROUP_TITLES.get(group, group.capitalize())
            rows = [(name, self.datasets[name]) for name in evaluated]
            lines = [f"{title} ({self._protocol_name()}):", *_recognition_table(rows)]
            if missing:
                lines.append(f"(not evaluated: {', '.join(missing)})")
            blocks.append("\n".join(lines))
        if self.missing:
            blocks.append(f"Skipped, not found: {', '.join(self.missing)}")
        removed = [
            _removed_records_line(name, scores.num_dropped, self.skipped.get(name, {}))
            for name, scores in self.datasets.items()
            if scores.num_dropped or self.skipped.get(name)
        ]
        if removed:
            blocks.append("Not scored:\n" + "\n".join(removed))
        return "\n\n".join(blocks)


def _removed_records_line(name: str, num_dropped: int, skipped: dict[str, int]) -> str:
    reasons = "; ".join(f"{count} {reason}" for reason, count in sorted(skipped.items()))
    line = f"  {name}: {num_dropped} labels removed by the protocol, {sum(skipped.values())} corrupt records"
    return line + (f" ({reasons})" if reasons else "")


def skip_reasons(records: Sequence[CorruptRecord]) -> dict[str, int]:
    """Skipped records counted by kind of reason: the reason without its record-specific details (indices,
    byte counts, parenthesised exception text), e.g. "missing key label-N" or "not an image file"."""
    kinds = Counter()
    for record in records:
        reason = re.sub(r"^image bytes \(\d+ bytes\): ", "", record.reason)
        reason = re.sub(r"\s*\(.*\)\s*$", "", reason)
        kinds[re.sub(r"\d{2,}", "N", reason).strip() or "unknown"] += 1
    return dict(kinds)


def _recognition_table(rows: list[tuple[str, RecognitionScores]]) -> list[str]:
    width = max(len("Combined"), *(len(name) for name, _ in rows))
    header = f"| {'Dataset':<{width}} | # samples | Accuracy | 1 - NED | Confidence | Label Length |"
    rule = f"|:{'-' * width}-|----------:|---------:|--------:|-----------:|-------------:|"
    lines = [header, rule]
    lines += [_recognition_row(name, scores, width) for name, scores in rows]
    lines.append(f"|-{'-' * width}-|-----------|----------|---------|------------|--------------|")
    lines.append(_recognition_row("Combined", combine([scores for _, scores in rows]), width))
    return lines


def _recognition_row(name: str, scores: RecognitionScores, width: int) -> str:
    confidence = scores.mean_confidence
    confidence_text = "-" if confidence is None else f"{100 * confidence:.2f}"
    return (
        f"| {name:<{width}} | {scores.num_samples:>9} | {100 * scores.accuracy:>8.2f} "
        f"| {100 * scores.one_minus_ned:>7.2f} | {confidence_text:>10} | {scores.mean_label_length:>12.2f} |"
    )


@dataclass
class DetectionReport:
    """Scores of one detector (or result files) on one dataset under the ICDAR 2015 IoU protocol."""

    counts: DetectionCounts
    num_images: int
    source: dict[str, str]
    score_threshold: float | None = None
    sweep: ThresholdSweep | None = None
    end_to_end: DetectionCounts | None = None
    end_to_end_protocol: str | None = None
    preset: str | None = None
    detection_order: str = "file"
    iou_threshold: float = IOU_THRESHOLD
    dont_care_threshold: float = DONT_CARE_AREA_THRESHOLD

    def __post_init__(self) -> None:
        if self.num_images == 0:
            raise ValueError("no image was evaluated: an empty evaluation has no precision or recall")

    @property
    def threshold_mode(self) -> str:
        if self.sweep is not None:
            return "best-hmean-sweep"
        return "all" if self.score_threshold is None else "fixed"

    def to_dict(self) -> dict:
        score_threshold: dict = {
            "mode": self.threshold_mode,
            "threshold": self.sweep.best_threshold if self.sweep else self.score_threshold,
        }
        if self.sweep is not None:
            score_threshold["per_threshold"] = {
                f"{threshold:.2f}": detection_counts_dict(counts)
                for threshold, counts in self.sweep.per_threshold.items()
            }
        end_to_end = None
        if self.end_to_end is not None:
            end_to_end = {"protocol": self.end_to_end_protocol, **detection_counts_dict(self.end_to_end)}
        return {
            "schema_version": SCHEMA_VERSION,
            "task": "scene-text-detection",
            "source": self.source,
            "protocol": "icdar2015-iou",
            "iou_threshold": self.iou_threshold,
            "dont_care_threshold": self.dont_care_threshold,
            "num_images": self.num_images,
            **detection_counts_dict(self.counts),
            "score_threshold": score_threshold,
            "end_to_end": end_to_end,
            "detection_order": self.detection_order,
            "preset": self.preset,
        }

    def format_table(self) -> str:
        rows = [("Detection", self.counts)]
        if self.end_to_end is not None:
            rows.append((f"End-to-end ({self.end_to_end_protocol})", self.end_to_end))
        width = max(len(name) for name, _ in rows)
        lines = [
            f"ICDAR 2015 IoU protocol, {self.num_images} images, {self._threshold_description()}:",
            f"| {'':<{width}} | GT (care) | Detections (care) | Matched | Precision | Recall |  Hmean |",
            f"|:{'-' * width}-|----------:|------------------:|--------:|----------:|-------:|-------:|",
        ]
        for name, counts in rows:
            lines.append(
                f"| {name:<{width}} | {counts.num_gt_care:>9} | {counts.num_det_care:>17} | "
                f"{counts.num_matched:>7} | {100 * counts.precision:>9.2f} | {100 * counts.recall:>6.2f} | "
                f"{100 * counts.hmean:>6.2f} |"
            )
        return "\n".join(lines)

    def _threshold_description(self) -> str:
        if self.sweep is not None:
            return (
                f"best hmean over score thresholds {', '.join(f'{t:.1f}' for t in self.sweep.per_threshold)} "
                f"(mmocr / TCM reporting; tuned on this set) at {self.sweep.best_threshold:.1f}"
            )
        if self.score_threshold is None:
            return "all detections"
        return f"detections with score >= {self.score_threshold:g}"


def write_json(report: RecognitionReport | DetectionReport, path: str | Path) -> Path:
    """Write a report's JSON (creating parent folders) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
