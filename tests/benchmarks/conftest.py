import runpy
from collections.abc import Callable
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def benchmark_script(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], dict[str, object]]:
    """Load `benchmarks/<name>.py` as `python benchmarks/<name>.py` would (its folder first on `sys.path`, for
    `_common`) without running its `main`; return the script's globals (`main`, `run`, ...)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))

    def load(name: str) -> dict[str, object]:
        return runpy.run_path(str(BENCHMARKS / f"{name}.py"))

    return load
