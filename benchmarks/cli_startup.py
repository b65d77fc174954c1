"""Start-up time of the `scenetext` command line: `--help` of each command, run as a fresh process.

Building the parser must not import torch or transformers (each command imports its dependencies when it
runs), so these answer in a fraction of a second; a regression shows here as seconds. Each command runs
`--repeats` times as `python -m scenetext.cli.main ...`; the median wall time is printed per command.

    python benchmarks/cli_startup.py --repeats 5 --json cli_startup.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

COMMANDS: tuple[tuple[str, ...], ...] = (
    ("--help",),
    ("--version",),
    ("convert", "--help"),
    ("convert", "clip4str", "--help"),  # a converter's own options import its model (torch): seconds
    ("train", "--help"),
    ("evaluate", "recognizer", "--help"),
    ("evaluate", "detector", "--help"),
    ("ocr", "--help"),
    ("demo", "--help"),
    ("push", "--help"),
)


def median_wall_time(arguments: Sequence[str], repeats: int) -> float:
    """Median wall time in seconds of `scenetext <arguments>` as a new process; raises when it fails."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "scenetext.cli.main", *arguments], check=True, capture_output=True
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per command (the median is reported)")
    parser.add_argument("--json", help="write {command: median seconds} to this file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    record = {}
    for arguments in COMMANDS:
        command = " ".join(("scenetext", *arguments))
        record[command] = median_wall_time(arguments, args.repeats)
        print(f"{command:<40} {record[command]:.3f} s (median of {args.repeats})")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(record, handle, indent=2)
    return record


if __name__ == "__main__":
    main()
