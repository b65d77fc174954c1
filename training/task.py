"""What the recognition and detection tasks share: both read their samples from the `data` section's sources,
log the records they cannot read, report scores on `data.eval` and save their processor next to the model.
Each task builds its own sources, model, batches and scores; `TrainingTask` in `training/loop.py` says what the
loop asks of a task."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from datasets import IterableDataset, interleave_datasets

from scenetext.data.corrupt_records import CorruptRecordLog

from .config import TrainingConfig
from .loop import train_stream


class SourcedTask(ABC):
    """A training task whose data comes from the sources named in `data.train` and `data.eval`; a subclass
    builds one source from its spec (`_source`) and sets `processor` in its `__init__`."""

    processor: Any  # saved with every exported model, so the folder reads its own inputs
    logged_scores: tuple[str, ...]  # the attributes of `score`'s result that `evaluate` reports
    # The score that selects the best checkpoint (`metric_name`) is a rate to raise for every task here.
    greater_is_better = True

    def __init__(self, config: TrainingConfig):
        self.config = config
        self.data = dict(config.data)
        self.corrupt_records = CorruptRecordLog(Path(config.output_dir) / "corrupt_records")

    @abstractmethod
    def _source(self, spec: dict[str, Any], where: str) -> IterableDataset:
        """The samples of one `data.*` source spec; `where` names the spec in errors."""

    def train_dataset(self, start: int = 0) -> IterableDataset:
        return train_stream(self.data, self._source_or_mixture, self.config.seed, start)

    def _source_or_mixture(self, spec: dict[str, Any], where: str) -> IterableDataset:
        """One source, or a mixture (`source: mix`): each sample is drawn from one of `sources` with
        probability proportional to `weights`, and a finite source starts over when it runs out (a few
        thousand real crops repeat while a long synthetic stream runs), until every source has run out once."""
        if spec.get("source") != "mix":
            return self._source(spec, where)
        sources = [
            self._source(item, f"{where}.sources[{index}]") for index, item in enumerate(spec["sources"])
        ]
        weights = [float(weight) for weight in spec.get("weights", [1.0] * len(sources))]
        return interleave_datasets(
            sources,
            probabilities=[weight / sum(weights) for weight in weights],
            seed=self.config.seed,
            stopping_strategy="all_exhausted",
        )

    @abstractmethod
    def score(self, model: torch.nn.Module, samples: IterableDataset) -> Any:
        """The task's scores of `model` on `samples`, with the attributes named in `logged_scores`."""

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        """The `logged_scores` on `data.eval`; nothing when the config has no evaluation set."""
        if "eval" not in self.data:
            return {}
        scores = self.score(model, self._source(self.data["eval"], "data.eval"))
        return {name: getattr(scores, name) for name in self.logged_scores}

    def save_pretrained(self, model: torch.nn.Module, folder: Path) -> None:
        """A Hub-style folder: model, processor, their code and the pipelines (`custom_pipelines`, written by
        the model's `save_pretrained`)."""
        model.save_pretrained(folder)
        self.processor.save_pretrained(folder)

    def skipped_records(self) -> int:
        return self.corrupt_records.count()


def with_mixtures(source_rule: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    """The config rule of a task's `data.train`: one source (checked by ``source_rule``) or
    ``{source: mix, sources: [source, ...], weights: [number, ...]}`` (weights optional, positive, one per
    source)."""

    def check(value: Any, key: str) -> Any:
        if not isinstance(value, Mapping) or value.get("source") != "mix":
            return source_rule(value, key)
        unknown = set(value) - {"source", "sources", "weights"}
        if unknown:
            raise ValueError(
                f"{key}: a mixture takes source, sources and weights, not {', '.join(sorted(unknown))}"
            )
        sources = value.get("sources")
        if not isinstance(sources, list) or not sources:
            raise ValueError(f"{key}.sources: expected a non-empty list of sources, got {sources!r}")
        checked = [source_rule(item, f"{key}.sources[{index}]") for index, item in enumerate(sources)]
        weights = value.get("weights", [1.0] * len(sources))
        if (
            not isinstance(weights, list)
            or len(weights) != len(sources)
            or not all(isinstance(weight, (int, float)) and weight > 0 for weight in weights)
        ):
            raise ValueError(f"{key}.weights: expected {len(sources)} positive numbers, got {weights!r}")
        return {"source": "mix", "sources": checked, "weights": weights}

    return check
