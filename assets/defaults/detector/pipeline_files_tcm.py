"""The pipeline code a saved model folder carries, so that `pipeline(task, model=FOLDER, trust_remote_code=True)`
works on every folder `save_pretrained` writes.

transformers imports `config.custom_pipelines[task]["impl"]` ("module.Class") from the model folder itself, so the
pipeline files must sit in it. They are not in this folder of the source tree (pipelines serve both models and live
in `scenetext/pipelines/`), and this file travels to the Hub, where `scenetext` may not exist. So each file is
looked up, first hit wins, in:
1. the installed scenetext package: `scenetext/pipelines/`, two levels above this file;
2. the folder this module was loaded from: a model loaded with trust_remote_code keeps its code in the modules
   cache, where the pipeline files are only if the pipeline was loaded too;
3. the folder or Hub repository the model was loaded from (`name_or_path`), which holds them when it was
   complete itself.
A pipeline found nowhere (a model loaded with trust_remote_code from a folder without pipeline files, then moved
or deleted) is left out of the saved folder with a warning.

Every model folder carries this module (`pipeline_files_<model>.py`), since model folders cannot import each other;
in the source tree the TCM one is a symbolic link to the CLIP4STR one, so there is a single text to edit (setuptools,
pip and transformers' code copying all write the file the link points to).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import ClassVar

from transformers.dynamic_module_utils import get_relative_import_files
from transformers.utils import cached_file, logging

logger = logging.get_logger(__name__)

# `scenetext/pipelines/` when this module is part of the installed (or editable) scenetext package.
_PACKAGE_PIPELINES = (
    Path(__file__).resolve().parents[2] / "pipelines" if __name__.startswith("scenetext.") else None
)


def find_pipeline_file(file_name: str, name_or_path: str | None) -> Path | None:
    """The first copy of the pipeline file `file_name` found in the places listed in the module docstring."""
    for folder in (_PACKAGE_PIPELINES, Path(__file__).resolve().parent):
        if folder is not None and (folder / file_name).is_file():
            return folder / file_name
    if not name_or_path:
        return None
    try:
        resolved = cached_file(
            name_or_path,
            file_name,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )
    except OSError:  # not a folder nor a reachable Hub repository
        return None
    return Path(resolved) if resolved else None


def declare_pipelines(
    config, pipelines: dict[str, tuple[str, str]], name_or_path: str | None
) -> dict[str, list[Path]]:
    """Write `custom_pipelines` for every pipeline whose code is found into `config`; return the files (the
    pipeline module and the same-folder modules it imports) `copy_pipeline_files` copies.

    Args:
        config: the model's config; its `custom_pipelines` is replaced.
        pipelines: task -> (pipeline file name, pipeline class name).
        name_or_path: the folder or Hub repository the model was loaded from, if any.
    """
    custom_pipelines, files = {}, {}
    for task, (file_name, class_name) in pipelines.items():
        source = find_pipeline_file(file_name, name_or_path)
        if source is None:
            logger.warning(f"{file_name} not found: the saved folder will not declare the {task!r} pipeline")
            continue
        files[task] = [source, *map(Path, get_relative_import_files(str(source)))]
        custom_pipelines[task] = {"impl": f"{source.stem}.{class_name}", "pt": ["AutoModel"], "type": "image"}
    config.custom_pipelines = custom_pipelines
    return files


def copy_pipeline_files(files: dict[str, list[Path]], save_directory: str | Path) -> None:
    """Copy the files `declare_pipelines` found into `save_directory`, flat, as transformers expects them."""
    for paths in files.values():
        for path in paths:
            target = Path(save_directory) / path.name
            if path.resolve() != target.resolve():
                shutil.copyfile(path, target)


class SavesPipelineFilesMixin:
    """Put before `PreTrainedModel` in a model's bases: its `save_pretrained` also writes the `custom_pipelines`
    entry and the code of the pipelines in `saved_pipelines`, so that every path writing a folder (Trainer,
    training loop, conversion, `push_to_hub`) writes a complete one."""

    # task -> (pipeline file name, pipeline class name); each model names its own.
    saved_pipelines: ClassVar[dict[str, tuple[str, str]]] = {}

    def save_pretrained(self, save_directory, *args, is_main_process: bool = True, **kwargs) -> None:
        files = declare_pipelines(self.config, self.saved_pipelines, self.name_or_path)
        super().save_pretrained(save_directory, *args, is_main_process=is_main_process, **kwargs)
        if is_main_process:
            copy_pipeline_files(files, save_directory)
