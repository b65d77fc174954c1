"""scenetext: CLIP4STR (scene text recognition) and TCM (scene text detection) as transformers models.

Importing the package registers both models, their processors and the `scene-text-recognition`,
`scene-text-detection` and `ocr` pipelines with transformers (see `registration`), so that saved folders load
with `AutoModel`, `AutoProcessor` and `pipeline(...)` without `trust_remote_code`. The sub-packages
(`scenetext.modeling`, `scenetext.processors`, `scenetext.pipelines`, ...) are the top-level folders of the
repository, mapped onto this name by pyproject.toml.
"""

from .registration import register_with_transformers

register_with_transformers()

__all__ = ["register_with_transformers"]
