"""Which model a saved folder holds, read from its config.json before any weight is loaded.

A recognizer folder passed where a detector is expected (or the reverse) would otherwise be loaded with
mismatched weights, flood the terminal with warnings and fail far from the cause.
"""

from __future__ import annotations

import json
from pathlib import Path


def read_model_type(model_path: str | Path) -> str | None:
    """The `model_type` of a local save_pretrained folder's config.json, or None for a Hub id (not read here:
    the loader fetches and checks it). A PEFT adapter folder (adapter_config.json, no config.json) has the type
    of the base model it names.

    Raises:
        FileNotFoundError: a local folder without config.json.
        ValueError: a config.json that is not a JSON object.
    """
    folder = Path(model_path)
    if not folder.is_dir():
        return None
    config_path = folder / "config.json"
    adapter_config = folder / "adapter_config.json"
    if not config_path.is_file() and adapter_config.is_file():
        base = _read_json_object(adapter_config).get("base_model_name_or_path")
        if not isinstance(base, str) or Path(base).resolve() == folder.resolve():
            raise ValueError(f"{adapter_config} names no base model (base_model_name_or_path)")
        return read_model_type(base)
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder} has no config.json: expected a folder written by save_pretrained")
    return _read_json_object(config_path).get("model_type")


def _read_json_object(path: Path) -> dict:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} holds a JSON {type(config).__name__}, expected an object")
    return config


def require_model_type(model_path: str | Path, expected: str, role: str) -> None:
    """Raise ValueError when the local folder `model_path`, given as the `role` (e.g. "recognizer"), holds a
    model whose type is not `expected`; the message names both types."""
    found = read_model_type(model_path)
    if found is not None and found != expected:
        raise ValueError(
            f"{model_path} holds a {found!r} model, expected a {expected!r} {role} (config.json model_type)"
        )
