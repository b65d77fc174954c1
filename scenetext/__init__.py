"""scenetext: CLIP4STR (scene text recognition) and TCM (scene text detection) as transformers models.

Importing the package registers both models, their processors and the `scene-text-recognition`,
`scene-text-detection` and `ocr` pipelines with transformers (see `registration`), so that saved folders load
with `AutoModel`, `AutoProcessor` and `pipeline(...)` without `trust_remote_code`. The sub-packages
(`scenetext.modeling`, `scenetext.processors`, `scenetext.pipelines`, ...) are the top-level folders of the
repository, mapped onto this name by pyproject.toml.

Registering imports torch and both models, which takes seconds. It therefore runs as soon as transformers is
imported, and not before: right after `import transformers` completes, or, when a scenetext module is the one
importing it, right after the outermost scenetext import completes (the classes it registers must exist
first). Either way it has run before any transformers name can be used. `scenetext --help`, which imports
neither, answers at once.
"""

import sys
from importlib.abc import MetaPathFinder

from .registration import register_with_transformers


def _importing_scenetext(besides: str) -> bool:
    """Whether a scenetext module other than `besides` is still executing its import."""
    return any(
        name.startswith("scenetext.") and name != besides and getattr(module.__spec__, "_initializing", False)
        for name, module in list(sys.modules.items())
    )


class _RegisterOnceTransformersIsImported(MetaPathFinder):
    """Wraps the import of `transformers` and of every scenetext module: after one of them executes, with
    transformers imported and no scenetext import left unfinished, it registers and steps aside."""

    def find_spec(self, name, path=None, target=None):
        if name != "transformers" and not name.startswith("scenetext."):
            return None
        spec = next(
            (
                found
                for finder in sys.meta_path
                if finder is not self and hasattr(finder, "find_spec")
                for found in [finder.find_spec(name, path, target)]
                if found is not None
            ),
            None,
        )
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        execute = spec.loader.exec_module

        def execute_then_register(module):
            execute(module)
            if self in sys.meta_path and "transformers" in sys.modules and not _importing_scenetext(name):
                sys.meta_path.remove(self)
                register_with_transformers()

        spec.loader.exec_module = execute_then_register
        return spec


if "transformers" in sys.modules:
    register_with_transformers()
else:
    sys.meta_path.insert(0, _RegisterOnceTransformersIsImported())

__all__ = ["register_with_transformers"]
