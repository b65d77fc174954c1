"""The `evaluate.MetricInfo` that both metric scripts of this folder (`scene_text_recognition`,
`scene_text_detection`) declare, built in one place."""

import datasets
import evaluate


def metric_info(description: str, inputs_description: str, features: dict) -> evaluate.MetricInfo:
    """A metric script's info: its texts and the `datasets.Features` of its inputs. No citation: the numbers
    are the protocols' own, computed by this package (the papers are cited on the model cards)."""
    return evaluate.MetricInfo(
        description=description,
        citation="",
        inputs_description=inputs_description,
        features=datasets.Features(features),
    )
