"""Reading the JSON and YAML files a model card is made from (configs, evaluation reports, training recipes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


def read_mapping_file(path: str | Path, what: str = "") -> dict[str, Any]:
    """The object stored in the JSON file, or (suffix `.yaml`/`.yml`) YAML file, `path`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file does not parse, or holds something other than an object / mapping; messages name
            the file as `what` (e.g. "training config") and its path.
    """
    path = Path(path)
    name = f"{what} {path}" if what else str(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name} does not exist")
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ValueError(f"{name} is not valid YAML: {error}") from error
        expected = "a mapping"
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{name} is not valid JSON: {error}") from error
        expected = "an object"
    if not isinstance(data, dict):
        raise ValueError(f"{name}: expected {expected}, got {type(data).__name__}")
    return data
