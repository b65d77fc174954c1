"""Every path that writes a model folder writes a complete one: weights, configs, model and processor code and
the pipelines declared in `custom_pipelines`; the folders load with and without scenetext installed."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import (
    AutoModel,
    AutoModelForObjectDetection,
    AutoModelForTextRecognition,
    AutoProcessor,
    AutoTokenizer,
    Trainer,
    TrainingArguments,
    pipeline,
)
from transformers.trainer_utils import align_special_tokens

import scenetext
from scenetext.assets.regenerate_defaults import travelling_sources
from scenetext.modeling.clip4str import Clip4StrConfig, Clip4StrForSceneTextRecognition
from scenetext.modeling.tcm import TcmConfig, TcmForSceneTextDetection
from scenetext.processors.clip4str import Clip4StrImageProcessor, Clip4StrProcessor, Clip4StrTokenizer
from scenetext.processors.tcm import TcmImageProcessor

REPO_ROOT = Path(__file__).resolve().parents[2]
RECOGNIZER_PIPELINE_FILES = {"pipeline_clip4str.py"}
DETECTOR_PIPELINE_FILES = {"pipeline_tcm.py", "pipeline_ocr.py", "cropping_ocr.py", "reading_order_ocr.py"}


def save_recognizer(folder: Path) -> Path:
    torch.manual_seed(0)
    config = Clip4StrConfig.from_preset("tiny")
    Clip4StrForSceneTextRecognition(config).save_pretrained(folder)
    image_processor = Clip4StrImageProcessor(size=config.vision_config.image_size)
    Clip4StrProcessor(image_processor, Clip4StrTokenizer()).save_pretrained(folder)
    return folder


def save_detector(folder: Path) -> Path:
    torch.manual_seed(0)
    TcmForSceneTextDetection(TcmConfig.from_preset("tiny")).save_pretrained(folder)
    TcmImageProcessor(size={"shortest_edge": 128, "longest_edge": 256}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("saved")
    return save_recognizer(root / "recognizer"), save_detector(root / "detector")


def test_save_pretrained_writes_the_pipelines_code_and_declares_them(folders):
    recognizer, detector = folders
    recognizer_config = json.loads((recognizer / "config.json").read_text())
    detector_config = json.loads((detector / "config.json").read_text())
    assert recognizer_config["custom_pipelines"] == {
        task: {"impl": "pipeline_clip4str.SceneTextRecognitionPipeline", "pt": ["AutoModel"], "type": "image"}
        for task in ("scene-text-recognition", "image-to-text")
    }
    assert {task: spec["impl"] for task, spec in detector_config["custom_pipelines"].items()} == {
        "scene-text-detection": "pipeline_tcm.SceneTextDetectionPipeline",
        "ocr": "pipeline_ocr.OcrPipeline",
    }
    assert {path.name for path in recognizer.iterdir()} >= RECOGNIZER_PIPELINE_FILES
    assert {path.name for path in detector.iterdir()} >= DETECTOR_PIPELINE_FILES
    # the copies are the package's files, byte for byte
    for name in DETECTOR_PIPELINE_FILES:
        assert (detector / name).read_bytes() == (REPO_ROOT / "pipelines" / name).read_bytes()
    # TCM's pipeline-files module is a link to CLIP4STR's in the source tree; the folder holds a real file
    saved_module = detector / "pipeline_files_tcm.py"
    assert not saved_module.is_symlink()
    assert saved_module.read_bytes() == (recognizer / "pipeline_files_clip4str.py").read_bytes()


def test_only_the_main_process_writes_the_pipeline_files(tmp_path):
    model = TcmForSceneTextDetection(TcmConfig.from_preset("tiny"))
    model.save_pretrained(tmp_path, is_main_process=False)
    assert not DETECTOR_PIPELINE_FILES & {path.name for path in tmp_path.iterdir()}


def test_trainer_checkpoints_are_complete_folders(tmp_path):
    model = Clip4StrForSceneTextRecognition(Clip4StrConfig.from_preset("tiny"))
    trainer = Trainer(model=model, args=TrainingArguments(tmp_path / "run", report_to=[], use_cpu=True))
    trainer.save_model(tmp_path / "saved")
    assert (
        "scene-text-recognition"
        in json.loads((tmp_path / "saved/config.json").read_text())["custom_pipelines"]
    )
    assert (tmp_path / "saved/pipeline_clip4str.py").is_file()


def test_import_scenetext_registers_both_models_with_the_auto_classes(folders):
    recognizer, detector = folders
    assert callable(scenetext.register_with_transformers)
    assert type(AutoModelForTextRecognition.from_pretrained(recognizer)) is Clip4StrForSceneTextRecognition
    assert type(AutoModel.from_pretrained(detector)) is TcmForSceneTextDetection
    assert type(AutoModelForObjectDetection.from_pretrained(detector)) is TcmForSceneTextDetection
    assert type(AutoProcessor.from_pretrained(recognizer)) is Clip4StrProcessor
    assert type(AutoProcessor.from_pretrained(detector)) is TcmImageProcessor
    assert type(AutoTokenizer.from_pretrained(recognizer)) is Clip4StrTokenizer


def test_installed_pipelines_need_no_trust_remote_code(folders):
    recognizer, detector = folders
    word = np.zeros((32, 100, 3), dtype=np.uint8)
    reading = pipeline("scene-text-recognition", model=str(recognizer))(word)
    assert type(reading[0]["generated_text"]) is str and 0.0 <= reading[0]["score"] <= 1.0
    detection = pipeline("scene-text-detection", model=str(detector))
    assert type(detection).__module__ == "scenetext.pipelines.pipeline_tcm"
    assert type(detection(np.zeros((64, 64, 3), dtype=np.uint8))) is list
    # config.json keeps every declared task for machines without scenetext
    assert len(json.loads((recognizer / "config.json").read_text())["custom_pipelines"]) == 2


# Loads every folder the way a user without scenetext does, and saves a trust_remote_code model again.
LOAD_EVERYWHERE = """
import json, os
import numpy as np
from transformers import AutoModel, AutoProcessor, pipeline

recognizer, detector = {recognizer!r}, {detector!r}
word = np.zeros((32, 100, 3), dtype=np.uint8)
scene = np.zeros((64, 64, 3), dtype=np.uint8)
results = {{}}
for name, folder in (("recognizer", recognizer), ("detector", detector)):
    model = AutoModel.from_pretrained(folder, trust_remote_code=True)
    AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    resaved = os.path.abspath(name + "-resaved")
    model.save_pretrained(resaved)
    results[name] = sorted(os.listdir(resaved))
    results[name + "_links"] = [f for f in results[name] if os.path.islink(os.path.join(resaved, f))]
    results[name + "_tasks"] = sorted(json.load(open(os.path.join(resaved, "config.json")))["custom_pipelines"])
reading = pipeline("scene-text-recognition", model=recognizer, trust_remote_code=True)(word)
regions = pipeline("scene-text-detection", model=detector, trust_remote_code=True)(scene)
results["reading"] = type(reading[0]["generated_text"]).__name__
results["regions"] = type(regions).__name__
print(json.dumps(results))
"""


@pytest.mark.slow
def test_saved_folders_load_where_scenetext_is_not_installed(folders, run_isolated, tmp_path):
    recognizer, detector = folders
    trained = tmp_path / "trainer"
    Trainer(
        model=Clip4StrForSceneTextRecognition.from_pretrained(recognizer),
        args=TrainingArguments(tmp_path / "run", report_to=[], use_cpu=True),
    ).save_model(trained)
    Clip4StrProcessor.from_pretrained(recognizer).save_pretrained(trained)
    stdout = run_isolated(LOAD_EVERYWHERE.format(recognizer=str(trained), detector=str(detector)))
    results = json.loads(stdout.strip().splitlines()[-1])
    # a model loaded with trust_remote_code saves a complete folder too: its pipelines come from the folder
    assert set(results["recognizer"]) >= RECOGNIZER_PIPELINE_FILES
    assert results["recognizer_tasks"] == ["image-to-text", "scene-text-recognition"]
    assert set(results["detector"]) >= DETECTOR_PIPELINE_FILES
    assert results["detector_tasks"] == ["ocr", "scene-text-detection"]
    assert (results["reading"], results["regions"]) == ("str", "list")


@pytest.mark.slow
def test_shipped_defaults_load_where_scenetext_is_not_installed(run_isolated):
    defaults = REPO_ROOT / "assets" / "defaults"
    stdout = run_isolated(
        LOAD_EVERYWHERE.format(recognizer=str(defaults / "recognizer"), detector=str(defaults / "detector"))
    )
    results = json.loads(stdout.strip().splitlines()[-1])
    assert (results["reading"], results["regions"]) == ("str", "list")
    assert results["detector_tasks"] == ["ocr", "scene-text-detection"]
    # The shipped code files are links to the sources; what a loaded default saves is real files.
    assert set(results["recognizer"]) >= RECOGNIZER_PIPELINE_FILES | {"modeling_clip4str.py"}
    assert set(results["detector"]) >= DETECTOR_PIPELINE_FILES | {"modeling_tcm.py"}
    assert results["recognizer_links"] == results["detector_links"] == []


def test_shipped_defaults_link_the_code_they_save(tmp_path):
    """The default folders' code files are links to the travelling sources, one for each file that
    `save_pretrained` writes (`python -m scenetext.assets.regenerate_defaults` relinks them)."""
    sources = travelling_sources()
    for name in ("recognizer", "detector"):
        folder = REPO_ROOT / "assets" / "defaults" / name
        saved = tmp_path / name
        AutoModel.from_pretrained(folder).save_pretrained(saved)
        AutoProcessor.from_pretrained(folder).save_pretrained(saved)
        shipped = sorted(path.name for path in folder.glob("*.py"))
        assert shipped == sorted(path.name for path in saved.glob("*.py")), (
            f"{folder}: run python -m scenetext.assets.regenerate_defaults"
        )
        for file_name in shipped:
            link = folder / file_name
            assert link.is_symlink(), f"{link} is a copy; run python -m scenetext.assets.regenerate_defaults"
            assert link.resolve() == sources[file_name].resolve()


def test_trainer_special_token_alignment_leaves_the_config_untouched():
    """`Trainer.train` aligns the model config's special token ids with `processing_class`'s tokenizer
    (`align_special_tokens`); the recognizer's config already holds the tokenizer's ids."""
    config = Clip4StrConfig.from_preset("tiny")
    model = Clip4StrForSceneTextRecognition(config)
    before = model.config.to_dict()
    processor = Clip4StrProcessor(
        Clip4StrImageProcessor(size=config.vision_config.image_size), Clip4StrTokenizer()
    )
    align_special_tokens(model, processor)
    assert model.config.to_dict() == before
    # the CLIP text tower still pools at CLIP's end-of-text token
    assert model.config.text_config.eos_token_id == 49407
    assert (config.eos_token_id, config.bos_token_id, config.pad_token_id) == (
        processor.tokenizer.eos_token_id,
        processor.tokenizer.bos_token_id,
        processor.tokenizer.pad_token_id,
    )
