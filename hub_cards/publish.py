"""Publish a saved model folder to the Hub: assemble the upload folder (files + card), verify that it loads in
a clean process, then create the repository and upload everything in one commit.

Authentication is huggingface_hub's own (`hf auth login` or `HF_TOKEN`); no token is ever passed around,
printed, or written into the folder.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, get_token

from .checks import check_model_folder, check_repo_id, validate_card_metadata
from .eval_results import load_evaluation_report
from .mapping_files import read_mapping_file
from .render import DEFAULT_LICENSE, render_model_card
from .verify import verify_folder

# What a Hub model folder is made of; anything else in a training output (optimizer states, logs, pickles)
# stays behind.
UPLOADED_SUFFIXES = (".json", ".py", ".safetensors", ".txt")


def load_training_config(training_config: object) -> dict[str, Any] | None:
    """A training configuration given as a mapping, a dataclass (the training CLI's config) or a YAML/JSON
    file, as a dict."""
    if training_config is None:
        return None
    if isinstance(training_config, Mapping):
        return _plain(dict(training_config))
    if dataclasses.is_dataclass(training_config) and not isinstance(training_config, type):
        return _plain(dataclasses.asdict(training_config))
    if not isinstance(training_config, str | Path):
        raise TypeError(
            f"training_config must be a mapping, a dataclass or a YAML path, got {type(training_config).__name__}"
        )
    return read_mapping_file(training_config, "training config")


def _plain(recipe: dict[str, Any]) -> dict[str, Any]:
    """Only YAML's own types (paths and other objects as their text), so the card can print it."""
    return json.loads(json.dumps(recipe, default=str))


def assemble_upload_folder(
    folder: str | Path,
    destination: str | Path,
    repo_id: str,
    *,
    eval_json: str | Path | None = None,
    training_config: object = None,
    license: str = DEFAULT_LICENSE,
    base_model: str | Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    ocr_recognizer: str | None = None,
) -> Path:
    """Write the folder that will be uploaded: the model folder's Hub files (with the pipelines the model's
    `save_pretrained` wrote into it) and a rendered, validated card.

    The folder is built and checked in a staging folder and moved to `destination` only when every check
    (repo id, files, evaluation JSON, card metadata, no token in any file) passed.

    Raises:
        FileNotFoundError / ValueError: see `check_model_folder`, `load_evaluation_report`,
            `validate_card_metadata`; `destination` already holding files.
    """
    check_repo_id(repo_id)
    if ocr_recognizer is not None:
        check_repo_id(ocr_recognizer, role="ocr recognizer")
    folder, destination = Path(folder), Path(destination)
    if destination.exists() and any(destination.iterdir()):
        raise ValueError(f"output folder {destination} is not empty; choose a new or empty folder")
    kind = check_model_folder(folder)
    if ocr_recognizer is not None and kind.model_type != "tcm":
        raise ValueError(
            f"ocr recognizer: only a detector folder is paired with a recognizer; {folder} holds a "
            f"{kind.model_type} model"
        )
    report = load_evaluation_report(eval_json, kind) if eval_json is not None else None
    recipe = load_training_config(training_config)
    with tempfile.TemporaryDirectory(prefix="scenetext-assemble-") as staging_dir:
        staging = Path(staging_dir)
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix in UPLOADED_SUFFIXES:
                shutil.copy2(path, staging / path.name)
        config = json.loads((staging / "config.json").read_text(encoding="utf-8"))
        check_model_folder(staging)
        card = render_model_card(
            staging,
            kind,
            repo_id,
            eval_report=report,
            training_config=recipe,
            license=license,
            base_model=base_model,
            datasets=datasets,
            pipeline_tasks=list(config.get("custom_pipelines") or {}),
            ocr_recognizer=ocr_recognizer,
        )
        validate_card_metadata(card, kind)
        card.save(staging / "README.md")
        _refuse_token_in_files(staging)
        destination.mkdir(parents=True, exist_ok=True)
        for path in sorted(staging.iterdir()):
            shutil.copy2(path, destination / path.name)
    return destination


def _refuse_token_in_files(folder: Path) -> None:
    """A token pasted into a config or code file would be published with it."""
    token = get_token()
    if not token:
        return
    secret = token.encode()
    for path in sorted(folder.iterdir()):
        if secret in path.read_bytes():
            raise ValueError(
                f"{path.name} contains your Hugging Face token; remove it before publishing (nothing was uploaded)"
            )


def publish_folder(
    folder: str | Path,
    repo_id: str,
    eval_json: str | Path | None = None,
    private: bool = False,
    revision: str | None = None,
    create_pr: bool = False,
    dry_run_dir: str | Path | None = None,
    *,
    commit_message: str | None = None,
    verify_timeout: float = 600,
    **card_options: Any,
) -> str:
    """Publish the model saved in `folder` as the Hub repository `repo_id`.

    The upload folder is assembled and checked, then loaded in an isolated process (`verify_folder`); only then
    is the repository created (if it does not exist) and the folder uploaded in a single commit.

    Args:
        folder: a `save_pretrained` folder of a scenetext model with its processor.
        repo_id: `namespace/name` (or `name` in your own namespace).
        eval_json: a `scenetext evaluate` JSON of this model; its results go onto the card.
        private: create the repository private (an existing repository keeps its visibility).
        revision: branch to commit to (created from the default branch if missing); with `create_pr`, the
            branch the pull request targets.
        create_pr: open a pull request instead of committing directly.
        dry_run_dir: write and verify the folder there, upload nothing.
        card_options: what `assemble_upload_folder` puts on the card besides `eval_json`: `training_config`
            (the run's configuration, a mapping, dataclass or YAML file, shown as the training recipe),
            `license`, `base_model`, `datasets` (card metadata) and `ocr_recognizer` (for a detector, the
            recognizer (Hub id) its card's scene-reading snippet pairs it with: the `ocr` pipeline is then
            shown; it is not run by the verification, which has no recognizer).

    Returns:
        The commit URL (the pull request URL with `create_pr`), or the dry-run folder.
    """
    check_repo_id(repo_id)
    card_options["eval_json"] = eval_json
    if dry_run_dir is not None:
        # A folder that fails the verification stays there, for a look at what would have been uploaded.
        destination = assemble_upload_folder(folder, dry_run_dir, repo_id, **card_options)
        verify_folder(destination, check_model_folder(destination), timeout=verify_timeout)
        return str(destination)
    with tempfile.TemporaryDirectory(prefix="scenetext-push-") as workdir:
        destination = assemble_upload_folder(folder, Path(workdir) / "upload", repo_id, **card_options)
        kind = check_model_folder(destination)
        verify_folder(destination, kind, timeout=verify_timeout)
        api = HfApi()
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        if revision is not None:
            api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=destination,
            repo_type="model",
            revision=revision,
            create_pr=create_pr,
            commit_message=commit_message or f"Upload {kind.display_name} model with scenetext",
        )
    return commit.pr_url if create_pr and commit.pr_url else commit.commit_url
