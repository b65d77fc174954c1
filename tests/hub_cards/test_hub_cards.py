"""Model cards: metadata and results parse back, tables sit next to the paper's numbers, snippets run, and bad
evaluation JSON or metadata is refused with the wrong part named."""

import ast
import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from huggingface_hub import ModelCard

from scenetext.evaluation.metrics.detection import DetectionCounts
from scenetext.evaluation.metrics.recognition import score_recognition
from scenetext.evaluation.reports import DetectionReport, RecognitionReport, write_json
from scenetext.hub_cards import MODEL_KINDS, load_evaluation_report, render_model_card, validate_card_metadata
from scenetext.hub_cards.publish import load_training_config
from scenetext.modeling.clip4str import Clip4StrForSceneTextRecognition
from scenetext.modeling.tcm import TcmForSceneTextDetection
from scenetext.processors.clip4str import Clip4StrProcessor
from scenetext.processors.tcm import TcmImageProcessor

from ..tiny_models import save_tiny_detector, save_tiny_recognizer

CLIP4STR = MODEL_KINDS["clip4str"]
TCM = MODEL_KINDS["tcm"]


@pytest.fixture(scope="module")
def clip4str_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_recognizer(tmp_path_factory.mktemp("clip4str"))


@pytest.fixture(scope="module")
def tcm_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_detector(tmp_path_factory.mktemp("tcm"))


def recognition_json(path: Path) -> Path:
    # 2 of 3 words right on IIIT5k (one edit in "hello" -> "hallo"), 1 of 1 on SVT.
    iiit5k = score_recognition(["hallo", "world", "cafe"], ["hello", "world", "cafe"])
    svt = score_recognition(["road"], ["road"])
    report = RecognitionReport("36", {"IIIT5k": iiit5k, "SVT": svt}, {"model": "tiny"})
    return write_json(report, path)


def detection_json(path: Path) -> Path:
    counts = DetectionCounts(num_gt_care=10, num_det_care=8, num_matched=6)
    report = DetectionReport(
        counts, num_images=2, source={"model": "tiny", "data": "/data/ic15"}, preset="icdar2015"
    )
    return write_json(report, path)


def test_recognizer_card_parses_back_with_metadata_and_results(clip4str_folder, tmp_path):
    report = load_evaluation_report(recognition_json(tmp_path / "eval.json"), CLIP4STR)
    card = render_model_card(
        clip4str_folder, CLIP4STR, "someone/clip4str-tiny", eval_report=report, datasets=["someone/words"]
    )
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")

    data = loaded.data
    assert (data.library_name, data.pipeline_tag, data.license) == (
        "transformers",
        "image-to-text",
        "apache-2.0",
    )
    assert data.tags == ["scene-text-recognition", "ocr", "clip", "clip4str"]
    assert data.datasets == ["someone/words"] and data.metrics == ["accuracy", "cer"]
    assert data.model_name == "clip4str-tiny"
    results = {(r.dataset_name, r.metric_type): r for r in data.eval_results}
    assert results["IIIT5k", "accuracy"].metric_value == 66.67
    assert results["SVT", "accuracy"].metric_value == 100.0
    # One edit over the 14 label characters of IIIT5k.
    assert results["IIIT5k", "cer"].metric_value == round(100 / 14, 2)
    assert {r.task_type for r in data.eval_results} == {"image-to-text"}
    assert results["IIIT5k", "accuracy"].dataset_split == "test"
    # The table: own scores, then the README numbers of the four released OpenAI-CLIP models.
    assert "| IIIT5k | 3 | 66.67 | 93.33 | 97.70 | 97.57 | 99.20 | 99.43 |" in loaded.text
    assert "| SVT | 1 | 100.00 | 100.00 | 95.36 | 95.36 | 98.30 | 98.15 |" in loaded.text
    assert "@article{zhao2024clip4str" in loaded.text and "2305.14014" in loaded.text
    assert 'AutoModel.from_pretrained("someone/clip4str-tiny", trust_remote_code=True)' in loaded.text


def test_detector_card_reports_precision_recall_hmean_next_to_the_paper(tcm_folder, tmp_path):
    report = load_evaluation_report(detection_json(tmp_path / "eval.json"), TCM)
    card = ModelCard(str(render_model_card(tcm_folder, TCM, "someone/tcm-tiny", eval_report=report)))

    assert (card.data.pipeline_tag, card.data.library_name) == ("object-detection", "transformers")
    results = {r.metric_type: r for r in card.data.eval_results}
    assert results["precision"].metric_value == 75.0
    assert results["recall"].metric_value == 60.0
    assert results["f1"].metric_value == round(100 * 2 * 0.75 * 0.6 / 1.35, 2)
    assert {r.dataset_name for r in card.data.eval_results} == {"icdar2015"}
    assert "| icdar2015 | 2 | 75.00 | 60.00 | 66.67 | 88.80 |" in card.text
    assert "short side 64 (long side at most 128)" in card.text
    assert "@inproceedings{yu2023turning" in card.text


def test_card_without_evaluation_has_no_results_and_says_so(tcm_folder):
    card = ModelCard(str(render_model_card(tcm_folder, TCM, "someone/tcm-tiny")))
    assert card.data.eval_results is None
    assert "model_name" not in card.data.to_dict()
    assert "Not evaluated yet" in card.text


def test_training_recipe_is_the_run_configuration(tcm_folder):
    recipe = {"task": "detector", "max_steps": 1200, "data": {"train": {"source": "icdar", "path": "ic15"}}}
    card = render_model_card(tcm_folder, TCM, "someone/tcm-tiny", training_config=recipe)
    assert "```yaml\ntask: detector\nmax_steps: 1200\ndata:\n  train:\n    source: icdar\n" in card.text


def test_parameter_count_comes_from_the_weights(clip4str_folder):
    model = Clip4StrForSceneTextRecognition.from_pretrained(clip4str_folder)
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    card = render_model_card(clip4str_folder, CLIP4STR, "someone/clip4str-tiny")
    assert f"- Parameters: {millions:.1f} M" in card.text


def python_blocks(card_text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", card_text, flags=re.DOTALL)


def expected_readings(clip4str_folder: Path, tcm_folder: Path, images: Path) -> tuple[str, list[float]]:
    """What the snippets must print, computed here with the same classes on the same pictures."""
    word = PIL.Image.open(images / "word.png").convert("RGB")
    processor = Clip4StrProcessor.from_pretrained(clip4str_folder)
    model = Clip4StrForSceneTextRecognition.from_pretrained(clip4str_folder).eval()
    scene = PIL.Image.open(images / "scene.jpg").convert("RGB")
    image_processor = TcmImageProcessor.from_pretrained(tcm_folder)
    detector = TcmForSceneTextDetection.from_pretrained(tcm_folder).eval()
    with torch.no_grad():
        logits = model(pixel_values=processor(images=[word], return_tensors="pt")["pixel_values"]).logits
        outputs = detector(pixel_values=image_processor(scene, return_tensors="pt")["pixel_values"])
    text = processor.batch_decode(logits)["generated_text"][0]
    regions = image_processor.post_process_text_detection(
        outputs, target_sizes=[(scene.height, scene.width)]
    )[0]
    return text, [round(float(score), 2) for score in regions["scores"]]


@pytest.mark.slow
def test_card_snippets_run_against_the_saved_folders(clip4str_folder, tcm_folder, tmp_path, run_isolated):
    """Every usage example of both cards, rendered for local folders, run where only the folders exist, reads
    what the classes read in this process. The folders carry their pipelines, so the cards show the pipeline
    and scene-reading (ocr) examples too."""
    recognizer, detector = tmp_path / "recognizer", tmp_path / "detector"
    shutil.copytree(clip4str_folder, recognizer)
    shutil.copytree(tcm_folder, detector)
    tasks = {
        kind: list(json.loads((folder / "config.json").read_text())["custom_pipelines"])
        for kind, folder in (("clip4str", recognizer), ("tcm", detector))
    }
    rng = np.random.default_rng(0)
    PIL.Image.fromarray(rng.integers(0, 256, (32, 100, 3), dtype=np.uint8)).save(tmp_path / "word.png")
    PIL.Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(tmp_path / "scene.jpg")
    recognizer_card = render_model_card(
        recognizer, CLIP4STR, str(recognizer), pipeline_tasks=tasks["clip4str"]
    )
    detector_card = render_model_card(
        detector, TCM, str(detector), pipeline_tasks=tasks["tcm"], ocr_recognizer=str(recognizer)
    )
    blocks = python_blocks(str(recognizer_card)) + python_blocks(str(detector_card))
    # Pipeline examples first, the Auto* example last, on each card.
    assert [block.count('pipeline("') for block in blocks] == [1, 0, 1, 1, 0]
    script = (
        f"import os\nos.chdir({str(tmp_path)!r})\n"
        f"for block in {blocks!r}:\n"
        "    print('== block')\n"
        "    exec(block, {})\n"
    )
    outputs = run_isolated(script).split("== block\n")[1:]
    expected_text, expected_scores = expected_readings(clip4str_folder, tcm_folder, tmp_path)
    assert expected_scores, "the random detector finds regions in noise; an empty reading would prove nothing"
    reading, auto_reading, detection, scene, auto_detection = outputs
    assert ast.literal_eval(reading.strip())[0]["generated_text"] == expected_text
    regions = ast.literal_eval(detection.strip())
    assert sorted(round(region["score"], 2) for region in regions) == sorted(expected_scores)
    assert {region["label"] for region in regions} == {"text"}
    assert len(scene.strip().splitlines()) == len(expected_scores)
    text, score = auto_reading.rstrip("\n").rsplit(" ", 1)
    assert text == expected_text and 0.0 <= float(score) <= 1.0
    lines = auto_detection.strip().splitlines()
    assert [float(line.split(" ", 1)[0]) for line in lines] == expected_scores
    assert all(len(json.loads(line.split(" ", 1)[1])) >= 4 for line in lines)


def test_evaluation_of_another_model_type_is_refused(tmp_path):
    path = detection_json(tmp_path / "det.json")
    with pytest.raises(
        ValueError, match=r"task 'scene-text-detection' is not the evaluation of a clip4str model"
    ):
        load_evaluation_report(path, CLIP4STR)
    with pytest.raises(
        ValueError, match=r"task 'scene-text-recognition' is not the evaluation of a tcm model"
    ):
        load_evaluation_report(recognition_json(tmp_path / "rec.json"), TCM)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not valid JSON"),
        ("[1, 2]", "expected an object, got list"),
        ('{"schema_version": 2, "task": "scene-text-recognition"}', "schema_version 2 is not supported"),
        ('{"schema_version": 1, "task": "scene-text-recognition", "datasets": {}}', "'datasets' must map"),
        (
            '{"schema_version": 1, "task": "scene-text-recognition", "datasets": {"SVT": {"num_samples": 1, '
            '"accuracy": "high", "one_minus_ned": 1, "character_error_rate": 0}}}',
            r"datasets.SVT: 'accuracy' must be a finite number, got 'high'",
        ),
    ],
)
def test_malformed_evaluation_json_names_the_file_and_the_part(tmp_path, content, message):
    path = tmp_path / "eval.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        load_evaluation_report(path, CLIP4STR)
    assert str(path) in str(error.value)


def test_missing_evaluation_json_is_a_file_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere\.json does not exist"):
        load_evaluation_report(tmp_path / "nowhere.json", CLIP4STR)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"license": "free-for-all"}, "license 'free-for-all' is not a Hub license id"),
        ({"base_model": "not a/repo id"}, "base_model 'not a/repo id' is not a Hub repo id"),
        ({"datasets": ["a/b/c"]}, "datasets 'a/b/c' is not a Hub repo id"),
        ({"language": "English"}, "language 'English' is not an ISO 639 code"),
    ],
)
def test_invalid_card_metadata_is_refused_offline(tcm_folder, overrides, message):
    card = render_model_card(tcm_folder, TCM, "someone/tcm-tiny", **overrides)
    with pytest.raises(ValueError, match=message):
        validate_card_metadata(card, TCM)


def test_card_of_the_wrong_task_is_refused(tcm_folder):
    card = render_model_card(tcm_folder, TCM, "someone/tcm-tiny")
    with pytest.raises(ValueError, match="pipeline_tag is 'object-detection', expected 'image-to-text'"):
        validate_card_metadata(card, CLIP4STR)


def test_valid_cards_pass_validation(clip4str_folder, tcm_folder, tmp_path):
    report = load_evaluation_report(recognition_json(tmp_path / "eval.json"), CLIP4STR)
    validate_card_metadata(render_model_card(clip4str_folder, CLIP4STR, "a/b", eval_report=report), CLIP4STR)
    validate_card_metadata(render_model_card(tcm_folder, TCM, "a/b", base_model="openai/clip-rn50"), TCM)


def test_training_config_is_read_from_yaml_a_mapping_or_a_dataclass(tmp_path):
    @dataclasses.dataclass
    class Recipe:
        task: str = "recognizer"
        max_steps: int = 20
        output_dir: Path = Path("outputs/run")

    (tmp_path / "run.yaml").write_text("task: recognizer\nmax_steps: 20\noutput_dir: outputs/run\n")
    expected = {"task": "recognizer", "max_steps": 20, "output_dir": "outputs/run"}
    assert load_training_config(tmp_path / "run.yaml") == load_training_config(Recipe()) == expected
    assert load_training_config(expected) == expected and load_training_config(None) is None
    with pytest.raises(FileNotFoundError, match=r"training config .*nothing\.yaml does not exist"):
        load_training_config(tmp_path / "nothing.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ValueError, match=r"list\.yaml: expected a mapping, got list"):
        load_training_config(tmp_path / "list.yaml")
    with pytest.raises(
        TypeError, match="training_config must be a mapping, a dataclass or a YAML path, got int"
    ):
        load_training_config(3)


@pytest.mark.parametrize(("head_type", "name"), [("pan", "TCM-PANet"), ("fcenet", "TCM-FCENet")])
def test_detector_card_names_the_head_of_the_folder(head_type, name, tmp_path):
    from scenetext.modeling.tcm import TcmConfig

    torch.manual_seed(0)
    TcmForSceneTextDetection(TcmConfig.from_preset("tiny", head_type=head_type)).save_pretrained(tmp_path)
    TcmImageProcessor(head_type=head_type).save_pretrained(tmp_path)
    card = str(render_model_card(tmp_path, TCM, "someone/tcm-head"))
    assert f"({name})" in card and f"Architecture: {name}," in card
    assert "DBNet" not in card.split("## How to use")[0]
