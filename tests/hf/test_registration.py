"""`import scenetext` registers with transformers in every import order, and never imports torch by itself."""

import subprocess
import sys

import pytest

REGISTERED = """
from transformers import AutoConfig
from transformers.pipelines import PIPELINE_REGISTRY
print(type(AutoConfig.for_model("clip4str")).__name__, type(AutoConfig.for_model("tcm")).__name__,
      sorted(task for task in ("scene-text-recognition", "scene-text-detection", "ocr")
             if task in PIPELINE_REGISTRY.supported_tasks))
"""


def run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


@pytest.mark.parametrize(
    "first_import",
    [
        "import scenetext",  # transformers comes later
        "import transformers, scenetext",  # transformers is there already
        "import scenetext.modeling.tcm",  # a scenetext module imports transformers itself
        "import scenetext.processors.clip4str",
        "from scenetext.pipelines import load_rgb_image",
    ],
)
def test_every_import_order_registers_both_models_and_the_pipelines(first_import):
    assert run(first_import + "\n" + REGISTERED) == (
        "Clip4StrConfig TcmConfig ['ocr', 'scene-text-detection', 'scene-text-recognition']"
    )


def test_the_command_line_imports_neither_torch_nor_transformers_to_build_its_parser():
    code = (
        "import sys; import scenetext; from scenetext.cli.main import build_parser; build_parser(); "
        "print(sorted(name for name in ('torch', 'transformers') if name in sys.modules))"
    )
    assert run(code) == "[]"
