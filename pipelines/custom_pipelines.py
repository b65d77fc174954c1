"""Make the pipelines travel with a model folder: copy their code in and declare them in `custom_pipelines`.

`pipeline(task, model=FOLDER, trust_remote_code=True)` reads `config.custom_pipelines[task]["impl"]`
("module.Class") and imports that module from the folder itself, so a folder written by `save_pretrained`
becomes usable as a pipeline, with nothing of this repository installed, once `add_pipelines(folder)` ran.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from transformers.dynamic_module_utils import get_relative_import_files

# Each pipeline's source file in this folder. This module is a build tool, not Hub code: it reads those files
# by path instead of importing them.
_PIPELINES_ROOT = Path(__file__).resolve().parent
_RECOGNITION_IMPL = ("pipeline_clip4str.py", "SceneTextRecognitionPipeline")
_DETECTION_IMPL = ("pipeline_tcm.py", "SceneTextDetectionPipeline")
_OCR_IMPL = ("pipeline_ocr.py", "OcrPipeline")

# Tasks per model type. A recognizer answers to `image-to-text` too: custom tasks are looked up before
# transformers 5 remaps that removed task name to `image-text-to-text`.
PIPELINES_BY_MODEL_TYPE: dict[str, dict[str, tuple[str, str]]] = {
    "clip4str": {"scene-text-recognition": _RECOGNITION_IMPL, "image-to-text": _RECOGNITION_IMPL},
    "tcm": {"scene-text-detection": _DETECTION_IMPL, "ocr": _OCR_IMPL},
}


def add_pipelines(folder: str | Path) -> dict[str, dict]:
    """Copy the pipeline code matching the folder's model into it and write `custom_pipelines` into its
    `config.json`; returns the `custom_pipelines` written.

    Args:
        folder: a model folder written by `save_pretrained` (CLIP4STR recognizer or TCM detector), with its
            processor saved next to it.

    Raises:
        FileNotFoundError: the folder or its `config.json` is missing.
        ValueError: the config's `model_type` has no pipelines here.
    """
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{config_path} not found: expected a model folder written by save_pretrained"
        )
    config = json.loads(config_path.read_text(encoding="utf-8"))
    model_type = config.get("model_type")
    if model_type not in PIPELINES_BY_MODEL_TYPE:
        raise ValueError(
            f"{config_path} has model_type {model_type!r}; pipelines exist for {sorted(PIPELINES_BY_MODEL_TYPE)}"
        )
    custom_pipelines = {}
    for task, (relative_path, class_name) in PIPELINES_BY_MODEL_TYPE[model_type].items():
        source = _PIPELINES_ROOT / relative_path
        # the pipeline file and the same-folder modules it imports, flat, as transformers expects them
        for path in [source, *map(Path, get_relative_import_files(str(source)))]:
            shutil.copyfile(path, folder / path.name)
        custom_pipelines[task] = {"impl": f"{source.stem}.{class_name}", "pt": ["AutoModel"], "type": "image"}
    config["custom_pipelines"] = custom_pipelines
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return custom_pipelines
