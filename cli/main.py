"""The `scenetext` command line: thin sub-commands over library functions users can also call.

Building the parser imports no torch or transformers (each command imports what it needs when it runs), so
`scenetext --help` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from scenetext.cli import convert
from scenetext.cli.errors import INTERNAL_ERROR_EXIT_STATUS, USAGE_ERROR_EXIT_STATUS, UsageError, one_line

# Each module below exposes `add_parser(subparsers)`; the parser it adds sets `func`, which receives the
# parsed arguments and returns the process exit code.
COMMAND_MODULES: tuple[str, ...] = (
    "scenetext.cli.train",
    "scenetext.cli.evaluate",
    "scenetext.cli.push",
    "scenetext.cli.ocr",
    "scenetext.cli.export",
)

DEBUG_FLAG = "--debug"


def package_version() -> str:
    try:
        return version("scenetext")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command (built without importing torch or transformers)."""
    parser = argparse.ArgumentParser(prog="scenetext", description=__doc__)
    parser.add_argument("--version", action="version", version=f"scenetext {package_version()}")
    parser.add_argument(
        DEBUG_FLAG,
        action="store_true",
        help="show the traceback of a failure (also SCENETEXT_DEBUG=1); may stand anywhere",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    convert.add_parser(subparsers)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv or os.environ.get("SCENETEXT_DEBUG", "") not in ("", "0")
    argv = [item for item in argv if item != DEBUG_FLAG]
    parser = build_parser()
    # `key=value` overrides may stand anywhere after the sub-command (argparse cannot mix a variable-length
    # positional with options), so they are collected from what the sub-command's options leave over.
    args, extra = parser.parse_known_args(argv)
    overrides = [item for item in extra if "=" in item and not item.startswith("-")]
    if len(overrides) != len(extra) or (overrides and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if overrides:
        args.overrides = overrides
    command = f"convert {args.model}" if args.command == "convert" else args.command
    try:
        return int(args.func(args) or 0)
    except UsageError as error:
        if debug:
            traceback.print_exc()
        print(f"scenetext {command}: error: {one_line(error)}", file=sys.stderr)
        return USAGE_ERROR_EXIT_STATUS
    except KeyboardInterrupt:
        print(f"scenetext {command}: interrupted", file=sys.stderr)
        return 130  # the shell's status for SIGINT
    except Exception as error:
        if debug:
            traceback.print_exc()
        print(f"scenetext {command}: failed: {type(error).__name__}: {one_line(error)}", file=sys.stderr)
        if not debug:
            print(
                f"hint: rerun with {DEBUG_FLAG} (or SCENETEXT_DEBUG=1) to see where it failed; if your inputs "
                "look right, please report it with that output",
                file=sys.stderr,
            )
        return INTERNAL_ERROR_EXIT_STATUS


if __name__ == "__main__":
    sys.exit(main())
