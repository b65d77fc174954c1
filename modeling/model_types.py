"""Which model a saved folder holds, read from its config.json before any weight is loaded.

A recognizer folder passed where a detector is expected (or the reverse) would otherwise be loaded with
mismatched weights, flood the terminal with warnings and fail far from the cause.
"""

from __future__ import annotations

import json
from pathlib import Path


def read_model_type(model_path: str | Path) -> str | None:
    """The `model_type` of a local save_pretrained folder's config.json, or None for a Hub id (not read here:
    the loader fetches and checks it).

    Raises:
        FileNotFoundError: a local folder without config.json.
        ValueError: a config.json that is not a JSON object.
    """
    folder = Path(model_path)
    if not folder.is_dir():
        return None
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder} has no config.json: expected a folder written by save_pretrained")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{config_path} is not valid JSON ({error})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{config_path} holds a JSON {type(config).__name__}, expected an object")
    return config.get("model_type")


def require_model_type(model_path: str | Path, expected: str, role: str) -> None:
    """Raise ValueError when the local folder `model_path`, given as the `role` (e.g. "recognizer"), holds a
    model whose type is not `expected`; the message names both types."""
    found = read_model_type(model_path)
    if found is not None and found != expected:
        raise ValueError(
            f"{model_path} holds a {found!r} model, expected a {expected!r} {role} (config.json model_type)"
        )
