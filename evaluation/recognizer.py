"""Evaluating a text recognizer: on the LMDB benchmarks, on a folder of labelled crops (``labels.txt``), or from
a file of someone else's predictions.

The model-independent part takes a `RecognitionPredictor` (a batch of word crops -> texts and confidences),
so any system can be scored; `load_recognizer` builds one from a saved transformers folder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import PIL.Image
from tqdm.auto import tqdm

from scenetext.data.corrupt_records import CorruptRecord, CorruptRecordLog
from scenetext.data.labelled_folder import LABELS_FILE, labelled_folder_dataset
from scenetext.data.lmdb import find_lmdb_databases, lmdb_recognition_dataset, num_stored_records
from scenetext.evaluation.metrics.recognition import (
    DEFAULT_PROTOCOL,
    FULL_PROTOCOL,
    MAX_LABEL_LENGTH,
    RecognitionAccumulator,
    RecognitionScores,
    protocol_charset,
)
from scenetext.modeling.devices import place_model, resolve_device, resolve_precision
from scenetext.modeling.model_types import require_model_type
from scenetext.pipelines.crop_recognition import recognize_crops

from .benchmarks import discover_benchmarks
from .reports import RecognitionReport, skip_reasons

logger = logging.getLogger(__name__)

# A batch of RGB word crops -> (texts, per-text confidences or None).
RecognitionPredictor = Callable[[list[PIL.Image.Image]], tuple[list[str], list[float] | None]]


def evaluate_recognition_samples(
    predict: RecognitionPredictor,
    samples: Iterable[dict],
    protocol: str | int = DEFAULT_PROTOCOL,
    batch_size: int = 512,
    max_label_length: int = MAX_LABEL_LENGTH,
    description: str | None = None,
    charset: str | None = None,
    normalize_unicode: bool | str | None = None,
) -> RecognitionScores:
    """Run `predict` over ``{"image", "label"}`` samples in batches and score them under `protocol` (with
    `charset` for the "full" protocol; `normalize_unicode` overrides the protocol's label normalisation)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    accumulator = RecognitionAccumulator(protocol, max_label_length, charset, normalize_unicode)
    iterator = iter(samples)
    with tqdm(desc=description, unit="img") as progress:
        while batch := list(islice(iterator, batch_size)):
            texts, confidences = predict([sample["image"] for sample in batch])
            accumulator.update(texts, [sample["label"] for sample in batch], confidences)
            progress.update(len(batch))
    return accumulator.scores


def evaluate_recognizer_on_benchmarks(
    predict: RecognitionPredictor,
    root: str | Path,
    benchmarks: Sequence[str] | None = None,
    protocol: str | int = DEFAULT_PROTOCOL,
    batch_size: int = 512,
    model_name: str | None = None,
) -> RecognitionReport:
    """Evaluate on every requested benchmark found under `root` (see `benchmarks.discover_benchmarks`).

    Missing benchmarks are skipped and listed in the report; finding none, or a benchmark without a single
    usable sample, is an error. Corrupt records are skipped and counted by reason in the report, and labels
    the protocol's preprocessing removed are counted in `num_dropped`.
    """
    protocol = str(protocol)
    if protocol == FULL_PROTOCOL:
        raise ValueError(
            'the LMDB benchmarks are ASCII: evaluate them with protocol 36, 62 or 94 ("full" is for a model\'s '
            "own charset on a folder of crops)"
        )
    charset = protocol_charset(protocol)
    discovery = discover_benchmarks(root, benchmarks)
    if not discovery.found:
        raise FileNotFoundError(
            f"none of the benchmarks {', '.join(discovery.missing)} was found under {root} "
            "(expected LMDB folders <root>/test/<name> or <root>/<name> holding data.mdb)"
        )
    if discovery.missing:
        logger.warning(
            "skipping benchmarks not found under %s (no data.mdb in <root>/test/<name> or <root>/<name>): %s",
            root,
            ", ".join(discovery.missing),
        )
    results: dict[str, RecognitionScores] = {}
    skipped: dict[str, dict[str, int]] = {}
    width = max(len(name) for name in discovery.found)
    for name, folder in discovery.found.items():
        # Labels are preprocessed by the reader with the test charset, as parseq's test loader does.
        corrupt_records = CorruptRecordLog()
        samples = lmdb_recognition_dataset(folder, charset=charset, corrupt_records=corrupt_records)
        scores = evaluate_recognition_samples(
            predict, samples, protocol, batch_size, description=f"{name:>{width}}"
        )
        skipped[name] = skip_reasons(corrupt_records.records())
        scores.num_dropped += _dropped_by_the_source(folder, scores, corrupt_records.records())
        if scores.num_samples == 0:
            raise ValueError(f"benchmark {name} ({folder}) has no sample left after label preprocessing")
        results[name] = scores
    source = {"model": model_name or "<predict function>", "data": str(root)}
    return RecognitionReport(protocol, results, source, discovery.missing, skipped)


def evaluate_recognizer_on_folder(
    predict: RecognitionPredictor,
    folder: str | Path,
    protocol: str | int = DEFAULT_PROTOCOL,
    batch_size: int = 512,
    model_name: str | None = None,
    charset: str | None = None,
) -> RecognitionReport:
    """Evaluate on the crops that ``<folder>/labels.txt`` lists (see `data.labelled_folder`), as one dataset
    named after the folder; `charset` is the model's, for the "full" protocol (other scripts).

    Evaluation is strict: a bad line of ``labels.txt`` or an undecodable crop is an error naming its line,
    since skipping it would change the accuracy. Labels the protocol drops count in `num_dropped`.
    """
    folder = Path(folder)
    samples = labelled_folder_dataset(folder, _StrictRecordLog())
    scores = evaluate_recognition_samples(
        predict, samples, protocol, batch_size, description=folder.name, charset=charset
    )
    if scores.num_samples == 0:
        raise ValueError(
            f"every label of {folder / LABELS_FILE} was dropped by the {protocol}-character protocol "
            f"(empty under its charset or longer than {MAX_LABEL_LENGTH} characters)"
        )
    source = {"model": model_name or "<predict function>", "data": str(folder)}
    return RecognitionReport(str(protocol), {folder.name or str(folder): scores}, source, charset=charset)


class _StrictRecordLog(CorruptRecordLog):
    """The sources skip what they cannot read (right for training); evaluation stops at it instead."""

    def report(self, location: str, reason: str) -> None:
        raise ValueError(f"unusable evaluation data: {location}: {reason}")


def _dropped_by_the_source(folder: Path, scores: RecognitionScores, skipped: list[CorruptRecord]) -> int:
    """Labels the LMDB source removed with the protocol's preprocessing before scoring (it filters them
    silently, as parseq's test loader does): the records stored, less those scored or dropped in scoring,
    less the corrupt ones it skipped."""
    stored = sum(num_stored_records(database) or 0 for database in find_lmdb_databases(folder))
    skipped_records = sum(not record.location.endswith(":num-samples") for record in skipped)
    return stored - scores.num_samples - scores.num_dropped - skipped_records


def read_prediction_file(path: str | Path) -> dict[str, list[dict]]:
    """Read a JSON-lines file of ``{"prediction": str, "label": str}`` records, grouped by dataset.

    Optional keys: ``"confidence"`` (number; all records of a dataset have it or none do) and ``"dataset"``
    (str; records without it belong to a dataset named after the file). Blank lines are skipped; any other
    malformed line raises `ValueError` naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prediction file not found: {path}")
    datasets: dict[str, list[dict]] = {}
    with path.open(encoding="utf-8-sig") as lines:
        for line_number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            record = _parse_prediction_record(line, f"{path}:{line_number}")
            datasets.setdefault(record.pop("dataset", path.stem), []).append(record)
    if not datasets:
        raise ValueError(f"{path}: no prediction records; an empty dataset cannot be scored")
    return datasets


def _parse_prediction_record(line: str, location: str) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"{location}: not valid JSON ({error.msg})") from error
    if not isinstance(record, dict):
        raise ValueError(
            f"{location}: expected a JSON object with 'prediction' and 'label', got {line.strip()}"
        )
    for key in ("prediction", "label"):
        if not isinstance(record.get(key), str):
            raise ValueError(f"{location}: expected a string {key!r}, got {record.get(key)!r}")
    parsed = {"prediction": record["prediction"], "label": record["label"]}
    if "confidence" in record:
        confidence = record["confidence"]
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
            raise ValueError(f"{location}: expected a number for 'confidence', got {confidence!r}")
        parsed["confidence"] = float(confidence)
    if "dataset" in record:
        if not isinstance(record["dataset"], str) or not record["dataset"]:
            raise ValueError(f"{location}: expected a non-empty string 'dataset', got {record['dataset']!r}")
        parsed["dataset"] = record["dataset"]
    return parsed


def score_prediction_file(
    path: str | Path, protocol: str | int = DEFAULT_PROTOCOL, max_label_length: int = MAX_LABEL_LENGTH
) -> RecognitionReport:
    """Score a JSON-lines prediction file (see `read_prediction_file`) under a protocol."""
    protocol = str(protocol)
    results: dict[str, RecognitionScores] = {}
    for name, records in read_prediction_file(path).items():
        with_confidence = ["confidence" in record for record in records]
        if any(with_confidence) and not all(with_confidence):
            raise ValueError(
                f"{path}: dataset {name!r} has 'confidence' on {sum(with_confidence)} of {len(records)} "
                "records; give it on all of them or on none"
            )
        accumulator = RecognitionAccumulator(protocol, max_label_length)
        accumulator.update(
            [record["prediction"] for record in records],
            [record["label"] for record in records],
            [record["confidence"] for record in records] if all(with_confidence) else None,
        )
        if accumulator.scores.num_samples == 0:
            raise ValueError(
                f"{path}: every label of dataset {name!r} was dropped by the official preprocessing "
                f"(longer than {max_label_length} characters or empty under the {protocol}-character charset)"
            )
        results[name] = accumulator.scores
    return RecognitionReport(protocol, results, {"predictions": str(path)})


def load_recognizer(
    model_path: str | Path, device: str | None = None, dtype: str | None = None
) -> RecognitionPredictor:
    """A predictor from a saved recognizer folder or Hub id (loaded with ``trust_remote_code=True``).

    Runs on CUDA when available unless `device` says otherwise, in `dtype` (default float32, the precision
    of the official test script; `int8` = float32 with dynamically quantized linear layers, on the CPU).
    A local folder holding another model type is refused (ValueError) before any weight is read.
    """
    from transformers import AutoModel, AutoProcessor

    require_model_type(model_path, "clip4str", "recognizer")
    model = AutoModel.from_pretrained(str(model_path), trust_remote_code=True)
    model = place_model(model, resolve_device(device), resolve_precision(dtype))
    processor = AutoProcessor.from_pretrained(str(model_path), trust_remote_code=True)
    return crop_predictor(model, processor)


def recognizer_charset(model_path: str | Path) -> str:
    """The charset a saved recognizer writes, from its tokenizer (an adapter folder's differs from its base's)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_path), trust_remote_code=True).charset


def crop_predictor(model: Any, processor: Any) -> RecognitionPredictor:
    """The predictor of a loaded recognizer and its processor: each batch read by `recognize_crops`."""

    def predict(images: list[PIL.Image.Image]) -> tuple[list[str], list[float]]:
        readings = recognize_crops(model, processor, images, batch_size=max(1, len(images)))
        return [text for text, _ in readings], [score for _, score in readings]

    return predict
