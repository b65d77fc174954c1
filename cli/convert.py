"""`scenetext convert MODEL SRC DST`: an official checkpoint into a transformers folder.

The converters are library functions next to the models they feed (`convert_clip4str_checkpoint`,
`convert_tcm_checkpoint`); this command checks what every conversion shares first: SRC is a file, and DST is new
or empty unless `--overwrite-output-dir`.
"""

from __future__ import annotations

import argparse
import importlib
import warnings
from dataclasses import dataclass
from pathlib import Path

from scenetext.cli.errors import UsageError, user_mistakes

# The converters live next to the models they feed and import torch; their options are defined here, so that
# `scenetext convert MODEL --help` answers without importing them. Defaults named in the help are the
# converters' own (the official checkpoints' attention heads are not stored in them).
ALLOW_PICKLE_HELP = (
    "load with full unpickling, which can run code from the file: only for checkpoints you trust"
)


@dataclass(frozen=True)
class Converter:
    """A converter's command line: what it converts, and its attention-head options (official checkpoints do
    not store head counts) with their help."""

    help: str
    src_help: str
    function: str  # "module:function", imported only when the conversion runs
    head_options: dict[str, str]


CONVERTERS = {
    "clip4str": Converter(
        "official CLIP4STR .ckpt/.pt -> transformers folder (model, processor, code)",
        "official checkpoint (.ckpt or .pt with a state_dict)",
        "scenetext.modeling.clip4str.convert_clip4str:convert_clip4str_checkpoint",
        {
            "--vision-heads": "vision attention heads (default: width // 64)",
            "--text-heads": "text attention heads (default: width // 64)",
            "--decoder-heads": "decoder heads (default: from the checkpoint, else 8)",
        },
    ),
    "tcm": Converter(
        "released TCM (mmcv .pth) -> transformers folder",
        "TCM checkpoint (.pth)",
        "scenetext.modeling.tcm.convert_tcm:convert_tcm_checkpoint",
        {
            "--text-heads": "text encoder heads (default: width // 64)",
            "--context-decoder-heads": "default: the official 4",
            "--visual-prompt-heads": "default: the official 4",
        },
    ),
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `convert clip4str` and `convert tcm`."""
    convert = subparsers.add_parser(
        "convert", help="convert an official checkpoint into a transformers folder", description=__doc__
    )
    converters = convert.add_subparsers(dest="model", required=True)
    for name, converter in CONVERTERS.items():
        parser = converters.add_parser(name, help=converter.help)
        parser.add_argument("src", type=Path, help=converter.src_help)
        parser.add_argument("dst", type=Path, help="output folder")
        for option, help_text in converter.head_options.items():
            parser.add_argument(option, type=int, help=help_text)
        parser.add_argument("--allow-pickle", action="store_true", help=ALLOW_PICKLE_HELP)
        parser.add_argument(
            "--allow-unsafe-unpickling",
            dest="allow_pickle",
            nargs=0,
            action=_DeprecatedAllowPickle,
            help=argparse.SUPPRESS,
        )
        parser.add_argument(
            "--overwrite-output-dir",
            action="store_true",
            help="write into a non-empty DST, replacing its files of the same name (refused otherwise)",
        )
        parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    check_paths(args.src, args.dst, args.overwrite_output_dir)
    converter = CONVERTERS[args.model]
    module_name, function_name = converter.function.split(":")
    convert = getattr(importlib.import_module(module_name), function_name)
    heads = {option[2:].replace("-", "_") for option in converter.head_options}
    with user_mistakes():  # a checkpoint of another model or layout is refused with a ValueError
        dst = convert(
            args.src,
            args.dst,
            allow_pickle=args.allow_pickle,
            **{name: getattr(args, name) for name in heads},
        )
    print(f"Converted {args.src} -> {dst}")
    return 0


class _DeprecatedAllowPickle(argparse.Action):
    """`--allow-unsafe-unpickling`, the TCM converter's first spelling of `--allow-pickle`."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        warnings.warn(f"{option_string} is deprecated; use --allow-pickle", FutureWarning, stacklevel=2)
        setattr(namespace, self.dest, True)


def check_paths(src: Path, dst: Path, overwrite_output_dir: bool) -> None:
    """Raises UsageError: `src` is not a file, `dst` is a file, or `dst` is a non-empty folder and
    `overwrite_output_dir` is not set."""
    if not src.is_file():
        raise UsageError(
            f"checkpoint {src} {'is a folder' if src.is_dir() else 'does not exist'}: expected a file"
        )
    if dst.exists() and not dst.is_dir():
        raise UsageError(f"output {dst} is a file: expected a new or empty folder")
    if dst.is_dir() and any(dst.iterdir()) and not overwrite_output_dir:
        raise UsageError(
            f"output folder {dst} is not empty: pass --overwrite-output-dir to write into it anyway"
        )
