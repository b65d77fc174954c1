"""Load a Hub folder the way a user will, before it is uploaded: in a fresh Python process where `scenetext`
cannot be imported and the Hub is offline, with `trust_remote_code=True`, and run one inference through the
model with its processor and through every pipeline the folder registers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .model_kinds import ModelKind

# Put first in a script run in a fresh process: `scenetext` cannot be imported there, as on a user's machine
# that has only the downloaded folder (an editable install would otherwise find it). The tests' isolated
# processes start with it too.
BLOCK_SCENETEXT = r"""
import sys


class _BlockScenetext:
    def find_spec(self, name, path=None, target=None):
        if name == "scenetext" or name.startswith("scenetext."):
            raise ImportError("scenetext is not importable in this isolated process")
        return None


sys.meta_path.insert(0, _BlockScenetext())
"""

# Runs in the isolated process: argv = [folder, model_type, (recognizer folder)]. Prints one JSON line
# describing what loaded.
_VERIFY_SCRIPT = (
    BLOCK_SCENETEXT
    + r"""
import json

import numpy as np
import torch
from PIL import Image
from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoProcessor, pipeline

folder, model_type = sys.argv[1], sys.argv[2]
recognizer = sys.argv[3] if len(sys.argv) > 3 else None
config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
rng = np.random.default_rng(0)
if model_type == "clip4str":
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    image = Image.fromarray(rng.integers(0, 256, (32, 128, 3), dtype=np.uint8))
    with torch.no_grad():
        logits = model(pixel_values=processor(images=[image], return_tensors="pt")["pixel_values"]).logits
    decoded = processor.batch_decode(logits)
    if not isinstance(decoded["generated_text"][0], str):
        raise TypeError(f"batch_decode gave {decoded!r}, expected texts")
    inference = {"generated_text": decoded["generated_text"][0], "score": float(decoded["scores"][0])}
else:
    processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)
    image = Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))
    with torch.no_grad():
        outputs = model(pixel_values=processor(image, return_tensors="pt")["pixel_values"])
    regions = processor.post_process_text_detection(outputs, target_sizes=[(image.height, image.width)])[0]
    inference = {"num_regions": len(regions["scores"])}
pipelines = {}
for task in getattr(config, "custom_pipelines", None) or {}:
    if task == "ocr" and recognizer is None:
        pipelines[task] = "skipped: reading scenes needs a recognizer folder"
        continue
    extra = {"recognizer": recognizer} if task == "ocr" else {}
    result = pipeline(task, model=folder, trust_remote_code=True, **extra)(image)
    if model_type == "clip4str" and result[0]["generated_text"] != inference["generated_text"]:
        raise ValueError(f"pipeline {task!r} read {result!r}, the model with its processor {inference!r}")
    pipelines[task] = json.loads(json.dumps(result, default=str))
print(json.dumps({
    "config_class": type(config).__name__,
    "model_class": type(model).__name__,
    "processor_class": type(processor).__name__,
    "inference": inference,
    "pipelines": pipelines,
}))
"""
)

# Credentials are not needed to load a local folder; the child never sees them.
_TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH")


class VerificationError(RuntimeError):
    """The folder did not load or run in a clean process."""


def verify_folder(
    folder: str | Path, kind: ModelKind, timeout: float = 600, recognizer_folder: str | Path | None = None
) -> dict[str, Any]:
    """Load `folder` in an isolated process and run one inference; return what loaded and what it read.

    Every pipeline the folder registers in `custom_pipelines` is run too; a detector's `ocr` pipeline only
    with `recognizer_folder` (a recognizer folder it reads the detected words with), else it is reported
    as skipped.

    Returns:
        `{"config_class", "model_class", "processor_class", "inference", "pipelines": {task: result}}`.

    Raises:
        VerificationError: with the end of the child's error output.
    """
    folder = Path(folder).resolve()
    recognizer = [] if recognizer_folder is None else [str(Path(recognizer_folder).resolve())]
    with tempfile.TemporaryDirectory(prefix="scenetext-verify-") as workdir:
        env = {
            key: value for key, value in os.environ.items() if key not in (*_TOKEN_VARIABLES, "PYTHONPATH")
        }
        env.update(
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            HF_HOME=str(Path(workdir) / "hf_home"),
            HF_MODULES_CACHE=str(Path(workdir) / "modules"),
        )
        try:
            result = subprocess.run(
                [sys.executable, "-c", _VERIFY_SCRIPT, str(folder), kind.model_type, *recognizer],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as error:
            raise VerificationError(f"loading {folder} in a clean process took over {timeout:g} s") from error
    if result.returncode != 0:
        raise VerificationError(
            f"{folder} does not load with trust_remote_code=True in a clean process (nothing was uploaded):\n"
            f"{result.stderr[-3000:]}"
        )
    return json.loads(result.stdout.strip().splitlines()[-1])
