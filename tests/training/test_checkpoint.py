"""Training state on disk: round trip, atomic writes, damaged checkpoints skipped, no pickles read."""

import json
import pickle
import random

import numpy as np
import pytest
import torch
from accelerate import Accelerator

from scenetext.training.checkpoint import (
    checkpoint_folder,
    load_checkpoint,
    newest_complete_checkpoint,
    remove_old_checkpoints,
    save_checkpoint,
)


def _model_and_optimizer(accelerator: Accelerator, seed: int):
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    return accelerator.prepare(model, optimizer)


def test_a_checkpoint_restores_weights_optimizer_progress_and_random_streams(tmp_path):
    accelerator = Accelerator(cpu=True)
    model, optimizer = _model_and_optimizer(accelerator, seed=0)
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    folder = save_checkpoint(tmp_path, 7, accelerator, model, optimizer, {"step": 7, "epoch": 1})
    expected_draws = (random.random(), np.random.rand(), torch.rand(1).item())
    assert folder == checkpoint_folder(tmp_path, 7) and folder.name == "step_00000007"
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json",
        "model.safetensors",
        "optimizer.pt",
        "progress.json",
        "rng_state_0.json",
        "rng_state_0.safetensors",
    ]

    other, other_optimizer = _model_and_optimizer(accelerator, seed=1)
    progress = load_checkpoint(folder, accelerator, other, other_optimizer)
    assert progress == {"step": 7, "epoch": 1}
    torch.testing.assert_close(other.state_dict(), model.state_dict())
    torch.testing.assert_close(other_optimizer.state_dict()["state"], optimizer.state_dict()["state"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected_draws


def test_the_newest_damaged_checkpoint_is_skipped_with_its_reason(tmp_path):
    accelerator = Accelerator(cpu=True)
    model, optimizer = _model_and_optimizer(accelerator, seed=0)
    for step in (2, 4, 6, 10):
        save_checkpoint(tmp_path, step, accelerator, model, optimizer, {"step": step})
    weights = checkpoint_folder(tmp_path, 10) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-5])  # truncated
    (checkpoint_folder(tmp_path, 6) / "optimizer.pt").unlink()  # missing
    (checkpoint_folder(tmp_path, 4) / "manifest.json").unlink()  # never finished
    folder, skipped = newest_complete_checkpoint(tmp_path)
    assert folder == checkpoint_folder(tmp_path, 2)
    assert [line.split(": ", 1)[1] for line in skipped] == [
        f"model.safetensors has {weights.stat().st_size} bytes, expected {weights.stat().st_size + 5}",
        "optimizer.pt is missing",
        "no readable manifest.json (the save did not finish)",
    ]
    assert newest_complete_checkpoint(tmp_path / "nothing") == (None, [])


def test_old_checkpoints_and_leftover_temporary_folders_are_removed(tmp_path):
    accelerator = Accelerator(cpu=True)
    model, optimizer = _model_and_optimizer(accelerator, seed=0)
    for step in (9, 10, 100):
        save_checkpoint(tmp_path, step, accelerator, model, optimizer, {"step": step})
    (tmp_path / ".tmp-step_00000200").mkdir()
    remove_old_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000010", "step_00000100"]


def test_a_pickle_planted_in_a_checkpoint_is_not_run(tmp_path):
    accelerator = Accelerator(cpu=True)
    model, optimizer = _model_and_optimizer(accelerator, seed=0)
    folder = save_checkpoint(tmp_path, 1, accelerator, model, optimizer, {"step": 1})
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (marker.touch, ())

    torch.save({"state": Payload()}, folder / "optimizer.pt")
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(folder, accelerator, model, optimizer)
    assert not marker.exists()
    assert json.loads((folder / "progress.json").read_text())["progress"] == {"step": 1}
