"""`scenetext train recognizer|detector --config NAME [key=value ...]`: runs a training config with Accelerate.

Works as is (one process) and under a multi-process launcher, on GPUs (NCCL) or CPUs (gloo) alike:
`python -m torch.distributed.run --nproc_per_node N -m scenetext.cli.main train ...` (torchrun), or
`accelerate launch --num_processes N ...` (on a machine without a GPU add `--multi_gpu`: without it accelerate
starts one process, which this command refuses). `--max-steps`, `--output-dir` and `--seed` override any config.

The output folder must be empty: `--resume` continues the run in it (from the newest complete checkpoint; a
larger `--max-steps` extends a finished run), `--overwrite-output-dir` replaces it. An invalid config or
command line is reported as one line, with exit status 2.
"""

from __future__ import annotations

import argparse

from scenetext.cli.errors import UsageError, user_mistakes
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
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest complete training state in --output-dir",
    )
    parser.add_argument(
        "--overwrite-output-dir",
        action="store_true",
        help="replace the previous run's outputs in a non-empty output folder (refused otherwise)",
    )
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
    with user_mistakes():  # a missing file, an unknown key, a value of the wrong type
        config = load_config(args.config, overrides)
    if config.task != args.task:
        raise UsageError(f"{args.config} is a {config.task} config, not a {args.task} one")
    if args.resume and args.overwrite_output_dir:
        raise UsageError("--resume and --overwrite-output-dir exclude each other")
    from scenetext.training.loop import Trainer

    try:
        trainer = Trainer(config, build_task(config))
    except ValueError as error:  # the task rejects its config, or the launcher started too few processes
        raise UsageError(error) from error
    try:
        summary = trainer.train(resume=args.resume, overwrite_output_dir=args.overwrite_output_dir)
    except (
        FileExistsError,
        FileNotFoundError,
    ) as error:  # a folder in use; nothing to resume, a missing input
        raise UsageError(error) from error
    if args.push_to_hub and trainer.accelerator.is_main_process:
        from scenetext.hub_cards import publish_folder

        url = publish_folder(summary.output_dir / "best", args.push_to_hub, training_config=config)
        print(f"Published {summary.output_dir / 'best'} -> {url}")
    return 0
