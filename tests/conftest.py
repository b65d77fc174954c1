import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

# Tests never touch the network: every model they load is built and saved locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# The slow tier (training runs, isolated processes, big presets, accuracy of the embedded checkpoints) runs
# only when asked, as in transformers: `RUN_SLOW=1 python -m pytest`.
RUN_SLOW = os.environ.get("RUN_SLOW", "").lower() in {"1", "true", "yes"}

FIXTURES = Path(__file__).parent / "fixtures"
REPO_ROOT = Path(__file__).resolve().parent.parent

# Follows `BLOCK_SCENETEXT` in every isolated script: proof that `scenetext` is unimportable there, exactly as
# on a machine that only downloaded a Hub folder (`scenetext push` verifies folders with the same blocker).
_CHECK_ISOLATION = """
try:
    import scenetext  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("isolation failed: scenetext was importable")
"""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if RUN_SLOW:
        return
    skip_slow = pytest.mark.skip(reason="slow test: set RUN_SLOW=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="module")
def single_thread():
    """For modules of tiny models (`pytestmark = pytest.mark.usefixtures("single_thread")`): on such small
    tensors OpenMP threads cost more than they save, and spin badly on a shared, busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def run_isolated(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """Run a Python script in a fresh process, outside the repository, where `scenetext` cannot be
    imported and the Hub is offline; return its stdout (the test fails with its stderr otherwise)."""

    # Imported here, not above: importing scenetext loads transformers, which must see the offline settings.
    from scenetext.hub_cards.verify import BLOCK_SCENETEXT

    def run(script: str, timeout: float = 300) -> str:
        workdir = tmp_path_factory.mktemp("isolated")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            HF_MODULES_CACHE=str(workdir / "modules_cache"),
            HF_HOME=str(workdir / "hf_home"),
        )
        source = BLOCK_SCENETEXT + _CHECK_ISOLATION + textwrap.dedent(script)
        result = subprocess.run(
            [sys.executable, "-c", source],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            pytest.fail(f"isolated process failed ({result.returncode}):\n{result.stderr[-4000:]}")
        return result.stdout

    return run
