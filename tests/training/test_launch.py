"""Launchers: several processes without CUDA meet over gloo; a launch that started too few is refused."""

import os
import subprocess
import sys

import pytest

from scenetext.training import launch


def test_several_processes_without_cuda_use_the_cpu(monkeypatch):
    monkeypatch.setattr(launch.torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert launch.use_cpu(forced=False)
    monkeypatch.setattr(launch.torch.cuda, "is_available", lambda: True)
    assert not launch.use_cpu(forced=False)
    assert launch.use_cpu(forced=True)
    monkeypatch.setattr(launch.torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("WORLD_SIZE")
    assert not launch.use_cpu(forced=False)  # one process: Accelerate picks the device itself


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the launcher's command line in /proc")
def test_accelerate_launch_starting_one_process_of_two_is_refused(tmp_path):
    script = tmp_path / "check.py"
    script.write_text(
        "from scenetext.training.launch import check_requested_processes\ncheck_requested_processes()\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", str(script)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},  # no GPU: accelerate's single-process fallback
    )
    assert result.returncode != 0
    assert "accelerate launch started 1 process, not --num_processes 2" in result.stderr
    assert "--multi_gpu" in result.stderr
