"""The ONNX accuracy benchmark on users' own folders: labelled word crops and an ICDAR-style folder of scenes."""

import runpy
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime", reason="the ONNX accuracy benchmark needs the [onnx] extra")

from scenetext.data.icdar import format_ground_truth_line
from scenetext.data.synthetic import SyntheticSceneConfig, render_scene_sample, render_word_sample

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "onnx_accuracy.py"


@pytest.mark.slow
def test_recognizer_accuracy_reads_labelled_crop_folders(tmp_path):
    folders = []
    for part in range(2):
        folder = tmp_path / f"crops-{part}"
        folder.mkdir()
        lines = []
        for index in range(3):
            sample = render_word_sample(10 * part + index, seed=7)
            sample["image"].save(folder / f"{index}.png")
            lines.append(f"{index}.png\t{sample['label']}")
        (folder / "labels.txt").write_text("\n".join(lines) + "\n")
        folders.append(str(folder))
    record = runpy.run_path(str(SCRIPT))["recognizer_accuracy"](0, 0, "62", folders)
    assert record["words"] == 6 and record["crops"] == folders
    # ONNX Runtime fp32 is the exported graph checked against PyTorch: the same text on every crop
    assert record["onnxruntime fp32"]["same_text_as_pytorch"] == 6
    assert record["onnxruntime fp32"]["word_accuracy"] == record["pytorch fp32"]["word_accuracy"]


@pytest.mark.slow
def test_detector_accuracy_reads_an_icdar_folder(tmp_path):
    config = SyntheticSceneConfig(image_size=(256, 448), num_words=(1, 4), font_size=(24, 48))
    for index in range(2):
        sample = render_scene_sample(index, seed=11, config=config)
        sample["image"].save(tmp_path / f"img_{index}.png")
        lines = [
            format_ground_truth_line(list(polygon), text)
            for polygon, text in zip(sample["polygons"], sample["texts"], strict=True)
        ]
        (tmp_path / f"gt_img_{index}.txt").write_text("\n".join(lines) + "\n")
    record = runpy.run_path(str(SCRIPT))["detector_accuracy"](0, 0, str(tmp_path))
    assert record["scenes_folder"] == str(tmp_path)
    pytorch, onnx_fp32 = record["pytorch fp32"], record["onnxruntime fp32"]
    assert pytorch["num_images"] == 2 and pytorch["hmean"] > 50  # the embedded detector finds these words
    assert onnx_fp32["hmean"] == pytest.approx(pytorch["hmean"], abs=1e-6)
    assert 0 <= record["onnxruntime int8"]["hmean"] <= 100
