"""What the end-to-end tests of both training tasks share: reading a run's log, and killing a run mid-way to
check that resuming it gives the losses of an uninterrupted run."""

import json
import os
import subprocess
import sys
from pathlib import Path

from scenetext.training.config import load_config
from scenetext.training.loop import Trainer

# argv: config name, task class ("module.Class"), step to SIGKILL the process at (-1: never), "resume" or
# "fresh", then the config overrides.
_KILLABLE_RUN = """
import importlib, os, signal, sys
from scenetext.training.config import load_config
from scenetext.training.loop import Trainer

config_name, task_path, kill_at, mode, *overrides = sys.argv[1:]
module, _, name = task_path.rpartition(".")
task_class = getattr(importlib.import_module(module), name)
config = load_config(config_name, overrides)

def on_step(trainer, loss):
    if trainer.progress.step == int(kill_at):
        os.kill(os.getpid(), signal.SIGKILL)

Trainer(config, task_class(config)).train(resume=mode == "resume", on_step=on_step)
"""


def train_log(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "train_log.jsonl").read_text().splitlines()]


def losses(output_dir: Path) -> list[float]:
    return [record["loss"] for record in train_log(output_dir) if "loss" in record]


def check_loss_falls(
    output_dir: Path, config_name: str, task_class: type, overrides: list[str], ratio: float
) -> None:
    """Train 30 steps of `config_name` with `overrides` into `output_dir`: every step logs a loss, and the
    last five sum to less than `ratio` times the first five."""
    config = load_config(config_name, [*overrides, f"output_dir={output_dir}", "max_steps=30"])
    summary = Trainer(config, task_class(config)).train()
    history = losses(output_dir)
    assert summary.steps == 30 and len(history) == 30
    assert sum(history[-5:]) < ratio * sum(history[:5])


def check_killed_run_resumes_to_identical_losses(
    tmp_path: Path,
    config_name: str,
    task_class: type,
    overrides: list[str],
    env: dict[str, str] | None = None,
) -> None:
    """Train `overrides` (which must save every 3 steps and run past step 5) straight through in this process,
    and again in a subprocess killed with SIGKILL after step 5 and resumed; the two logs must hold the same
    losses. `env` is added to the subprocesses' environment (e.g. the thread count this process runs with, so
    the sums come out the same)."""
    straight = tmp_path / "straight"
    config = load_config(config_name, [*overrides, f"output_dir={straight}"])
    Trainer(config, task_class(config)).train()

    interrupted = tmp_path / "interrupted"
    task_path = f"{task_class.__module__}.{task_class.__qualname__}"

    def run(kill_at: int, mode: str) -> subprocess.CompletedProcess:
        args = [config_name, task_path, str(kill_at), mode, *overrides, f"output_dir={interrupted}"]
        return subprocess.run(
            [sys.executable, "-c", _KILLABLE_RUN, *args],
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            timeout=900,
        )

    killed = run(5, "fresh")
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert len(losses(interrupted)) == 5  # steps 4-5 ran after the last saved state (step 3)
    resumed = run(-1, "resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resumed from" in resumed.stdout + resumed.stderr
    assert losses(interrupted) == losses(straight)
