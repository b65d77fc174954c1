"""`scenetext ocr` on folders with good and bad files, and `scenetext demo` with and without the embedded
checkpoints."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from scenetext.cli import ocr as ocr_cli
from scenetext.cli.main import main
from scenetext.data.synthetic import SyntheticSceneConfig, render_scene_sample
from scenetext.processors.tcm import TcmImageProcessor

from ..tiny_models import save_tiny_detector, save_tiny_recognizer


@pytest.fixture(scope="module")
def defaults_dir(tmp_path_factory):
    """A stand-in for assets/defaults: tiny random recognizer and detector folders. The detector refuses
    images above 400x400 pixels, so a "huge" image is cheap to make."""
    root = tmp_path_factory.mktemp("defaults")
    save_tiny_recognizer(root / "recognizer")
    image_processor = TcmImageProcessor(
        size={"shortest_edge": 128, "longest_edge": 256},
        max_image_pixels=400 * 400,
        post_processing={"threshold": 0.0, "min_score": 0.0},
    )
    save_tiny_detector(root / "detector", image_processor)
    return root


@pytest.fixture
def mixed_folder(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    config = SyntheticSceneConfig(image_size=(120, 200), num_words=(2, 3), font_size=(20, 30))
    render_scene_sample(0, seed=1, config=config)["image"].save(folder / "scene-a.png")
    render_scene_sample(1, seed=1, config=config)["image"].convert("RGB").save(folder / "scene-b.jpg")
    (folder / "notes.txt").write_text("not a picture\n")
    (folder / "empty.png").write_bytes(b"")
    png = (folder / "scene-a.png").read_bytes()
    (folder / "broken.png").write_bytes(png[: len(png) // 3])
    Image.new("RGB", (500, 500), "gray").save(folder / "huge.png")
    (folder / ".hidden.png").write_bytes(b"ignored")
    return folder


def test_ocr_folder_writes_results_for_good_files_and_reports_each_bad_one(
    defaults_dir, mixed_folder, tmp_path, capsys
):
    out = tmp_path / "out"
    code = main(
        [
            "ocr",
            str(mixed_folder),
            "--detector",
            str(defaults_dir / "detector"),
            "--recognizer",
            str(defaults_dir / "recognizer"),
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert sorted(path.name for path in out.iterdir()) == [
        "scene-a.json",
        "scene-a.png",
        "scene-b.json",
        "scene-b.png",
    ]
    # a file without an image extension is passed over and listed on one line, not read and failed
    assert "skipped 1 entries that are not image files: notes.txt" in captured.err
    errors = {line.split(": failed: ")[0].rsplit("/", 1)[-1]: line for line in captured.err.splitlines()}
    assert "notes.txt" not in errors
    assert "empty file (0 bytes)" in errors["empty.png"]
    assert "unreadable image" in errors["broken.png"]
    assert "max_image_pixels" in errors["huge.png"]
    assert "2/5 images read" in captured.out

    # the JSON is exactly what the pipeline returns for that image, and the picture has the image's size
    ocr = ocr_cli.load_ocr_pipeline(defaults_dir / "detector", defaults_dir / "recognizer", "cpu")
    scene = Image.open(mixed_folder / "scene-a.png").convert("RGB")
    expected = ocr(scene)
    assert expected, "the forced-open post-processing should find at least one region"
    assert json.loads((out / "scene-a.json").read_text()) == json.loads(json.dumps(expected))
    assert Image.open(out / "scene-a.png").size == scene.size


def test_ocr_on_good_files_only_exits_zero_and_prints_the_words(defaults_dir, mixed_folder, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["ocr", str(mixed_folder / "scene-a.png"), str(mixed_folder / "scene-b.jpg"), "--out", str(out)]
    args += ["--detector", str(defaults_dir / "detector"), "--recognizer", str(defaults_dir / "recognizer")]
    assert main([*args, "--device", "cpu"]) == 0
    results = json.loads((out / "scene-b.json").read_text())
    words = " ".join(result["text"] for result in results)
    assert f"scene-b.jpg: {words} -> {out / 'scene-b.png'}" in capsys.readouterr().out


def test_ocr_reports_a_missing_input_and_missing_models(defaults_dir, tmp_path, capsys):
    assert main(["ocr", str(tmp_path / "nothing.png"), "--out", str(tmp_path / "o")]) == 2
    assert "nothing.png does not exist" in capsys.readouterr().err
    image = tmp_path / "x.png"
    Image.new("RGB", (20, 20)).save(image)
    code = main(["ocr", str(image), "--detector", str(tmp_path), "--recognizer", str(tmp_path)])
    assert code == 2
    assert f"detector folder {tmp_path} has no config.json" in capsys.readouterr().err


def test_demo_without_embedded_checkpoints_says_what_it_needs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ocr_cli, "DEFAULTS_DIR", tmp_path / "defaults")
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "defaults" / "recognizer") in err and str(tmp_path / "defaults" / "detector") in err
    assert "scenetext train recognizer --config recognizer-embedded" in err
    assert not (tmp_path / "demo").exists()


@pytest.mark.slow
def test_demo_reads_the_shipped_samples_with_the_embedded_checkpoints(
    defaults_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(ocr_cli, "DEFAULTS_DIR", defaults_dir)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--device", "cpu"]) == 0
    stdout = capsys.readouterr().out
    labels = json.loads((ocr_cli.SAMPLES_DIR / "labels.json").read_text())
    assert len(labels) >= 3
    for name in labels:
        assert f"{ocr_cli.SAMPLES_DIR / name}: " in stdout
        assert Image.open(out / name).size == Image.open(ocr_cli.SAMPLES_DIR / name).size
    total = sum(len(words) for words in labels.values())
    assert f"/{total} words of the samples read exactly; pictures in {out}" in stdout


@pytest.mark.slow
def test_the_embedded_checkpoints_read_the_shipped_samples(tmp_path, capsys):
    """The README's main command with the committed defaults: at least 90% of the sample words read exactly."""
    assert main(["demo", "--out", str(tmp_path / "demo"), "--device", "cpu"]) == 0
    summary = re.search(r"(\d+)/(\d+) words of the samples read exactly", capsys.readouterr().out)
    exact, total = int(summary[1]), int(summary[2])
    assert total == 13 and exact >= 0.9 * total


def test_shipped_samples_are_small_scenes_with_their_words():
    labels = json.loads((ocr_cli.SAMPLES_DIR / "labels.json").read_text())
    for name, words in labels.items():
        with Image.open(ocr_cli.SAMPLES_DIR / name) as image:
            assert 300 <= image.width <= 400 and 300 <= image.height <= 400
            assert np.asarray(image).std() > 0
        assert 3 <= len(words) <= 5 and all(word.isalnum() for word in words)


def test_an_image_without_text_gets_an_empty_result_and_its_picture(mixed_folder, tmp_path, capsys):
    reports = ocr_cli.read_files([mixed_folder / "scene-a.png"], lambda picture: [], tmp_path, progress=False)
    assert reports[0].error is None and reports[0].results == []
    assert json.loads((tmp_path / "scene-a.json").read_text()) == []
    assert Image.open(tmp_path / "scene-a.png").size == Image.open(mixed_folder / "scene-a.png").size
    ocr_cli._print_report(reports[0])
    assert (
        capsys.readouterr().out
        == f"{mixed_folder / 'scene-a.png'}: no text found -> {tmp_path / 'scene-a.png'}\n"
    )
