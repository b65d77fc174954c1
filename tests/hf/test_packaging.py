"""A missing extra is named where it is needed."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# Run with `module` unimportable, as on a base install without the extra that brings it.
WITHOUT_MODULE = """
import sys
sys.modules[{module!r}] = None  # makes `import {module}` raise ImportError
try:
    {statement}
except ImportError as error:
    print(error)
"""


@pytest.mark.parametrize(
    ("module", "statement", "extra"),
    [
        ("accelerate", "import scenetext.training.loop", "train"),
        ("lmdb", "import scenetext.data.lmdb", "train"),
        ("datasets", "import scenetext.data.icdar", "train"),
        (
            "open_clip",
            "from scenetext.modeling.tcm.convert_tcm import tokenize_class_prompt; tokenize_class_prompt('a')",
            "convert",
        ),
        (
            "evaluate",
            "from scenetext.evaluation.metrics.trainer_metrics import load_metric, RECOGNITION_METRIC; load_metric(RECOGNITION_METRIC)",
            "eval",
        ),
    ],
)
def test_a_missing_extra_is_named_where_it_is_needed(module, statement, extra):
    script = WITHOUT_MODULE.format(module=module, statement=statement)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert f'pip install "scenetext[{extra}]' in result.stdout, result.stderr[-2000:]
