"""Registration of the scenetext models, processors and pipelines with transformers.

With the package installed, `AutoConfig`, `AutoModel`, the task Auto class (`AutoModelForTextRecognition` for
the recognizer, `AutoModelForObjectDetection` for the detector, as transformers files its PP-OCR models),
`AutoImageProcessor`, `AutoProcessor`, `AutoTokenizer` and `pipeline(task, ...)` know `clip4str` and `tcm`
without `trust_remote_code`. Folders keep their `auto_map` and code, so the same folders also load with
`trust_remote_code=True` where scenetext is not installed.
"""

from __future__ import annotations

from typing import Any


def _pipelines_of_registered_tasks(config: Any) -> dict[str, dict]:
    """`config.custom_pipelines` without the tasks scenetext registered in `PIPELINE_REGISTRY`."""
    from transformers.pipelines import PIPELINE_REGISTRY

    declared = config.__dict__.get("custom_pipelines") or {}
    return {task: spec for task, spec in declared.items() if task not in PIPELINE_REGISTRY.supported_tasks}


def _store_custom_pipelines(config: Any, value: dict[str, dict]) -> None:
    config.__dict__["custom_pipelines"] = value


# Every saved folder declares its pipelines in `custom_pipelines` (for machines without scenetext), and
# `pipeline(task, model=...)` demands trust_remote_code for any declared task before it looks at the registry.
# The package's own config classes therefore hide the tasks registered here; `config.json` keeps them all
# (`to_dict` reads `__dict__`), and a config loaded with trust_remote_code (the folder's copy of the class) still
# shows them all.
_CUSTOM_PIPELINES_OF_INSTALLED_CONFIGS = property(_pipelines_of_registered_tasks, _store_custom_pipelines)


def register_with_transformers() -> None:
    """Register the configs, models, processors and pipelines of both models (idempotent)."""
    from transformers import (
        AutoConfig,
        AutoImageProcessor,
        AutoModel,
        AutoModelForObjectDetection,
        AutoModelForTextRecognition,
        AutoProcessor,
        AutoTokenizer,
    )
    from transformers.pipelines import PIPELINE_REGISTRY

    from scenetext.modeling.clip4str import Clip4StrConfig, Clip4StrForSceneTextRecognition
    from scenetext.modeling.tcm import TcmConfig, TcmForSceneTextDetection
    from scenetext.pipelines.pipeline_clip4str import SceneTextRecognitionPipeline
    from scenetext.pipelines.pipeline_ocr import OcrPipeline
    from scenetext.pipelines.pipeline_tcm import SceneTextDetectionPipeline
    from scenetext.processors.clip4str import Clip4StrImageProcessor, Clip4StrProcessor, Clip4StrTokenizer
    from scenetext.processors.tcm import TcmImageProcessor

    for config_class, model_class, task_auto_class, image_processor_class in (
        (
            Clip4StrConfig,
            Clip4StrForSceneTextRecognition,
            AutoModelForTextRecognition,
            Clip4StrImageProcessor,
        ),
        (TcmConfig, TcmForSceneTextDetection, AutoModelForObjectDetection, TcmImageProcessor),
    ):
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        AutoModel.register(config_class, model_class, exist_ok=True)
        task_auto_class.register(config_class, model_class, exist_ok=True)
        # Both image processors work on numpy/PIL images: transformers' "pil" backend.
        AutoImageProcessor.register(
            config_class, image_processor_classes={"pil": image_processor_class}, exist_ok=True
        )
        config_class.custom_pipelines = _CUSTOM_PIPELINES_OF_INSTALLED_CONFIGS
    AutoProcessor.register(Clip4StrConfig, Clip4StrProcessor, exist_ok=True)
    AutoTokenizer.register(Clip4StrConfig, Clip4StrTokenizer, exist_ok=True)

    for task, pipeline_class, task_auto_class in (
        ("scene-text-recognition", SceneTextRecognitionPipeline, AutoModelForTextRecognition),
        ("scene-text-detection", SceneTextDetectionPipeline, AutoModelForObjectDetection),
        ("ocr", OcrPipeline, AutoModelForObjectDetection),
    ):
        if task not in PIPELINE_REGISTRY.supported_tasks:
            PIPELINE_REGISTRY.register_pipeline(
                task, pipeline_class=pipeline_class, pt_model=task_auto_class, type="image"
            )
