"""`scenetext train recognizer|detector --config NAME [key=value ...]`: runs a training config with Accelerate.

Works as is (one process), under `accelerate launch` and under `torchrun` (Accelerate reads the launcher's
environment). `--max-steps`, `--output-dir` and `--seed` override any config.
"""

from __future__ import annotations

import argparse

from scenetext.training.config import load_config


def build_task(config):
    """The task object the loop runs (imports the task's heavy modules only when needed)."""
    if config.task == "recognizer":
        from scenetext.training.recognition import RecognitionTask

        return RecognitionTask(config)
    from scenetext.training.detection import DetectionTask

    return DetectionTask(config)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a recognizer or a detector",
        description=__doc__,
        usage="scenetext train {recognizer,detector} --config CONFIG [options] [key=value ...]",
    )
    parser.add_argument("task", choices=("recognizer", "detector"))
    parser.add_argument("--config", required=True, help="YAML file or shipped config name (training/configs)")
    # `key=value` overrides (e.g. optimizer.learning_rate=1e-4) are collected by the CLI's `main`.
    parser.set_defaults(overrides=[])
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--output-dir")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--resume", action="store_true", help="continue from the newest saved training state")
    parser.add_argument(
        "--push-to-hub",
        metavar="REPO_ID",
        help="at the end, publish the best checkpoint with a model card (verified before upload)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    for name in ("max_steps", "output_dir", "seed"):
        if getattr(args, name) is not None:
            overrides.append(f"{name}={getattr(args, name)}")
    config = load_config(args.config, overrides)
    if config.task != args.task:
        raise SystemExit(f"{args.config} is a {config.task} config, not a {args.task} one")
    from scenetext.training.loop import Trainer

    trainer = Trainer(config, build_task(config))
    summary = trainer.train(resume=args.resume)
    if args.push_to_hub and trainer.accelerator.is_main_process:
        from scenetext.hub_cards import publish_folder

        url = publish_folder(summary.output_dir / "best", args.push_to_hub, training_config=config)
        print(f"Published {summary.output_dir / 'best'} -> {url}")
    return 0
