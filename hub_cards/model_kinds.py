"""The model families that can be published, and what their Hub folders and cards need.

A folder's kind comes from `model_type` in its `config.json`; everything kind-specific the cards and the
upload checks use (pipeline tag, evaluation task, processor files, paper) is listed here once.
"""

from __future__ import annotations

from dataclasses import dataclass

from .papers import CLIP4STR_BIBTEX, CLIP4STR_REPORTED, TCM_BIBTEX, TCM_REPORTED, ReportedResults


@dataclass(frozen=True)
class ModelKind:
    """One publishable model family.

    Attributes:
        model_type: `model_type` of its `config.json`.
        display_name: the paper's name for it.
        task: the `task` of its `scenetext evaluate` JSON and its pipeline task.
        pipeline_tag: the Hub's task tag (the Hub has no scene-text tags, so the nearest standard one).
        tags: Hub tags besides the pipeline tag.
        template: card template file name under `hub_cards/templates/`.
        processor_files: files `save_pretrained` of its processor writes; a folder without them cannot be
            loaded with `AutoProcessor` / `AutoImageProcessor`.
        processor_auto_class: the Auto class that loads its pre/post-processing.
        metrics: Hub metric ids the card lists.
        paper_url, bibtex: the paper.
        reported: the paper's numbers, one column each.
    """

    model_type: str
    display_name: str
    task: str
    pipeline_tag: str
    tags: tuple[str, ...]
    template: str
    processor_files: tuple[str, ...]
    processor_auto_class: str
    metrics: tuple[str, ...]
    paper_url: str
    bibtex: str
    reported: tuple[ReportedResults, ...]


MODEL_KINDS: dict[str, ModelKind] = {
    "clip4str": ModelKind(
        model_type="clip4str",
        display_name="CLIP4STR",
        task="scene-text-recognition",
        pipeline_tag="image-to-text",
        tags=("scene-text-recognition", "ocr", "clip", "clip4str"),
        template="clip4str.md",
        processor_files=("processor_config.json", "tokenizer_config.json", "vocab.json"),
        processor_auto_class="AutoProcessor",
        metrics=("accuracy", "cer"),
        paper_url="https://arxiv.org/abs/2305.14014",
        bibtex=CLIP4STR_BIBTEX,
        reported=CLIP4STR_REPORTED,
    ),
    "tcm": ModelKind(
        model_type="tcm",
        display_name="TCM-DBNet",
        task="scene-text-detection",
        pipeline_tag="object-detection",
        tags=("scene-text-detection", "ocr", "clip", "tcm", "dbnet"),
        template="tcm.md",
        processor_files=("preprocessor_config.json",),
        processor_auto_class="AutoImageProcessor",
        metrics=("precision", "recall", "f1"),
        paper_url="https://arxiv.org/abs/2302.14338",
        bibtex=TCM_BIBTEX,
        reported=TCM_REPORTED,
    ),
}


def model_kind(model_type: object, where: str = "config.json") -> ModelKind:
    """The kind of a `model_type`, or a ValueError naming the supported ones."""
    if model_type not in MODEL_KINDS:
        raise ValueError(
            f"{where}: model_type {model_type!r} cannot be published; expected one of {sorted(MODEL_KINDS)}"
        )
    return MODEL_KINDS[model_type]
