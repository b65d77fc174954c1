"""What the benchmark scripts share: the command line, the JSON record, and the ONNX Runtime sides.

The scripts run as `python benchmarks/<name>.py`, which puts this folder first on `sys.path`; that is how they
import this module (the tests put the folder there too).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path

import torch

from scenetext.modeling.devices import add_device_arguments


def benchmark_parser(
    description: str,
    presets: Iterable[str],
    batch_size: int,
    int8: bool = False,
    mixed_precision: Iterable[str] | None = None,
    preset_help: str | None = None,
    repeats: int | None = None,
    onnx: bool = False,
) -> argparse.ArgumentParser:
    """A parser with the options of every benchmark (`--preset`, `--batch-size`, `--dtype`, `--device`,
    `--json`); the script adds its own. `description` is the script's docstring, whose first line becomes the
    summary. `--dtype` is the model precision of the package's device options (with `int8` when the script
    offers it), or, for a training benchmark, one of Accelerate's `mixed_precision` modes. A `repeats` default
    adds `--repeats`; `onnx` adds `--onnx` (the ONNX Runtime sides of `onnx_runtimes`)."""
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("--preset", default="tiny", choices=sorted(presets), help=preset_help)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    if mixed_precision is None:
        add_device_arguments(parser, int8=int8, default_dtype="fp32")
    else:
        parser.add_argument("--dtype", default="fp32", choices=sorted(mixed_precision))
        parser.add_argument("--device", default="cpu")
    if repeats is not None:
        parser.add_argument("--repeats", type=int, default=repeats)
    if onnx:
        parser.add_argument(
            "--onnx",
            action="store_true",
            help="also time the ONNX Runtime fp32 and int8 exports in the same run",
        )
    parser.add_argument("--json", default=None, help="write the measurement record to this file")
    return parser


def onnx_runtimes(backend: type, folder: str | Path, names: tuple[str, str]) -> dict[str, object]:
    """The fp32 and int8 files exported to `folder`, each run by `backend` (`OnnxRecognizer`, `OnnxDetector`)
    on as many threads as torch uses, so that every side gets the same CPUs; keyed by their record `names`."""
    from scenetext.pipelines.onnx_backend import INT8_ONNX_FILE, ONNX_FILE

    threads = torch.get_num_threads()
    return {
        name: backend(folder, file_name, num_threads=threads)
        for name, file_name in zip(names, (ONNX_FILE, INT8_ONNX_FILE), strict=True)
    }


def report(record: dict[str, object], results: str, json_path: str | None) -> dict[str, object]:
    """Print a one-line summary (preset, batch size and dtype, then the script's `results`), write the record to
    `json_path` when given, and return the record."""
    print(f"{record['preset']} batch {record['batch_size']} {record['dtype']}: {results}")
    if json_path:
        with open(json_path, "w") as handle:
            json.dump(record, handle, indent=2)
    return record
