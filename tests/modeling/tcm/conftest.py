import pytest


@pytest.fixture(autouse=True)
def _on_one_thread(single_thread):
    """Every TCM test runs the tiny preset, so every one runs on one thread (see `single_thread`)."""
