from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(autouse=True)
def benchmarks_on_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scripts import `_common` from their own folder, which `python benchmarks/<name>.py` puts first on
    `sys.path`; the tests load them with `runpy.run_path`, which does not."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
