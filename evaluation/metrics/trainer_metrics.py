"""`compute_metrics` for `transformers.Trainer`, built on the `evaluate` metric modules beside this file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from .recognition import DEFAULT_PROTOCOL

METRICS_DIR = Path(__file__).resolve().parent
RECOGNITION_METRIC = METRICS_DIR / "scene_text_recognition"
DETECTION_METRIC = METRICS_DIR / "scene_text_detection"


def load_metric(path: Path):
    """`evaluate.load` of one of the metric folders here."""
    try:
        import evaluate
    except ImportError as error:
        raise ImportError(
            'the evaluate metrics need the evaluate library: pip install "scenetext[eval]"'
        ) from error
    return evaluate.load(str(path))


def recognition_compute_metrics(processor, protocol: str | int = DEFAULT_PROTOCOL) -> Callable[..., dict]:
    """`Trainer(compute_metrics=...)` for a CLIP4STR recognizer: decodes the logits with `processor` and the
    `labels` with its tokenizer, and returns the `scene_text_recognition` metric (accuracy, 1 - NED).

    Args:
        processor: the recognizer's `Clip4StrProcessor`.
        protocol: the test charset, 36, 62 or 94, or "full": the tokenizer's charset, case-sensitive, with its
            Unicode normalisation (other scripts).
    """
    metric = load_metric(RECOGNITION_METRIC)
    tokenizer = processor.tokenizer

    def compute_metrics(evaluation) -> dict:
        logits = evaluation.predictions
        # The model returns logits and visual_logits: Trainer gathers them as a tuple, logits first.
        logits = logits[0] if isinstance(logits, tuple) else logits
        predictions = processor.batch_decode(np.asarray(logits))["generated_text"]
        # Trainer pads label batches of different lengths with -100.
        label_ids = np.where(evaluation.label_ids == -100, tokenizer.pad_token_id, evaluation.label_ids)
        references = tokenizer.batch_decode(label_ids.tolist(), skip_special_tokens=True)
        if str(protocol) == "full":
            return metric.compute(
                predictions=predictions,
                references=references,
                protocol=protocol,
                charset=tokenizer.charset,
                normalize_unicode=getattr(tokenizer, "normalize_unicode", None),
            )
        return metric.compute(predictions=predictions, references=references, protocol=protocol)

    return compute_metrics
