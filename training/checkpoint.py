"""Training state on disk: what `--resume` needs, written atomically and read back without unpickling.

A checkpoint is a folder `checkpoints/step_XXXXXXXX/` holding
- `model.safetensors`: the weights;
- `optimizer.pt`: the optimizer's state dict (tensors, numbers, strings only), read with `weights_only=True`;
- `progress.json`: where the run is (`TrainingProgress`) and the fp16 grad scaler's state;
- `rng_state_<rank>.safetensors` / `rng_state_<rank>.json`: each process's torch (CPU, CUDA) generators, and its
  Python and NumPy ones;
- `manifest.json`, written last: every file of the checkpoint with its size.

The learning-rate schedule is not saved: it is a function of the step and the config (`training/schedule.py`).

A checkpoint is written into `checkpoints/.tmp-step_XXXXXXXX/` and renamed once complete, so a process killed
during a save leaves a temporary folder (removed by the next save or resume), never a half-written step folder.
A step folder that is damaged anyway (manifest missing, a file missing or shorter than recorded: a partial
copy, a full disk) is reported and skipped, and resuming uses the newest complete one.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from safetensors.torch import load_file, load_model, save_file, save_model

STEP_PREFIX = "step_"
TEMPORARY_PREFIX = ".tmp-"
MANIFEST = "manifest.json"


def checkpoint_folder(root: Path, step: int) -> Path:
    return root / f"{STEP_PREFIX}{step:08d}"


def save_checkpoint(
    root: Path,
    step: int,
    accelerator: Accelerator,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    progress: dict[str, Any],
) -> Path:
    """Write the training state of every process as `root/step_XXXXXXXX` (see the module docstring)."""
    final = checkpoint_folder(root, step)
    temporary = root / f"{TEMPORARY_PREFIX}{final.name}"
    if accelerator.is_main_process:
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
    accelerator.wait_for_everyone()
    _save_rng_states(temporary, accelerator.process_index)
    if accelerator.is_main_process:
        save_model(accelerator.unwrap_model(model), str(temporary / "model.safetensors"))
        torch.save(optimizer.state_dict(), temporary / "optimizer.pt")
        scaler = accelerator.scaler.state_dict() if accelerator.scaler is not None else None
        _write_json(temporary / "progress.json", {"progress": progress, "grad_scaler": scaler})
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _write_manifest(temporary)
        if final.exists():  # a damaged folder of the same step, skipped when this run resumed
            shutil.rmtree(final)
        temporary.rename(final)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(
    folder: Path,
    accelerator: Accelerator,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
) -> dict[str, Any]:
    """Restore what `save_checkpoint` wrote into the prepared model and optimizer; returns the progress."""
    load_model(
        accelerator.unwrap_model(model), str(folder / "model.safetensors"), device=str(accelerator.device)
    )
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", map_location="cpu", weights_only=True))
    saved = json.loads((folder / "progress.json").read_text())
    if accelerator.scaler is not None and saved["grad_scaler"] is not None:
        accelerator.scaler.load_state_dict(saved["grad_scaler"])
    _load_rng_states(folder, accelerator.process_index)
    return saved["progress"]


def newest_complete_checkpoint(root: Path) -> tuple[Path | None, list[str]]:
    """The newest complete checkpoint under `root` (None if there is none) and one line per newer damaged one."""
    skipped = []
    for folder in sorted(_step_folders(root), key=_step_of, reverse=True):
        problem = checkpoint_problem(folder)
        if problem is None:
            return folder, skipped
        skipped.append(f"skipping damaged checkpoint {folder}: {problem}")
    return None, skipped


def checkpoint_problem(folder: Path) -> str | None:
    """Why `folder` is not a complete checkpoint, or None."""
    try:
        sizes = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return f"no readable {MANIFEST} (the save did not finish)"
    for name, size in sizes.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, expected {size}"
    return None


def remove_old_checkpoints(root: Path, keep: int) -> None:
    """Keep the `keep` newest complete checkpoints; drop older ones and leftover temporary folders."""
    for leftover in root.glob(f"{TEMPORARY_PREFIX}*"):
        shutil.rmtree(leftover, ignore_errors=True)
    complete = sorted((f for f in _step_folders(root) if checkpoint_problem(f) is None), key=_step_of)
    for old in complete[: max(0, len(complete) - keep)]:
        shutil.rmtree(old, ignore_errors=True)


def _step_folders(root: Path) -> list[Path]:
    return [f for f in root.glob(f"{STEP_PREFIX}*") if f.is_dir() and f.name[len(STEP_PREFIX) :].isdigit()]


def _step_of(folder: Path) -> int:
    return int(folder.name[len(STEP_PREFIX) :])


def _write_manifest(folder: Path) -> None:
    sizes = {path.name: path.stat().st_size for path in sorted(folder.iterdir()) if path.name != MANIFEST}
    _write_json(folder / MANIFEST, sizes)


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value))


def _save_rng_states(folder: Path, rank: int) -> None:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"cuda_{i}": state for i, state in enumerate(torch.cuda.get_rng_state_all())})
    save_file(tensors, str(folder / f"rng_state_{rank}.safetensors"))
    version, python_state, gauss = random.getstate()
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    numpy_state = [kind, keys.tolist(), position, has_gauss, cached_gaussian]
    _write_json(
        folder / f"rng_state_{rank}.json",
        {"python": [version, list(python_state), gauss], "numpy": numpy_state},
    )


def _load_rng_states(folder: Path, rank: int) -> None:
    tensors_path = folder / f"rng_state_{rank}.safetensors"
    if not tensors_path.is_file():  # resumed with more processes than saved: the new ones start from the seed
        return
    tensors = load_file(str(tensors_path))
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[f"cuda_{i}"] for i in range(len(tensors) - 1)]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    states = json.loads((folder / f"rng_state_{rank}.json").read_text())
    version, python_state, gauss = states["python"]
    random.setstate((version, tuple(python_state), gauss))
    kind, keys, position, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached_gaussian))
