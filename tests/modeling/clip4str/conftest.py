"""The official order of work of CLIP4STR decoding, from benchmarks/reference_clip4str.py (not a package)."""

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parents[3] / "benchmarks" / "reference_clip4str.py"


@pytest.fixture(scope="session")
def reference_decode() -> Callable:
    spec = importlib.util.spec_from_file_location("reference_clip4str", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference_decode
