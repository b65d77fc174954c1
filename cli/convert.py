"""`scenetext convert MODEL SRC DST`: an official checkpoint into a transformers folder.

Each converter lives next to the model it feeds and adds its own options; this command checks what every
conversion shares first: SRC is a file, and DST is new or empty unless `--overwrite-output-dir`.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence
from pathlib import Path

from scenetext.cli.errors import UsageError, user_mistakes

# A converter's module imports torch, so its options are added only when it is the one asked for (or when
# the whole parser is built); the others are listed by name, which keeps `scenetext --help` fast.
CONVERTERS: dict[str, tuple[str, str]] = {
    "clip4str": (
        "scenetext.modeling.clip4str.convert_clip4str",
        "official CLIP4STR .ckpt/.pt -> transformers folder",
    ),
    "tcm": ("scenetext.modeling.tcm.convert_tcm", "released TCM (mmcv .pth) -> transformers folder"),
}


def add_parser(subparsers: argparse._SubParsersAction, argv: Sequence[str] | None = None) -> None:
    """Add `convert`; with `argv`, only the converter it names is imported."""
    convert = subparsers.add_parser(
        "convert", help="convert an official checkpoint into a transformers folder", description=__doc__
    )
    converters = convert.add_subparsers(dest="model", required=True)
    for name, (module_name, help_text) in CONVERTERS.items():
        if argv is not None and name not in argv:
            converters.add_parser(name, help=help_text)
            continue
        importlib.import_module(module_name).add_parser(converters)
        parser = converters.choices[name]
        parser.add_argument(
            "--overwrite-output-dir",
            action="store_true",
            help="write into a non-empty DST, replacing its files of the same name (refused otherwise)",
        )
        parser.set_defaults(func=_checked(parser.get_default("func")))


def _checked(convert: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        check_paths(Path(args.src), Path(args.dst), args.overwrite_output_dir)
        with user_mistakes():  # a checkpoint of another model or layout is refused with a ValueError
            return convert(args)

    return run


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
