"""Detector evaluation: ICDAR result files scored end to end through the CLI, and the model runner."""

import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from scenetext.cli.main import main
from scenetext.data.icdar import format_ground_truth_line, format_result_line
from scenetext.data.icdar_folder import write_icdar_folder
from scenetext.evaluation import detector as detector_module
from scenetext.evaluation.detector import evaluate_detector, score_result_files
from scenetext.evaluation.metrics.detection import TextRegions
from scenetext.evaluation.visualize import DET_FALSE_POSITIVE, DET_MATCHED, GT_MATCHED, GT_MISSED

BOM = "\ufeff"


def quad(x0, y0, x1, y1):
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def write(path: Path, lines: list[str], newline: str = "\n", bom: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(((BOM if bom else "") + newline.join(lines) + newline).encode("utf-8"))


@pytest.fixture
def icdar_files(tmp_path: Path) -> tuple[Path, Path]:
    """Three images of hand-checked results.

    img_1 (BOM, CRLF): care "Hello", care "a,b" (comma inside), don't care. Results: a match for "Hello"
    (IoU 0.8), a detection 60% inside the don't-care region (discarded), a false positive.
    img_2: one care region; its result file is missing (no detections).
    img_3: no ground truth at all (empty file); one false positive.
    Totals: care GT 3, care detections 1 + 1 + 1 = 3, matched 1 -> P = R = H = 1/3.
    """
    gt_dir, res_dir = tmp_path / "gt", tmp_path / "res"
    write(
        gt_dir / "gt_img_1.txt",
        [
            format_ground_truth_line(quad(0, 0, 100, 20), "Hello"),
            format_ground_truth_line(quad(0, 50, 100, 70), "a,b"),
            format_ground_truth_line(quad(200, 0, 300, 100), "###"),
        ],
        newline="\r\n",
        bom=True,
    )
    write(gt_dir / "gt_img_2.txt", [format_ground_truth_line(quad(0, 0, 10, 10), "x")])
    write(gt_dir / "gt_img_3.txt", [])
    write(
        res_dir / "res_img_1.txt",
        [
            format_result_line(quad(0, 0, 80, 20), 0.9),
            format_result_line(quad(240, 0, 340, 100), 0.8),
            format_result_line(quad(500, 500, 510, 510), 0.35),
        ],
    )
    write(res_dir / "res_img_3.txt", [format_result_line(quad(0, 0, 5, 5), 0.95)])
    return gt_dir, res_dir


def run_cli(*argv: str) -> int:
    return main(list(argv))


def score_result_files_through_the_cli(res_dir: Path, gt_dir: Path, output: Path) -> int:
    return run_cli(
        "evaluate", "detector", "--predictions", str(res_dir), "--data", str(gt_dir), "--json", str(output)
    )


def test_result_files_scored_through_the_cli(icdar_files, tmp_path, capsys):
    gt_dir, res_dir = icdar_files
    output = tmp_path / "det.json"
    assert score_result_files_through_the_cli(res_dir, gt_dir, output) == 0
    report = json.loads(output.read_text())
    assert report["task"] == "scene-text-detection"
    assert report["protocol"] == "icdar2015-iou"
    assert (report["num_images"], report["num_gt_care"], report["num_det_care"], report["num_matched"]) == (
        3,
        3,
        3,
        1,
    )
    for key in ("precision", "recall", "hmean"):
        assert report[key] == pytest.approx(100 / 3)
    assert report["score_threshold"] == {"mode": "all", "threshold": None}
    assert report["end_to_end"] is None
    assert report["detection_order"] == "file"
    printed = capsys.readouterr().out
    assert "| Detection |         3 |                 3 |       1 |     33.33 |  33.33 |  33.33 |" in printed


def test_fixed_threshold_and_sweep(icdar_files, tmp_path):
    gt_dir, res_dir = icdar_files
    # Score >= 0.5 drops the 0.35 false positive: P = 1/2, R = 1/3.
    report = score_result_files(res_dir, gt_dir, score_threshold=0.5)
    assert (report.counts.num_det_care, report.counts.num_matched) == (2, 1)
    # The sweep: 0.3 keeps all (H 1/3); 0.4 .. 0.9 keep the 0.9 and 0.95 detections (P 1/2, R 1/3, H 0.4);
    # above 0.9 there is no threshold. The first best is 0.4.
    output = tmp_path / "sweep.json"
    argv = [
        "evaluate",
        "detector",
        "--predictions",
        str(res_dir),
        "--data",
        str(gt_dir),
        "--best-hmean-sweep",
    ]
    assert run_cli(*argv, "--json", str(output)) == 0
    sweep = json.loads(output.read_text())["score_threshold"]
    assert sweep["mode"] == "best-hmean-sweep"
    assert sweep["threshold"] == pytest.approx(0.4)
    assert list(sweep["per_threshold"]) == ["0.30", "0.40", "0.50", "0.60", "0.70", "0.80", "0.90"]
    assert sweep["per_threshold"]["0.30"]["hmean"] == pytest.approx(100 / 3)
    assert sweep["per_threshold"]["0.40"]["hmean"] == pytest.approx(40.0)


def test_score_order_matches_as_the_official_script_with_confidences(tmp_path, capsys):
    # Greedy matching depends on order: listed first, det [2,12] takes GT [0,10] and GT [4,14] stays unmatched;
    # by descending score det [0,10] (0.9) goes first and both GT are found (the official script with
    # CONFIDENCES=True gives recall 1.0 here, without it 0.5).
    gt_dir, res_dir = tmp_path / "gt", tmp_path / "res"
    write(
        gt_dir / "gt_img_1.txt",
        [format_ground_truth_line(quad(0, 0, 10, 1), "a"), format_ground_truth_line(quad(4, 0, 14, 1), "b")],
    )
    write(
        res_dir / "res_img_1.txt",
        [format_result_line(quad(2, 0, 12, 1), 0.5), format_result_line(quad(0, 0, 10, 1), 0.9)],
    )
    assert score_result_files(res_dir, gt_dir).counts.recall == 0.5
    output = tmp_path / "ordered.json"
    argv = ["evaluate", "detector", "--predictions", str(res_dir), "--data", str(gt_dir), "--order-by-score"]
    assert run_cli(*argv, "--json", str(output)) == 0
    report = json.loads(output.read_text())
    assert (report["recall"], report["detection_order"]) == (100.0, "score")


def test_end_to_end_from_result_files_with_transcriptions(icdar_files, tmp_path):
    gt_dir, _ = icdar_files
    res_dir = tmp_path / "e2e"
    write(
        res_dir / "res_img_1.txt",
        [
            format_ground_truth_line(quad(0, 0, 80, 20), "HELLO"),
            format_ground_truth_line(quad(0, 50, 100, 70), "ab"),
        ],
    )
    report = score_result_files(res_dir, gt_dir, end_to_end_protocol="36")
    assert (report.counts.num_matched, report.end_to_end.num_matched) == (2, 2)
    # Case-sensitive with punctuation: "HELLO" != "Hello" and "ab" != "a,b".
    report = score_result_files(res_dir, gt_dir, end_to_end_protocol="94")
    assert report.end_to_end.num_matched == 0
    assert report.to_dict()["end_to_end"]["protocol"] == "94"


def test_polygon_preset_reads_polygons(tmp_path):
    gt_dir, res_dir = tmp_path / "gt", tmp_path / "res"
    hexagon = [0, 0, 10, 0, 20, 5, 10, 10, 0, 10, -10, 5]
    write(gt_dir / "gt_poly.txt", [format_ground_truth_line(hexagon, "curve")])
    points = list(zip(hexagon[::2], hexagon[1::2], strict=True))
    counter_clockwise = [value for point in reversed(points) for value in point]
    write(res_dir / "res_poly.txt", [format_result_line(counter_clockwise, 0.7)])
    report = score_result_files(res_dir, gt_dir, num_points=None)
    assert report.counts.num_matched == 1
    # Read as ICDAR 2015 quadrilaterals, the 12-coordinate result line is malformed.
    with pytest.raises(ValueError, match=r"res_poly\.txt:1: expected 8 coordinates and an optional score"):
        score_result_files(res_dir, gt_dir, num_points=4)


def test_quadrilateral_errors_say_how_polygon_files_are_read(tmp_path, capsys):
    gt_dir, res_dir = tmp_path / "gt", tmp_path / "res"
    hexagon = [0, 0, 10, 0, 20, 5, 10, 10, 0, 10, -10, 5]
    write(gt_dir / "gt_poly.txt", [format_ground_truth_line(hexagon, "curve")])
    write(res_dir / "res_poly.txt", [format_result_line(hexagon, 0.7)])
    assert score_result_files_through_the_cli(res_dir, gt_dir, tmp_path / "o.json") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "expected 8 coordinates" in err
    assert "polygon files are read with --preset totaltext or ctw1500, num_points=None" in err
    argv = ["evaluate", "detector", "--predictions", str(res_dir), "--data", str(gt_dir)]
    assert run_cli(*argv, "--preset", "totaltext", "--json", str(tmp_path / "o.json")) == 0


@pytest.mark.parametrize(
    ("file_name", "line", "message"),
    [
        ("res_img_1.txt", "0,0,10,0,10,x,0,10", r"res_img_1\.txt:2: expected a finite number, found 'x'"),
        ("res_img_1.txt", "0,0,10,0,10", r"res_img_1\.txt:2: expected 8 coordinates"),
        ("res_img_9.txt", "0,0,10,0,10,10,0,10", r"result files without ground truth .*res_img_9\.txt"),
    ],
)
def test_malformed_result_files_are_named(icdar_files, tmp_path, capsys, file_name, line, message):
    gt_dir, res_dir = icdar_files
    path = res_dir / file_name
    write(path, [format_result_line(quad(0, 0, 5, 5)), line])
    with pytest.raises(ValueError, match=message):
        score_result_files(res_dir, gt_dir)
    assert score_result_files_through_the_cli(res_dir, gt_dir, tmp_path / "o.json") == 2
    assert "scenetext evaluate: error:" in capsys.readouterr().err


def test_empty_ground_truth_folder_is_an_error(tmp_path):
    (tmp_path / "gt").mkdir()
    (tmp_path / "res").mkdir()
    with pytest.raises(ValueError, match="no ground-truth file"):
        score_result_files(tmp_path / "res", tmp_path / "gt")


def stand_in_predict(images):
    """Finds the region at (4, 4)-(30, 20) in every image, plus a false positive with a low score."""
    return [TextRegions([quad(4, 4, 30, 20), quad(40, 2, 60, 12)], scores=[0.9, 0.1]) for _ in images]


@pytest.fixture
def icdar_folder(tmp_path: Path) -> Path:
    """Two 64x48 images written by the data writer: img_1 with regions A (found) and B (missed), img_2 with
    region C (found)."""
    folder = tmp_path / "ic15"
    samples = [
        {
            "polygons": [quad(4, 4, 30, 20), quad(34, 24, 60, 44)],
            "texts": ["A", "B"],
            "ignore": [False, False],
        },
        {"polygons": [quad(4, 4, 30, 20)], "texts": ["C"], "ignore": [False]},
    ]
    write_icdar_folder(({"image": PIL.Image.new("RGB", (64, 48)), **sample} for sample in samples), folder)
    return folder


def test_model_runner_with_a_stand_in_detector_and_pictures(icdar_folder, tmp_path):
    seen_sizes = []

    def predict(images):
        seen_sizes.extend(image.size for image in images)
        return stand_in_predict(images)

    pictures = tmp_path / "pictures"
    report = evaluate_detector(
        predict, icdar_folder, batch_size=2, visualize_dir=pictures, model_name="stand-in"
    )
    assert seen_sizes == [(64, 48), (64, 48)]
    assert (report.counts.num_gt_care, report.counts.num_det_care, report.counts.num_matched) == (3, 4, 2)
    assert report.source == {"model": "stand-in", "data": str(icdar_folder)}
    drawn = np.array(PIL.Image.open(pictures / "img_1.png"))
    # The found GT's thick green outline shows around the thin blue detection drawn on it.
    assert drawn[3, 17].tolist() == list(GT_MATCHED)
    assert drawn[4, 17].tolist() == list(DET_MATCHED)
    assert drawn[24, 47].tolist() == list(GT_MISSED)  # top edge of the missed GT
    assert drawn[7, 60].tolist() == list(DET_FALSE_POSITIVE)  # right edge of the false positive
    assert drawn[10, 10].tolist() == [0, 0, 0]  # inside: untouched
    # With a threshold of 0.5 the false positives go: P = 2/2.
    assert evaluate_detector(predict, icdar_folder, score_threshold=0.5).counts.precision == 1.0


def test_cli_runs_a_model_on_separate_image_and_annotation_folders(
    icdar_folder, tmp_path, monkeypatch, capsys
):
    annotations = tmp_path / "annotations"
    annotations.mkdir()
    for path in icdar_folder.glob("gt_*.txt"):
        path.rename(annotations / path.name)
    # Model loading is the processors' business; here a stand-in predictor checks the command's plumbing.
    monkeypatch.setattr(
        detector_module, "load_detector", lambda model, preset, device, dtype: stand_in_predict
    )
    output = tmp_path / "report.json"
    argv = ["evaluate", "detector", "--model", "tiny", "--data", str(icdar_folder), "--ground-truth"]
    assert run_cli(*argv, str(annotations), "--best-hmean-sweep", "--json", str(output)) == 0
    report = json.loads(output.read_text())
    # The sweep drops the 0.1-score false positives at every threshold: P 2/2, R 2/3.
    assert (report["precision"], report["recall"]) == (100.0, pytest.approx(200 / 3))
    assert report["preset"] == "icdar2015"
    assert report["score_threshold"]["threshold"] == pytest.approx(0.3)
    assert "best hmean over score thresholds 0.3, 0.4" in capsys.readouterr().out


def test_unusable_evaluation_data_is_an_error_naming_it(icdar_folder):
    (icdar_folder / "gt_img_2.txt").write_text("1,2,3\n", encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"unusable evaluation data: .*gt_img_2\.txt:1: expected 8 coordinates"
    ):
        evaluate_detector(stand_in_predict, icdar_folder)
    (icdar_folder / "img_2.png").unlink()
    with pytest.raises(ValueError, match=r"unusable evaluation data: .*gt_img_2\.txt:0: no image img_2"):
        evaluate_detector(stand_in_predict, icdar_folder)


def test_cli_end_to_end_with_a_tiny_tcm_model(icdar_folder, tmp_path):
    """The real loading path: a saved tiny TCM folder, loaded with trust_remote_code, on the ICDAR folder.

    Its random weights detect noise; the CLI's counts must equal those of running the model, the image
    processor's TD500 test scale and post-processing, and the metric by hand.
    """
    import torch

    from scenetext.evaluation.metrics.detection import match_image
    from scenetext.modeling.tcm.configuration_tcm import TcmConfig
    from scenetext.modeling.tcm.modeling_tcm import TcmForSceneTextDetection
    from scenetext.processors.tcm.image_processing_tcm import TEST_SIZES, TcmImageProcessor

    torch.manual_seed(0)
    model = TcmForSceneTextDetection(TcmConfig.from_preset("tiny")).eval()
    processor = TcmImageProcessor.from_preset("icdar2015")
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    (icdar_folder / "img_2.png").unlink()  # one image keeps the test fast
    (icdar_folder / "gt_img_2.txt").unlink()
    output = tmp_path / "report.json"
    argv = ["evaluate", "detector", "--model", str(tmp_path / "model"), "--data", str(icdar_folder)]
    assert (
        run_cli(*argv, "--preset", "td500", "--json", str(output), "--visualize", str(tmp_path / "vis")) == 0
    )
    report = json.loads(output.read_text())

    image = PIL.Image.open(icdar_folder / "img_1.png").convert("RGB")
    inputs = processor(image, size=TEST_SIZES["td500"])
    with torch.no_grad():
        outputs = model(pixel_values=inputs["pixel_values"])
    (result,) = processor.post_process_text_detection(
        outputs, target_sizes=inputs["original_sizes"], resized_sizes=inputs["resized_sizes"], preset="td500"
    )
    detections = TextRegions(
        [polygon.tolist() for polygon in result["polygons"]], scores=result["scores"].tolist()
    )
    expected = match_image(
        TextRegions([quad(4, 4, 30, 20), quad(34, 24, 60, 44)], ["A", "B"]), detections
    ).counts
    assert (report["num_images"], report["preset"]) == (1, "td500")
    assert (report["num_gt_care"], report["num_det_care"], report["num_matched"]) == (
        expected.num_gt_care,
        expected.num_det_care,
        expected.num_matched,
    )
    assert report["num_gt_care"] == 2 and report["num_det_care"] > 0
    assert (tmp_path / "vis" / "img_1.png").is_file()


def test_cli_finds_images_and_annotations_in_sub_folders_and_ignores_dont_care(tmp_path, monkeypatch, capsys):
    # The ICDAR2015 end-to-end layout: Imgs/ + Gts/ under the folder given. img_1's ### region lies under
    # the stand-in's low-score false positive, which then counts neither way.
    samples = [
        {
            "polygons": [quad(4, 4, 30, 20), quad(40, 2, 60, 12)],
            "texts": ["A", "###"],
            "ignore": [False, True],
        },
        {"polygons": [quad(4, 4, 30, 20)], "texts": ["C"], "ignore": [False]},
    ]
    root = tmp_path / "ic15-e2e"
    write_icdar_folder(
        ({"image": PIL.Image.new("RGB", (64, 48)), **sample} for sample in samples), root / "Imgs"
    )
    (root / "Gts").mkdir()
    for path in (root / "Imgs").glob("gt_*.txt"):
        path.rename(root / "Gts" / path.name)
    monkeypatch.setattr(
        detector_module, "load_detector", lambda model, preset, device, dtype: stand_in_predict
    )
    output = tmp_path / "report.json"
    assert run_cli("evaluate", "detector", "--model", "m", "--data", str(root), "--json", str(output)) == 0
    report = json.loads(output.read_text())
    # 2 care GT both found; 3 care detections (img_1's false positive is don't care): P 2/3, R 1.
    assert (report["precision"], report["recall"]) == (pytest.approx(200 / 3), 100.0)
    assert report["source"]["data"] == str(root)
