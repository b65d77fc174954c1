"""`scenetext convert MODEL SRC DST`: an official checkpoint into a transformers folder.

The converters are library functions next to the models they feed (`convert_clip4str_checkpoint`,
`convert_tcm_checkpoint`); this command checks what every conversion shares first: SRC is a file, and DST is new
or empty unless `--overwrite-output-dir`.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from pathlib import Path

from scenetext.cli.errors import UsageError, user_mistakes

# The converters live next to the models they feed and import torch; their options are defined here, so that
# `scenetext convert MODEL --help` answers without importing them. Defaults named in the help are the
# converters' own (the official checkpoints' attention heads are not stored in them).
ALLOW_PICKLE_HELP = (
    "load with full unpickling, which can run code from the file: only for checkpoints you trust"
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `convert clip4str` and `convert tcm`."""
    convert = subparsers.add_parser(
        "convert", help="convert an official checkpoint into a transformers folder", description=__doc__
    )
    converters = convert.add_subparsers(dest="model", required=True)

    clip4str = _converter_parser(
        converters,
        "clip4str",
        "official CLIP4STR .ckpt/.pt -> transformers folder (model, processor, code)",
        "official checkpoint (.ckpt or .pt with a state_dict)",
        _convert_clip4str,
    )
    clip4str.add_argument("--vision-heads", type=int, help="vision attention heads (default: width // 64)")
    clip4str.add_argument("--text-heads", type=int, help="text attention heads (default: width // 64)")
    clip4str.add_argument(
        "--decoder-heads", type=int, help="decoder heads (default: from the checkpoint, else 8)"
    )

    tcm = _converter_parser(
        converters,
        "tcm",
        "released TCM (mmcv .pth) -> transformers folder",
        "TCM checkpoint (.pth)",
        _convert_tcm,
    )
    tcm.add_argument("--text-heads", type=int, help="text encoder heads (default: width // 64)")
    tcm.add_argument("--context-decoder-heads", type=int, help="default: the official 4")
    tcm.add_argument("--visual-prompt-heads", type=int, help="default: the official 4")


def _converter_parser(
    converters: argparse._SubParsersAction,
    name: str,
    help_text: str,
    src_help: str,
    convert: Callable[[argparse.Namespace], Path],
) -> argparse.ArgumentParser:
    """A converter's parser with the options every conversion shares; `convert` runs once SRC and DST are
    checked, and returns the folder written."""
    parser = converters.add_parser(name, help=help_text)
    parser.add_argument("src", type=Path, help=src_help)
    parser.add_argument("dst", type=Path, help="output folder")
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

    def run(args: argparse.Namespace) -> int:
        check_paths(args.src, args.dst, args.overwrite_output_dir)
        with user_mistakes():  # a checkpoint of another model or layout is refused with a ValueError
            dst = convert(args)
        print(f"Converted {args.src} -> {dst}")
        return 0

    parser.set_defaults(func=run)
    return parser


class _DeprecatedAllowPickle(argparse.Action):
    """`--allow-unsafe-unpickling`, the TCM converter's first spelling of `--allow-pickle`."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        warnings.warn(f"{option_string} is deprecated; use --allow-pickle", FutureWarning, stacklevel=2)
        setattr(namespace, self.dest, True)


def _convert_clip4str(args: argparse.Namespace) -> Path:
    from scenetext.modeling.clip4str.convert_clip4str import convert_clip4str_checkpoint

    return convert_clip4str_checkpoint(
        args.src,
        args.dst,
        vision_heads=args.vision_heads,
        text_heads=args.text_heads,
        decoder_heads=args.decoder_heads,
        allow_pickle=args.allow_pickle,
    )


def _convert_tcm(args: argparse.Namespace) -> Path:
    from scenetext.modeling.tcm.convert_tcm import convert_tcm_checkpoint

    return convert_tcm_checkpoint(
        args.src,
        args.dst,
        text_heads=args.text_heads,
        context_decoder_heads=args.context_decoder_heads,
        visual_prompt_heads=args.visual_prompt_heads,
        allow_pickle=args.allow_pickle,
    )


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
