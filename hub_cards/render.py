"""Render a model card (Hub metadata + body) for a saved model folder from its files and an evaluation JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import ModelCard, ModelCardData
from safetensors import safe_open

from .eval_results import eval_results, results_table
from .model_kinds import ModelKind

TEMPLATES_DIR = Path(__file__).parent / "templates"
DEFAULT_LICENSE = "apache-2.0"


def render_model_card(
    folder: str | Path,
    kind: ModelKind,
    repo_id: str,
    *,
    eval_report: Mapping[str, Any] | None = None,
    training_config: Mapping[str, Any] | None = None,
    license: str = DEFAULT_LICENSE,
    base_model: str | Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    language: str | Sequence[str] | None = "en",
    pipeline_tasks: Sequence[str] = (),
    ocr_recognizer: str | None = None,
) -> ModelCard:
    """The card of the model saved in `folder`, to be published as `repo_id`.

    Args:
        folder: a folder written by `save_pretrained` (config, weights, processor files).
        kind: its model family (see `model_kinds.MODEL_KINDS`).
        repo_id: the Hub repository the usage snippets load from.
        eval_report: a `scenetext evaluate` JSON (already checked with `load_evaluation_report`); its scores
            become the card's `model-index` and its results table.
        training_config: the training run's configuration, shown as the training recipe.
        license, base_model, datasets, language: Hub metadata.
        pipeline_tasks: the folder's `custom_pipelines` tasks; the model's own task adds a pipeline snippet.
        ocr_recognizer: for a detector registering the `ocr` pipeline, the recognizer (Hub id) its scene
            reading snippet pairs it with.
    """
    folder = Path(folder)
    model_name = repo_id.split("/")[-1]
    results = eval_results(dict(eval_report), kind) if eval_report else None
    card_data = ModelCardData(
        # The model name only names the `model-index` block; without results it would be a stray key.
        model_name=model_name if results else None,
        library_name="transformers",
        pipeline_tag=kind.pipeline_tag,
        tags=list(kind.tags),
        license=license,
        language=[language] if isinstance(language, str) else language,
        base_model=base_model if isinstance(base_model, str | None) else list(base_model),
        datasets=list(datasets) if datasets else None,
        metrics=list(kind.metrics),
        eval_results=results,
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATES_DIR / kind.template),
        model_name=model_name,
        repo_id=repo_id,
        paper_url=kind.paper_url,
        bibtex=kind.bibtex,
        details=_model_details(folder, kind),
        pipeline_task=kind.task if kind.task in pipeline_tasks else None,
        ocr_recognizer=ocr_recognizer if "ocr" in pipeline_tasks else None,
        training=_training_section(training_config),
        evaluation=_evaluation_section(eval_report, kind),
    )


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def count_parameters(folder: Path) -> int:
    """Number of floating-point weights in the folder's safetensors files, read from their headers only.

    Integer tensors are lookup tables saved as buffers (CLIP4STR's BPE merge ranks), not parameters.
    """
    total = 0
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as weights:
            for name in weights.keys():  # noqa: SIM118 (safe_open is not a mapping)
                tensor = weights.get_slice(name)
                if not tensor.get_dtype().startswith(("F", "BF")):
                    continue
                count = 1
                for size in tensor.get_shape():
                    count *= size
                total += count
    return total


def _format_count(count: int) -> str:
    return f"{count / 1e6:.1f} M" if count >= 1e5 else f"{count:,}"


# TCM's detection heads: the paper's name of the detector and what follows the text-score map.
TCM_ARCHITECTURES = {
    "dbnet": ("TCM-DBNet", "an FPN and a DBNet head (differentiable binarization)"),
    "pan": ("TCM-PANet", "an FPEM+FFM neck and a PAN head (text kernels grown by pixel aggregation)"),
    "fcenet": ("TCM-FCENet", "an FPN and an FCENet head (Fourier contour embedding, curved polygons)"),
}


def _model_details(folder: Path, kind: ModelKind) -> dict[str, Any]:
    config = _read_json(folder / "config.json")
    details: dict[str, Any] = {"parameters": _format_count(count_parameters(folder))}
    if kind.model_type == "clip4str":
        vision = config["vision_config"]
        size = vision["image_size"]
        height, width = (size, size) if isinstance(size, int) else size
        details.update(
            vision=(
                f"{vision['num_hidden_layers']} layers, width {vision['hidden_size']}, "
                f"patch {vision['patch_size']}"
            ),
            decoder=f"{config['decoder_num_layers']} layer(s), {config['decoder_num_heads']} heads",
            image_size=f"{height}x{width}",
            max_label_length=config["max_label_length"],
            charset=config["charset"],
            charset_size=len(config["charset"]),
        )
    else:
        processor = _read_json(folder / "preprocessor_config.json")
        # folders saved before TCM had other heads hold DBNet
        head_type = config.get("head_type", "dbnet")
        post_processing = (
            processor.get("post_processing", {})
            if head_type == "dbnet"
            else processor.get(f"{'pan' if head_type == 'pan' else 'fce'}_post_processing", {})
        )
        details.update(
            architecture=TCM_ARCHITECTURES[head_type][0],
            head=TCM_ARCHITECTURES[head_type][1],
            backbone=f"stage depths {config['layers']}, width {config['width']}",
            shortest_edge=processor["size"]["shortest_edge"],
            longest_edge=processor["size"]["longest_edge"],
            post_processing=", ".join(f"{key}={value}" for key, value in post_processing.items()),
        )
    return details


def _training_section(training_config: Mapping[str, Any] | None) -> str:
    if not training_config:
        return "No training configuration was recorded with this checkpoint."
    recipe = yaml.safe_dump(dict(training_config), sort_keys=False, allow_unicode=True).strip()
    return f"Trained with `scenetext train` and this configuration:\n\n```yaml\n{recipe}\n```"


def _evaluation_section(eval_report: Mapping[str, Any] | None, kind: ModelKind) -> str:
    if not eval_report:
        return "Not evaluated yet: run `scenetext evaluate` and publish with `--eval report.json`."
    report = dict(eval_report)
    if kind.task == "scene-text-recognition":
        protocol = report.get("protocol", "36")
        intro = (
            f"Word accuracy and 1 - NED (%) with `scenetext evaluate` under the {protocol}-character protocol, "
            "next to the numbers the CLIP4STR authors report for their released checkpoints."
        )
    else:
        intro = (
            "Precision, recall and hmean (%) with `scenetext evaluate` (ICDAR 2015 IoU protocol, "
            f"score threshold: {report.get('score_threshold', {}).get('mode', 'all')}), next to the "
            "F-measure the TCM authors report."
        )
    return f"{intro}\n\n{results_table(report, kind)}"
