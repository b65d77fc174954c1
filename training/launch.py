"""What the launcher (`torchrun`, `accelerate launch`, none) means for the Accelerator the loop creates."""

from __future__ import annotations

import os
from pathlib import Path

import torch


def launched_world_size() -> int:
    """The number of processes a torch.distributed launcher started (1 without one)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def use_cpu(forced: bool) -> bool:
    """Whether the Accelerator must be told `cpu=True`.

    Why: Accelerate forms a process group on a machine without CUDA (gloo) only when told to use the CPU;
    otherwise each process launched by `torchrun` trains alone as if it were the only one, and they all write
    the same files.
    """
    return forced or (launched_world_size() > 1 and not torch.cuda.is_available())


def check_requested_processes() -> None:
    """Fail when `accelerate launch --num_processes N` (N > 1) started a single process.

    Why: on a machine without a GPU `accelerate launch` ignores `--num_processes` unless `--multi_gpu` is also
    given, and runs one process, silently. Its command line is the parent process's (read on Linux only).
    """
    if launched_world_size() > 1:
        return
    cmdline = Path(f"/proc/{os.getppid()}/cmdline")
    try:
        arguments = cmdline.read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return
    launcher = " ".join(arguments[:3])  # `accelerate launch` or `python -m accelerate.commands.launch`
    if "accelerate" not in launcher or "launch" not in launcher:
        return
    requested = _option_value(arguments, ("--num_processes", "--num-processes"))
    if requested is not None and requested.isdigit() and int(requested) > 1:
        raise ValueError(
            f"accelerate launch started 1 process, not --num_processes {requested}: without a GPU it needs "
            f"--multi_gpu as well (its torch.distributed launcher; the processes then meet over gloo), or use "
            f"`python -m torch.distributed.run --nproc_per_node {requested}`"
        )


def _option_value(arguments: list[str], names: tuple[str, ...]) -> str | None:
    for index, argument in enumerate(arguments):
        for name in names:
            if argument == name and index + 1 < len(arguments):
                return arguments[index + 1]
            if argument.startswith(f"{name}="):
                return argument.split("=", 1)[1]
    return None
