"""Checks run before anything is uploaded: repo id, the model folder's files, and the card's metadata.

Each refusal names the part that is wrong (the file, the field, the value) and what was expected.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from transformers.dynamic_module_utils import get_relative_imports

from .mapping_files import read_mapping_file
from .model_kinds import ModelKind, model_kind

# License identifiers the Hub recognises in card metadata (https://huggingface.co/docs/hub/repositories-licenses).
HUB_LICENSES = frozenset(
    {
        "apache-2.0", "mit", "openrail", "bigscience-openrail-m", "creativeml-openrail-m",
        "bigscience-bloom-rail-1.0", "bigcode-openrail-m", "afl-3.0", "artistic-2.0", "bsl-1.0", "bsd",
        "bsd-2-clause", "bsd-3-clause", "bsd-3-clause-clear", "c-uda", "cc", "cc0-1.0", "cc-by-2.0",
        "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0", "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0",
        "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0",
        "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "cdla-sharing-1.0", "cdla-permissive-1.0", "cdla-permissive-2.0",
        "wtfpl", "ecl-2.0", "epl-1.0", "epl-2.0", "etalab-2.0", "eupl-1.1", "agpl-3.0", "gfdl",
        "gpl", "gpl-2.0", "gpl-3.0", "lgpl", "lgpl-2.1", "lgpl-3.0", "isc",
        "lppl-1.3c", "ms-pl", "apple-ascl", "mpl-2.0", "odc-by", "odbl",
        "openrail++", "osl-3.0", "postgresql", "ofl-1.1", "ncsa", "unlicense", "zlib", "pddl", "lgpl-lr",
        "deepfloyd-if-license", "llama2", "llama3", "llama3.1",
        "llama3.2", "llama3.3", "gemma", "unknown", "other",
    }
)  # fmt: skip
# ISO 639-1/2/3 codes, or the Hub's special language values.
_LANGUAGE = re.compile(r"^([a-z]{2,3}(-[a-zA-Z0-9]+)*|code|multilingual)$")
# Files `save_pretrained` of each processor class writes the `auto_map` of its code into.
_PROCESSOR_CONFIGS = ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json")


def check_repo_id(repo_id: object, role: str = "repo id") -> str:
    """`repo_id` if it is a valid Hub model repository id (`name` or `namespace/name`), else a ValueError
    starting with `role` (what the id is for)."""
    if not isinstance(repo_id, str):
        raise TypeError(f"{role} must be a string like 'user/model-name', got {type(repo_id).__name__}")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(f"{role} {repo_id!r} is malformed: {error}") from error
    return repo_id


def _class_references(auto_map: object) -> Iterator[str]:
    """Every `module.Class` an `auto_map` value points at (strings, [slow, fast] pairs, {backend: class})."""
    if isinstance(auto_map, str):
        yield auto_map
    elif isinstance(auto_map, list | tuple):
        for item in auto_map:
            yield from _class_references(item)
    elif isinstance(auto_map, dict):
        for item in auto_map.values():
            yield from _class_references(item)


def code_modules(folder: Path) -> dict[str, str]:
    """Code files the folder's configs point at (`module.py` -> the config file that names it)."""
    modules: dict[str, str] = {}
    config = read_mapping_file(folder / "config.json")
    references = [("config.json", ref) for ref in _class_references(config.get("auto_map"))]
    for task, pipeline in (config.get("custom_pipelines") or {}).items():
        references.append((f"config.json custom_pipelines[{task!r}]", pipeline.get("impl", "")))
    for name in _PROCESSOR_CONFIGS:
        if (folder / name).is_file():
            references += [
                (name, ref) for ref in _class_references(read_mapping_file(folder / name).get("auto_map"))
            ]
    for source, reference in references:
        # A reference to another repository's code ("owner/repo--module.Class") is not part of this folder.
        if "--" in reference:
            continue
        module = reference.rsplit(".", 1)[0]
        modules.setdefault(f"{module}.py", source)
    return modules


def check_model_folder(folder: str | Path) -> ModelKind:
    """Check that a `save_pretrained` folder has everything a Hub copy needs to load with
    `trust_remote_code=True`: config with `auto_map`, safetensors weights, code files (and the files they
    import), processor files. Returns its model kind.

    Raises:
        FileNotFoundError: the folder or one of its files is missing (named).
        ValueError: the folder is of a kind that cannot be published, or holds pickled weights only.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder {folder} does not exist")
    config_path = folder / "config.json"
    if not config_path.is_file() and (folder / "adapter_config.json").is_file():
        raise ValueError(
            f"{folder} is a PEFT adapter folder: publish a plain folder made with "
            "scenetext.training.adapters.merge_adapter, or upload the adapter as it is with "
            "huggingface_hub.upload_folder once its adapter_config.json names the base model by Hub id"
        )
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{folder}: config.json is missing (expected a folder written by save_pretrained)"
        )
    config = read_mapping_file(config_path)
    kind = model_kind(config.get("model_type"), where=str(config_path))
    _check_weights(folder)
    auto_map = config.get("auto_map") or {}
    missing_classes = [name for name in ("AutoConfig", "AutoModel") if name not in auto_map]
    if missing_classes:
        raise ValueError(
            f"{config_path}: auto_map lacks {missing_classes}; save the model with the scenetext classes "
            "(they register their code) so the Hub copy loads with trust_remote_code=True"
        )
    missing_processor = [name for name in kind.processor_files if not (folder / name).is_file()]
    if missing_processor:
        raise FileNotFoundError(
            f"{folder}: processor files {missing_processor} are missing; save the processor into the folder "
            f"too ({kind.processor_auto_class} loads it)"
        )
    processor_auto_map: dict[str, Any] = {}
    for name in kind.processor_files:
        if name.endswith(("processor_config.json", "preprocessor_config.json")):
            processor_auto_map.update(read_mapping_file(folder / name).get("auto_map") or {})
    if kind.processor_auto_class not in processor_auto_map:
        raise ValueError(
            f"{folder}: {' / '.join(kind.processor_files[:1])} has no auto_map entry for "
            f"{kind.processor_auto_class}; save the processor with the scenetext classes"
        )
    _check_code_files(folder)
    return kind


def _check_weights(folder: Path) -> None:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(read_mapping_file(index).get("weight_map", {}).values()))
        missing = [shard for shard in shards if not (folder / shard).is_file()]
        if not shards or missing:
            raise FileNotFoundError(f"{index}: weight shards {missing or '(none listed)'} are missing")
        return
    if (folder / "model.safetensors").is_file():
        return
    # The names save_pretrained gives pickled weights (optimizer states and the like are not weights).
    pickled = sorted(path.name for path in folder.glob("pytorch_model*.bin"))
    if pickled:
        raise ValueError(
            f"{folder}: weights {pickled} are pickled; only safetensors are published "
            "(load and save_pretrained the model to convert them)"
        )
    raise FileNotFoundError(f"{folder}: model weights are missing (expected model.safetensors)")


def _check_code_files(folder: Path) -> None:
    pending = code_modules(folder)
    seen: set[str] = set()
    while pending:
        name, named_by = pending.popitem()
        if name in seen:
            continue
        seen.add(name)
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{folder}: code file {name} (named by {named_by}) is missing")
        for module in get_relative_imports(str(path)):
            pending.setdefault(f"{module}.py", f"the relative import in {name}")


def validate_card_metadata(card: ModelCard, kind: ModelKind) -> None:
    """Offline check of a card's metadata as the Hub reads it (`ModelCard.validate` needs the network).

    The card is parsed back from its text first, so what is checked is what will be uploaded.
    """
    try:
        data = ModelCard(str(card)).data
    except ValueError as error:
        raise ValueError(f"model card metadata does not parse: {error}") from error
    problems = []
    if data.library_name != "transformers":
        problems.append(f"library_name is {data.library_name!r}, expected 'transformers'")
    if data.pipeline_tag != kind.pipeline_tag:
        problems.append(f"pipeline_tag is {data.pipeline_tag!r}, expected {kind.pipeline_tag!r}")
    if data.license not in HUB_LICENSES:
        problems.append(
            f"license {data.license!r} is not a Hub license id (e.g. 'apache-2.0', 'mit', 'other')"
        )
    elif data.license == "other" and not (data.license_name and data.license_link):
        problems.append("license 'other' needs license_name and license_link")
    if not data.tags or any(not isinstance(tag, str) or not tag.strip() for tag in data.tags):
        problems.append(f"tags must be non-empty strings, got {data.tags!r}")
    for field in ("base_model", "datasets"):
        values = getattr(data, field)
        for value in [values] if isinstance(values, str) else values or []:
            try:
                validate_repo_id(value)
            except (HFValidationError, TypeError) as error:
                problems.append(f"{field} {value!r} is not a Hub repo id: {error}")
    languages = data.language
    for language in [languages] if isinstance(languages, str) else languages or []:
        if not isinstance(language, str) or not _LANGUAGE.match(language):
            problems.append(f"language {language!r} is not an ISO 639 code")
    for result in data.eval_results or []:
        value = result.metric_value
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            problems.append(
                f"eval result {result.dataset_name}/{result.metric_type}: value {value!r} is not a number"
            )
        if result.task_type != kind.pipeline_tag:
            problems.append(
                f"eval result {result.dataset_name}: task type {result.task_type!r}, expected {kind.pipeline_tag!r}"
            )
    if problems:
        raise ValueError("model card metadata is invalid: " + "; ".join(problems))
