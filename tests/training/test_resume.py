"""`scenetext train --resume`: after a kill during a checkpoint save, and to extend a finished run."""

import json
import os
import subprocess
import sys
from pathlib import Path

from scenetext.cli.main import main

QUICK = [
    "batch_size=2",
    "data.train.num_samples=8",
    "data.train.samples_per_shard=4",
    "data.eval.num_samples=2",
    "data.augment=false",
    "log_with=null",
    "eval_every=1000",
    "save_every=2",
    "keep_last_states=5",
]

# Trains 4 steps and is SIGKILLed inside the second checkpoint save: its files are written, its manifest is
# not and its temporary folder is not renamed yet.
_KILLED_IN_SAVE = """
import os, signal, sys
import scenetext.training.checkpoint as checkpoint
from scenetext.training.config import load_config
from scenetext.training.loop import Trainer
from scenetext.training.recognition import RecognitionTask

write_manifest = checkpoint._write_manifest

def killed_in_second_save(folder):
    if folder.name.endswith("step_00000004"):
        os.kill(os.getpid(), signal.SIGKILL)
    write_manifest(folder)

checkpoint._write_manifest = killed_in_second_save
config = load_config("tiny-recognizer", sys.argv[1:])
Trainer(config, RecognitionTask(config)).train()
"""


def _logged_steps(output_dir: Path) -> list[int]:
    records = [json.loads(line) for line in (output_dir / "train_log.jsonl").read_text().splitlines()]
    return [record["step"] for record in records if "loss" in record]


def _train(output_dir: Path, *options: str) -> int:
    args = ["train", "recognizer", "--config", "tiny-recognizer", "--output-dir", str(output_dir)]
    return main([*args, *options, *QUICK])


def test_a_kill_during_a_save_resumes_from_the_previous_checkpoint_and_a_finished_run_extends(
    tmp_path, capsys
):
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_IN_SAVE, *QUICK, "max_steps=4", f"output_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    checkpoints = tmp_path / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == [".tmp-step_00000004", "step_00000002"]

    assert _train(tmp_path, "--resume", "--max-steps", "4") == 0
    assert f"Resumed from {checkpoints / 'step_00000002'} (step 2)" in capsys.readouterr().out
    assert _logged_steps(tmp_path) == [1, 2, 3, 4]
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step_00000002", "step_00000004"]

    assert _train(tmp_path, "--resume", "--max-steps", "6") == 0
    assert f"Resumed from {checkpoints / 'step_00000004'} (step 4)" in capsys.readouterr().out
    assert _logged_steps(tmp_path) == [1, 2, 3, 4, 5, 6]
    assert (checkpoints / "step_00000006" / "manifest.json").is_file()
