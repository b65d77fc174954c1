"""`scenetext train recognizer|detector --config NAME [key=value ...]`: runs a training config with Accelerate.

Works as is (one process), under `accelerate launch` and under `torchrun` (Accelerate reads the launcher's
environment). `--max-steps`, `--output-dir` and `--seed` override any config.
"""

from __future__ import annotations

import argparse

from .config import load_config


def build_task(config):
    """The task object the loop runs (imports the task's heavy modules only when needed)."""
    if config.task == "recognizer":
        from .recognition import RecognitionTask

        return RecognitionTask(config)
    from .detection import DetectionTask

    return DetectionTask(config)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a recognizer or a detector", description=__doc__)
    parser.add_argument("task", choices=("recognizer", "detector"))
    parser.add_argument("--config", required=True, help="YAML file or shipped config name (training/configs)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. optimizer.learning_rate=1e-4")
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--output-dir")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--resume", action="store_true", help="continue from the newest saved training state")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    for name in ("max_steps", "output_dir", "seed"):
        if getattr(args, name) is not None:
            overrides.append(f"{name}={getattr(args, name)}")
    config = load_config(args.config, overrides)
    if config.task != args.task:
        raise SystemExit(f"{args.config} is a {config.task} config, not a {args.task} one")
    from .loop import Trainer

    Trainer(config, build_task(config)).train(resume=args.resume)
    return 0
