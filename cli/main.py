"""The `scenetext` command line: thin sub-commands over library functions users can also call."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from scenetext.cli.errors import USAGE_ERROR_EXIT_STATUS, UsageError

# Each module below exposes `add_parser(subparsers)`; the parser it adds sets `func`, which receives the
# parsed arguments and returns the process exit code. Modules are imported only to build the parser.
COMMAND_MODULES: tuple[str, ...] = (
    "scenetext.cli.train",
    "scenetext.cli.evaluate",
    "scenetext.cli.push",
    "scenetext.cli.ocr",
    "scenetext.cli.export",
)

# `scenetext convert MODEL SRC DST`: one converter per model, next to the model it feeds.
CONVERTER_MODULES: tuple[str, ...] = (
    "scenetext.modeling.clip4str.convert_clip4str",
    "scenetext.modeling.tcm.convert_tcm",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scenetext", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    convert = subparsers.add_parser(
        "convert", help="convert an official checkpoint into a transformers folder"
    )
    converters = convert.add_subparsers(dest="model", required=True)
    for module_name in CONVERTER_MODULES:
        importlib.import_module(module_name).add_parser(converters)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # `key=value` overrides may stand anywhere after the sub-command (argparse cannot mix a variable-length
    # positional with options), so they are collected from what the sub-command's options leave over.
    args, extra = parser.parse_known_args(argv)
    overrides = [item for item in extra if "=" in item and not item.startswith("-")]
    if len(overrides) != len(extra) or (overrides and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if overrides:
        args.overrides = overrides
    try:
        return int(args.func(args) or 0)
    except UsageError as error:
        print(f"scenetext {args.command}: error: {error}", file=sys.stderr)
        return USAGE_ERROR_EXIT_STATUS


if __name__ == "__main__":
    sys.exit(main())
