"""Tiny random recognizer and detector folders as `save_pretrained` writes them, for the tests that need a model
on disk (model cards, push, pipelines, the `scenetext ocr` command)."""

from pathlib import Path

import torch

from scenetext.modeling.clip4str import Clip4StrConfig, Clip4StrForSceneTextRecognition
from scenetext.modeling.tcm import TcmConfig, TcmForSceneTextDetection
from scenetext.processors.clip4str import Clip4StrImageProcessor, Clip4StrProcessor, Clip4StrTokenizer
from scenetext.processors.tcm import TcmImageProcessor


def tiny_recognizer() -> tuple[Clip4StrForSceneTextRecognition, Clip4StrProcessor]:
    """The `tiny` CLIP4STR preset with seed-0 weights, in eval mode, and its processor."""
    torch.manual_seed(0)
    config = Clip4StrConfig.from_preset("tiny")
    processor = Clip4StrProcessor(
        Clip4StrImageProcessor(size=config.vision_config.image_size), Clip4StrTokenizer()
    )
    return Clip4StrForSceneTextRecognition(config).eval(), processor


def save_tiny_recognizer(folder: Path) -> Path:
    model, processor = tiny_recognizer()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def tiny_detector(**overrides) -> TcmForSceneTextDetection:
    """The `tiny` TCM preset (with the config `overrides`) with seed-0 weights."""
    torch.manual_seed(0)
    return TcmForSceneTextDetection(TcmConfig.from_preset("tiny", **overrides))


def save_tiny_detector(folder: Path, image_processor: TcmImageProcessor | None = None) -> Path:
    """`tiny_detector()` and `image_processor` (by default small test scales)."""
    tiny_detector().save_pretrained(folder)
    image_processor = image_processor or TcmImageProcessor(size={"shortest_edge": 64, "longest_edge": 128})
    image_processor.save_pretrained(folder)
    return folder
