"""Rewrite the configs of the shipped default folders (`defaults/recognizer`, `defaults/detector`) and relink
their code.

The code files of a default folder are symbolic links to the package's travelling files (`modeling/<model>/`,
`processors/<model>/`, `pipelines/`), so the folders carry the current code with no copy to keep in step. What
leaves the repository holds real files: a wheel (setuptools copies the files the links point to), what a loaded
default saves (transformers copies the module files) and what `scenetext push` uploads.

`python -m scenetext.assets.regenerate_defaults` loads each folder and saves it again with `save_pretrained`
of the model and its processor: the configs and processor files are rewritten (run it after changing a config
or processor class), and the links follow the code files `save_pretrained` writes (a travelling file added or
removed). The weights must come back bit-identical, and the shipped weights file and model card are kept as they
are; otherwise the folder is left as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoProcessor

from scenetext import modeling, pipelines, processors
from scenetext.assets import DEFAULTS_DIR
from scenetext.modeling.clip4str import Clip4StrForSceneTextRecognition
from scenetext.modeling.tcm import TcmForSceneTextDetection

MODEL_CLASSES = {"recognizer": Clip4StrForSceneTextRecognition, "detector": TcmForSceneTextDetection}
WEIGHTS = "model.safetensors"
MODEL_CARD = "README.md"


def travelling_sources() -> dict[str, Path]:
    """The code files that travel with saved folders, by file name (unique: a folder holds them side by side)."""
    sources: dict[str, Path] = {}
    for package in (modeling, processors, pipelines):
        for path in Path(package.__path__[0]).rglob("*.py"):
            if path.name != "__init__.py":
                sources[path.name] = path
    return sources


def regenerate_default(name: str, defaults_dir: Path = DEFAULTS_DIR) -> Path:
    """Load and save `defaults_dir/name` again, keeping its weights file and linking its code; returns the folder.

    Raises:
        ValueError: `name` is not a shipped default, the saved weights differ from the shipped ones, or
            `save_pretrained` wrote a code file that is not a travelling source.
    """
    if name not in MODEL_CLASSES:
        raise ValueError(f"{name!r} is not a shipped default; expected one of {sorted(MODEL_CLASSES)}")
    folder = defaults_dir / name
    model = MODEL_CLASSES[name].from_pretrained(folder)
    processor = AutoProcessor.from_pretrained(folder)
    sources = travelling_sources()
    with tempfile.TemporaryDirectory(prefix=f"scenetext-{name}-") as staging_dir:
        staging = Path(staging_dir) / name
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        before, after = load_file(folder / WEIGHTS), load_file(staging / WEIGHTS)
        changed = sorted(
            key
            for key in before.keys() | after.keys()
            if key not in before or key not in after or not torch.equal(before[key], after[key])
        )
        if changed:
            raise ValueError(
                f"{folder}: saving changed the weights {changed[:5]}; the folder is left as it was"
            )
        code = sorted(path.name for path in staging.glob("*.py"))
        unknown = [file_name for file_name in code if file_name not in sources]
        if unknown:
            raise ValueError(f"{folder}: saved code files {unknown} are not travelling sources to link to")
        shutil.copy2(folder / WEIGHTS, staging / WEIGHTS)
        if (
            folder / MODEL_CARD
        ).is_file():  # written by hand: what the model was trained on, measured numbers
            shutil.copy2(folder / MODEL_CARD, staging / MODEL_CARD)
        shutil.rmtree(folder)
        shutil.copytree(staging, folder, ignore=shutil.ignore_patterns("*.py"))
    for file_name in code:
        (folder / file_name).symlink_to(os.path.relpath(sources[file_name], folder))
    return folder


def main() -> None:
    for name in MODEL_CLASSES:
        print(f"regenerated {regenerate_default(name)}")


if __name__ == "__main__":
    main()
