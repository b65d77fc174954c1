"""Files shipped with the package: the embedded default checkpoints (`defaults/recognizer`, `defaults/detector`)
and the sample scenes the demo reads (`samples/`)."""

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent
DEFAULTS_DIR = ASSETS_DIR / "defaults"
SAMPLES_DIR = ASSETS_DIR / "samples"
