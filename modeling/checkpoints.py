"""Reading checkpoint files written by other code (the official CLIP4STR, TCM and CLIP releases), safely.

`torch.load` unpickles, and unpickling can run any code the file names. Every foreign checkpoint is therefore
read with `weights_only=True` (tensors, containers and plain values only); a file that needs more is refused
unless the caller allows pickle for a file they trust (`scenetext convert ... --allow-pickle`).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch


def load_foreign_checkpoint(path: str | Path, allow_pickle: bool = False) -> Any:
    """The object saved in the torch checkpoint `path`, on the CPU.

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: the file needs full unpickling and `allow_pickle` is False, or it is not a torch
            checkpoint; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint file there")
    try:
        return torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as error:
        if allow_pickle:
            raise ValueError(f"{path}: not a readable torch checkpoint ({error})") from error
        raise ValueError(
            f"{path} cannot be loaded with torch.load(weights_only=True) ({_unpickler_reason(error)}): it is "
            "not a torch checkpoint, or it needs full unpickling. If you trust the file, pass --allow-pickle "
            "(allow_pickle=True)."
        ) from error
    # Truncated, or not a torch file at all: arbitrary bytes read as pickle opcodes fail in many ways.
    except (RuntimeError, EOFError, IndexError, KeyError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a readable torch checkpoint ({error})") from error


def _unpickler_reason(error: pickle.UnpicklingError) -> str:
    """The line of torch's long weights_only message that says what was refused (e.g. `Unsupported global:
    GLOBAL argparse.Namespace`)."""
    lines = [line.strip() for line in str(error).split("WeightsUnpickler error:")[-1].splitlines()]
    return next((line for line in lines if line), "unknown reason")
