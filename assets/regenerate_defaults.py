"""Rewrite the shipped default folders (`defaults/recognizer`, `defaults/detector`) with the current code.

`python -m scenetext.assets.regenerate_defaults` loads each folder and saves it again with `save_pretrained` of the
model and its processor, so the folders carry the current modeling, processing and pipeline code (they load
with `trust_remote_code=True` where scenetext is not installed). Run it after changing any of that code; the
weights must come back bit-identical, or the folder is left as it was.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoProcessor

from scenetext.assets import DEFAULTS_DIR
from scenetext.modeling.clip4str import Clip4StrForSceneTextRecognition
from scenetext.modeling.tcm import TcmForSceneTextDetection

MODEL_CLASSES = {"recognizer": Clip4StrForSceneTextRecognition, "detector": TcmForSceneTextDetection}


def regenerate_default(name: str, defaults_dir: Path = DEFAULTS_DIR) -> Path:
    """Load and save `defaults_dir/name` again; returns the folder.

    Raises:
        ValueError: `name` is not a shipped default, or the saved weights differ from the shipped ones.
    """
    if name not in MODEL_CLASSES:
        raise ValueError(f"{name!r} is not a shipped default; expected one of {sorted(MODEL_CLASSES)}")
    folder = defaults_dir / name
    model = MODEL_CLASSES[name].from_pretrained(folder)
    processor = AutoProcessor.from_pretrained(folder)
    with tempfile.TemporaryDirectory(prefix=f"scenetext-{name}-") as staging_dir:
        staging = Path(staging_dir) / name
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        before, after = load_file(folder / "model.safetensors"), load_file(staging / "model.safetensors")
        changed = sorted(
            key
            for key in before.keys() | after.keys()
            if key not in before or key not in after or not torch.equal(before[key], after[key])
        )
        if changed:
            raise ValueError(
                f"{folder}: saving changed the weights {changed[:5]}; the folder is left as it was"
            )
        shutil.rmtree(folder)
        shutil.copytree(staging, folder)
    return folder


def main() -> None:
    for name in MODEL_CLASSES:
        print(f"regenerated {regenerate_default(name)}")


if __name__ == "__main__":
    main()
