"""`scenetext push FOLDER REPO_ID`: check, verify and upload a saved model folder with its model card."""

from __future__ import annotations

import argparse
from pathlib import Path

from scenetext.cli.errors import USER_MISTAKES, UsageError, one_line


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "push",
        help="publish a saved model folder to the Hub (verified in a clean process before upload)",
        description=(
            "Assemble the upload folder (weights, config with auto_map, code, processor files, model card), "
            "load it in an isolated process with trust_remote_code=True and run one inference, then create "
            "the repository and upload it in one commit. Log in with `hf auth login` or set HF_TOKEN."
        ),
    )
    parser.add_argument("folder", type=Path, help="folder written by save_pretrained (model + processor)")
    parser.add_argument("repo_id", help="Hub repository, e.g. user/clip4str-base-finetuned")
    parser.add_argument("--eval", type=Path, dest="eval_json", help="JSON written by `scenetext evaluate`")
    parser.add_argument("--training-config", type=Path, help="the training run's YAML, shown as its recipe")
    parser.add_argument("--license", default="apache-2.0", help="Hub license id (default: apache-2.0)")
    parser.add_argument("--base-model", help="Hub id of the model this one was fine-tuned from")
    parser.add_argument("--dataset", action="append", dest="datasets", help="Hub id of a training dataset")
    parser.add_argument(
        "--ocr-recognizer",
        help="detectors: Hub id of a recognizer the card's scene-reading (ocr) example uses",
    )
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--revision", help="branch to commit to (created if missing)")
    parser.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    parser.add_argument("--dry-run", type=Path, metavar="OUT", help="write and verify the folder in OUT only")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from huggingface_hub.errors import HfHubHTTPError

    from scenetext.hub_cards import VerificationError, publish_folder

    try:
        result = publish_folder(
            args.folder,
            args.repo_id,
            eval_json=args.eval_json,
            private=args.private,
            revision=args.revision,
            create_pr=args.create_pr,
            dry_run_dir=args.dry_run,
            training_config=args.training_config,
            license=args.license,
            base_model=args.base_model,
            datasets=args.datasets,
            ocr_recognizer=args.ocr_recognizer,
        )
    except (
        *USER_MISTAKES,
        VerificationError,
        HfHubHTTPError,
    ) as error:  # a folder or card the Hub would refuse
        raise UsageError(one_line(error)) from error
    if args.dry_run is not None:
        print(f"Verified upload folder written to {result} (nothing uploaded)")
    else:
        print(f"Uploaded: {result}")
    return 0
