"""The benchmark scripts run standalone (`python benchmarks/<name>.py`) with the options they share."""

import subprocess
import sys

import pytest

from .conftest import BENCHMARKS


@pytest.mark.slow
@pytest.mark.parametrize("name", ["recognizer", "detector", "train"])
def test_script_runs_standalone_with_the_shared_options(name):
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    for option in ("--batch-size", "--dtype", "--device", "--json", "--preset"):
        assert option in result.stdout
