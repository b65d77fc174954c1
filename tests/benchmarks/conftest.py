import json
import runpy
from collections.abc import Callable
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(autouse=True)
def benchmarks_on_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scripts import `_common` from their own folder, which `python benchmarks/<name>.py` puts first on
    `sys.path`; the tests load them with `runpy.run_path`, which does not."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))


@pytest.fixture
def benchmark_record(tmp_path: Path) -> Callable[..., dict]:
    """Runs `benchmarks/<script>.py` on the command line `args` with `--json`; returns the record it wrote."""

    def run(script: str, *args: str) -> dict:
        out = tmp_path / f"{script}.json"
        runpy.run_path(str(BENCHMARKS / f"{script}.py"))["main"]([*args, "--json", str(out)])
        return json.loads(out.read_text())

    return run
