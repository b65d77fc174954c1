"""The RapidOCR comparison's plumbing: both systems scored by the project's metrics on the same tiny folders
(stand-in systems without RapidOCR; RapidOCR itself, when installed, on clearly printed words)."""

import runpy
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from scenetext.data.icdar_folder import write_icdar_folder
from scenetext.data.synthetic import SyntheticSceneConfig, render_scene_sample, render_word_sample
from scenetext.evaluation.metrics.detection import TextRegions

SCRIPT = runpy.run_path(str(Path(__file__).resolve().parents[2] / "benchmarks" / "rapidocr_comparison.py"))


def crop_folder(folder: Path, count: int = 4) -> dict[bytes, str]:
    """Synthetic crops with a labels.txt; returns each crop's pixels -> label."""
    folder.mkdir()
    labels, lines = {}, []
    for index in range(count):
        sample = render_word_sample(index, seed=21)
        sample["image"].save(folder / f"{index}.png")
        lines.append(f"{index}.png\t{sample['label']}\n")
        labels[sample["image"].tobytes()] = sample["label"]
    (folder / "labels.txt").write_text("".join(lines))
    return labels


def test_recognizers_are_scored_on_the_same_crops(tmp_path):
    labels = crop_folder(tmp_path / "crops")
    wrong_first = sorted(labels.values())[:2]

    def perfect(images):
        return [labels[image.tobytes()] for image in images], None

    def half(images):
        texts = [labels[image.tobytes()] for image in images]
        return ["?" if text in wrong_first else text for text in texts], None

    results = SCRIPT["compare_recognizers"]({"a": perfect, "b": half}, tmp_path / "crops")
    assert {name: (r["word_accuracy"], r["num_samples"]) for name, r in results.items()} == {
        "a": (100.0, 4),
        "b": (50.0, 4),
    }
    assert set(results["a"]) == {"word_accuracy", "num_samples", "seconds_per_image"}


def test_detectors_and_readers_are_scored_on_the_same_scenes(tmp_path):
    config = SyntheticSceneConfig(image_size=(96, 128), num_words=(2, 2), font_size=(14, 20))
    scenes = [render_scene_sample(index, seed=4, config=config) for index in range(2)]
    write_icdar_folder(scenes, tmp_path / "scenes")
    truth = {scene["image"].tobytes(): scene for scene in scenes}

    def perfect(images):
        found = [truth[image.tobytes()] for image in images]
        return [TextRegions([[round(v) for v in p] for p in s["polygons"]], s["texts"]) for s in found]

    def blind(images):
        return [TextRegions([], []) for _ in images]

    detection = SCRIPT["compare_detectors"]({"a": perfect, "b": blind}, tmp_path / "scenes")
    assert (detection["a"]["hmean"], detection["b"]["hmean"]) == (100.0, 0.0)
    assert detection["a"]["num_images"] == 2 and "end_to_end_hmean" not in detection["a"]
    reading = SCRIPT["compare_detectors"]({"a": perfect}, tmp_path / "scenes", end_to_end_protocol="36")
    assert reading["a"]["end_to_end_hmean"] == 100.0


def test_rapidocr_answers_become_texts_and_regions():
    class Engine:
        """RapidOCR's call: (result, elapsed) with result None when it found or read nothing."""

        def __call__(self, image, use_det=True, use_cls=True, use_rec=True):
            box = [[1.0, 2.0], [9.0, 2.0], [9.0, 6.0], [1.0, 6.0]]
            if image.width == 1:
                return None, None
            if not use_det:
                return [["word", 0.75]], [0.1]
            if not use_rec:
                return [box], [0.1]
            return [[box, "word", 0.75]], [0.1, 0.0, 0.1]

    blank, tiny = Image.new("RGB", (8, 8)), Image.new("RGB", (1, 8))
    assert SCRIPT["rapidocr_recognizer"](Engine())([blank, tiny]) == (["word", ""], [0.75, 0.0])
    detected = SCRIPT["rapidocr_detector"](Engine())([blank, tiny])
    assert [(r.polygons, r.transcriptions) for r in detected] == [
        ([[1, 2, 9, 2, 9, 6, 1, 6]], None),
        ([], None),
    ]
    (read,) = SCRIPT["rapidocr_detector"](Engine(), read=True)([blank])
    assert (read.polygons, read.transcriptions) == ([[1, 2, 9, 2, 9, 6, 1, 6]], ["word"])
    ocr = SCRIPT["ocr_pipeline_reader"](
        lambda images: [[{"polygon": [[0, 0], [4, 0], [4, 3], [0, 3]], "text": "hi"}]]
    )
    (ours,) = ocr([blank])
    assert (ours.polygons, ours.transcriptions) == ([[0, 0, 4, 0, 4, 3, 0, 3]], ["hi"])


def test_without_rapidocr_the_script_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)
    with pytest.raises(SystemExit, match=r'pip install "scenetext\[compare\]"'):
        SCRIPT["load_rapidocr"](1)


def test_rapidocr_reads_clearly_printed_words(tmp_path):
    pytest.importorskip("rapidocr_onnxruntime", reason="RapidOCR is optional: pip install scenetext[compare]")
    engine = SCRIPT["load_rapidocr"](1)
    font = ImageFont.load_default(40)
    (tmp_path / "crops").mkdir()
    for word in ("HELLO", "OPEN"):
        crop = Image.new("RGB", (200, 64), "white")
        ImageDraw.Draw(crop).text((10, 8), word, fill="black", font=font)
        crop.save(tmp_path / "crops" / f"{word}.png")
    (tmp_path / "crops" / "labels.txt").write_text("HELLO.png\thello\nOPEN.png\tOpen\n")
    recognition = SCRIPT["compare_recognizers"](
        {"rapidocr": SCRIPT["rapidocr_recognizer"](engine)}, tmp_path / "crops"
    )
    assert recognition["rapidocr"]["word_accuracy"] == 100.0

    scene = Image.new("RGB", (400, 200), "white")
    draw = ImageDraw.Draw(scene)
    polygons = []
    for word, origin in (("SALE", (40, 60)), ("OPEN", (200, 120))):
        draw.text(origin, word, fill="black", font=font)
        left, top, right, bottom = draw.textbbox(origin, word, font=font)
        polygons.append([left, top, right, top, right, bottom, left, bottom])
    sample = {"image": scene, "polygons": polygons, "texts": ["SALE", "OPEN"], "ignore": [False, False]}
    write_icdar_folder([sample], tmp_path / "scenes")
    systems = {"det": SCRIPT["rapidocr_detector"](engine)}
    assert SCRIPT["compare_detectors"](systems, tmp_path / "scenes")["det"]["hmean"] == 100.0
    systems = {"e2e": SCRIPT["rapidocr_detector"](engine, read=True)}
    reading = SCRIPT["compare_detectors"](systems, tmp_path / "scenes", end_to_end_protocol="36")
    assert reading["e2e"]["end_to_end_hmean"] == 100.0
