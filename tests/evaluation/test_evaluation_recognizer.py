"""Recognizer evaluation: benchmark discovery on synthetic LMDB folders, runners and the CLI end to end."""

import json
from pathlib import Path

import PIL.Image
import pytest

from scenetext.cli.main import main
from scenetext.data.lmdb import write_lmdb
from scenetext.data.synthetic import render_word_sample
from scenetext.evaluation import recognizer as recognizer_module
from scenetext.evaluation.benchmarks import (
    STANDARD_BENCHMARKS,
    discover_benchmarks,
    expand_benchmark_names,
)
from scenetext.evaluation.recognizer import (
    evaluate_recognizer_on_benchmarks,
    evaluate_recognizer_on_folder,
    read_prediction_file,
    score_prediction_file,
)

# Each benchmark: (label, prediction) pairs. A sample's image width encodes its prediction for `fake_predict`.
BENCHMARKS = {
    "IIIT5k": [("Hello", "hello"), ("World", "w0rld"), ("OK", "ok")],  # 2/3 correct, NED 1/5 on one
    "SVT": [("Shop", "shop")],  # 1/1
    "CUTE80": [("café", "cafe"), ("x" * 26, "x")],  # the 26-character label is dropped -> 1/1
}
PREDICTIONS: dict[int, str] = {}


def _image_for(prediction: str) -> PIL.Image.Image:
    width = 10 + len(PREDICTIONS)
    PREDICTIONS[width] = prediction
    return PIL.Image.new("RGB", (width, 8), (len(PREDICTIONS) % 256, 0, 0))


def fake_predict(images: list[PIL.Image.Image]) -> tuple[list[str], list[float]]:
    return [PREDICTIONS[image.width] for image in images], [0.5] * len(images)


@pytest.fixture(scope="module")
def benchmark_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("benchmarks")
    for name, pairs in BENCHMARKS.items():
        # CUTE80 sits directly under the root, the others in the official <root>/test/<name> layout.
        folder = root / name if name == "CUTE80" else root / "test" / name
        write_lmdb(({"image": _image_for(prediction), "label": label} for label, prediction in pairs), folder)
    (root / "test" / "SVTP").mkdir()  # a folder without data.mdb is not a benchmark
    return root


def test_group_names_expand_in_table_order():
    assert expand_benchmark_names(["new", "SVT", "parseq"]) == [
        "ArT",
        "COCOv1.4",
        "Uber",
        "SVT",
        "IIIT5k",
        "IC13_1015",
        "IC15_2077",
        "SVTP",
        "CUTE80",
    ]
    assert expand_benchmark_names(None) == list(STANDARD_BENCHMARKS)


def test_discovery_finds_both_layouts_and_lists_the_missing(benchmark_root: Path):
    discovery = discover_benchmarks(benchmark_root)
    assert discovery.found == {
        "IIIT5k": benchmark_root / "test" / "IIIT5k",
        "SVT": benchmark_root / "test" / "SVT",
        "CUTE80": benchmark_root / "CUTE80",
    }
    assert discovery.missing == [name for name in STANDARD_BENCHMARKS if name not in discovery.found]
    assert "SVTP" in discovery.missing


def test_discovery_of_a_missing_root_is_an_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="benchmark root not found"):
        discover_benchmarks(tmp_path / "nowhere")


def test_benchmark_evaluation_scores_each_set(benchmark_root: Path):
    report = evaluate_recognizer_on_benchmarks(fake_predict, benchmark_root, ["parseq"], batch_size=2)
    assert list(report.datasets) == ["IIIT5k", "SVT", "CUTE80"]
    iiit5k = report.datasets["IIIT5k"]
    assert (iiit5k.num_samples, iiit5k.num_correct) == (3, 2)
    assert iiit5k.one_minus_ned == pytest.approx(1 - 0.2 / 3)
    assert (report.datasets["CUTE80"].num_samples, report.datasets["CUTE80"].num_correct) == (1, 1)
    assert report.missing == ["IC13_1015", "IC15_2077", "SVTP"]
    group = report.to_dict()["groups"]["parseq"]
    assert group["datasets"] == ["IIIT5k", "SVT", "CUTE80"]
    assert group["num_samples"] == 5
    assert group["accuracy"] == pytest.approx(100 * 4 / 5)  # sample-weighted, not the mean of 66.7/100/100
    assert group["mean_confidence"] == pytest.approx(50.0)


def test_no_benchmark_found_is_an_error(benchmark_root: Path):
    with pytest.raises(FileNotFoundError, match=r"none of the benchmarks ArT, COCOv1\.4, Uber"):
        evaluate_recognizer_on_benchmarks(fake_predict, benchmark_root, ["new"])


def test_benchmark_with_every_label_dropped_is_an_error(tmp_path: Path):
    write_lmdb([{"image": _image_for("x"), "label": "!!!"}], tmp_path / "SVT")
    with pytest.raises(ValueError, match=r"benchmark SVT .* no sample left"):
        evaluate_recognizer_on_benchmarks(fake_predict, tmp_path, ["SVT"])


def run_cli(*argv: str) -> int:
    return main(list(argv))


def test_cli_runs_a_model_on_the_benchmarks(benchmark_root, tmp_path, monkeypatch, capsys):
    # Model loading is the processors' business; here a stand-in predictor checks the command's plumbing.
    monkeypatch.setattr(recognizer_module, "load_recognizer", lambda model, device, dtype: fake_predict)
    output = tmp_path / "report.json"
    code = run_cli(
        "evaluate", "recognizer", "--model", "tiny", "--data", str(benchmark_root), "--json", str(output)
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| IIIT5k   |         3 |    66.67 |   93.33 |      50.00 |         4.00 |" in printed
    assert "Skipped, not found: IC13_857" in printed
    report = json.loads(output.read_text())
    assert report["source"] == {"model": "tiny", "data": str(benchmark_root)}
    assert report["num_samples"] == 5 and report["accuracy"] == pytest.approx(80.0)
    assert set(report["groups"]) == {"clip4str", "parseq-subset", "parseq"}


def test_cli_scores_a_prediction_file(tmp_path, capsys):
    predictions = tmp_path / "preds.jsonl"
    records = [
        {"prediction": "Hello", "label": "hello"},
        {"prediction": "hello", "label": "Hello!"},
        {"prediction": "wrld", "label": "world"},
    ]
    predictions.write_text("\n".join(json.dumps(record) for record in records) + "\n\n", encoding="utf-8")
    output = tmp_path / "out" / "report.json"
    assert run_cli("evaluate", "recognizer", "--predictions", str(predictions), "--json", str(output)) == 0
    report = json.loads(output.read_text())
    assert report["task"] == "scene-text-recognition"
    assert report["protocol"] == "36"
    assert (report["num_samples"], report["num_correct"]) == (3, 2)
    assert report["accuracy"] == pytest.approx(200 / 3)
    assert report["one_minus_ned"] == pytest.approx(100 * (1 - 0.2 / 3))
    assert report["datasets"]["preds"]["mean_confidence"] is None
    # Case-sensitive with punctuation, every word is wrong.
    assert run_cli("evaluate", "recognizer", "--predictions", str(predictions), "--protocol", "94",
                   "--json", str(output)) == 0  # fmt: skip
    assert json.loads(output.read_text())["num_correct"] == 0
    assert "| preds    |         3 |     0.00 |" in capsys.readouterr().out


def test_prediction_records_can_name_datasets_and_confidences(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"prediction": "a", "label": "a", "dataset": "SVT", "confidence": 0.5}\n'
        '{"prediction": "b", "label": "c", "dataset": "IIIT5k", "confidence": 1}\n',
        encoding="utf-8",
    )
    report = score_prediction_file(path)
    assert list(report.datasets) == ["SVT", "IIIT5k"]
    assert report.to_dict()["groups"]["parseq"]["accuracy"] == pytest.approx(50.0)
    assert report.datasets["IIIT5k"].mean_confidence == 1.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"prediction": "a", "label": "a"}\n{"prediction": "a", label}\n', r"p\.jsonl:2: not valid JSON"),
        ('{"prediction": "a", "label": "a"}\n\n["a", "a"]\n', r"p\.jsonl:3: expected a JSON object"),
        ('{"prediction": 3, "label": "a"}\n', r"p\.jsonl:1: expected a string 'prediction', got 3"),
        ('{"prediction": "a"}\n', r"p\.jsonl:1: expected a string 'label', got None"),
        ('{"prediction": "a", "label": "a", "confidence": "high"}\n', r"p\.jsonl:1: expected a number"),
        ("\n\n", r"p\.jsonl: no prediction records"),
    ],
)
def test_malformed_prediction_files_name_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "p.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        read_prediction_file(path)


def test_cli_reports_errors_without_a_traceback(tmp_path, capsys):
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"prediction": "a", "label": "a", "confidence": 0.5}\n{"prediction": "b", "label": "b"}\n'
    )
    assert (
        run_cli("evaluate", "recognizer", "--predictions", str(path), "--json", str(tmp_path / "o.json")) == 2
    )
    assert "'confidence' on 1 of 2 records" in capsys.readouterr().err
    assert run_cli("evaluate", "recognizer", "--model", "m", "--json", str(tmp_path / "o.json")) == 2
    assert "--model needs --data" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()


def test_cli_end_to_end_with_a_tiny_clip4str_model(benchmark_root, tmp_path):
    """The real loading path: a saved tiny CLIP4STR folder, loaded with trust_remote_code, on the LMDB root.

    Its random weights read noise; the CLI's numbers must equal those of running the processor and model by
    hand on the same crops and scoring them with the metric.
    """
    import torch

    from scenetext.data.lmdb import lmdb_recognition_dataset
    from scenetext.evaluation.metrics.recognition import protocol_charset, score_recognition
    from scenetext.modeling.clip4str.configuration_clip4str import Clip4StrConfig
    from scenetext.modeling.clip4str.modeling_clip4str import Clip4StrForSceneTextRecognition
    from scenetext.processors.clip4str.image_processing_clip4str import Clip4StrImageProcessor
    from scenetext.processors.clip4str.processing_clip4str import Clip4StrProcessor
    from scenetext.processors.clip4str.tokenization_clip4str import Clip4StrTokenizer

    torch.manual_seed(0)
    config = Clip4StrConfig.from_preset("tiny")
    model = Clip4StrForSceneTextRecognition(config).eval()
    processor = Clip4StrProcessor(
        Clip4StrImageProcessor(size=config.vision_config.image_size), Clip4StrTokenizer()
    )
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    output = tmp_path / "report.json"
    argv = ["evaluate", "recognizer", "--model", str(tmp_path / "model"), "--data", str(benchmark_root)]
    assert run_cli(*argv, "--benchmarks", "IIIT5k", "--batch-size", "2", "--json", str(output)) == 0
    report = json.loads(output.read_text())

    samples = list(lmdb_recognition_dataset(benchmark_root / "test" / "IIIT5k", protocol_charset("36")))
    images = [sample["image"] for sample in samples]
    with torch.no_grad():
        logits = model(pixel_values=processor(images=images, return_tensors="pt")["pixel_values"]).logits
    decoded = processor.batch_decode(logits)
    labels = [label for label, _ in BENCHMARKS["IIIT5k"]]
    expected = score_recognition(decoded["generated_text"], labels, confidences=decoded["scores"])
    scores = report["datasets"]["IIIT5k"]
    assert scores["num_samples"] == expected.num_samples == 3
    assert scores["accuracy"] == pytest.approx(100 * expected.accuracy)
    assert scores["one_minus_ned"] == pytest.approx(100 * expected.one_minus_ned)
    assert scores["mean_confidence"] == pytest.approx(100 * expected.mean_confidence, rel=1e-5)


def test_int8_evaluation_quantizes_the_linear_layers_on_the_cpu(tmp_path):
    import torch

    from scenetext.evaluation.recognizer import load_recognizer
    from scenetext.modeling.clip4str.configuration_clip4str import Clip4StrConfig
    from scenetext.modeling.clip4str.modeling_clip4str import Clip4StrForSceneTextRecognition
    from scenetext.modeling.devices import quantize_linear_layers
    from scenetext.processors.clip4str.image_processing_clip4str import Clip4StrImageProcessor
    from scenetext.processors.clip4str.processing_clip4str import Clip4StrProcessor
    from scenetext.processors.clip4str.tokenization_clip4str import Clip4StrTokenizer

    torch.manual_seed(0)
    config = Clip4StrConfig.from_preset("tiny")
    model = Clip4StrForSceneTextRecognition(config).eval()
    processor = Clip4StrProcessor(
        Clip4StrImageProcessor(size=config.vision_config.image_size), Clip4StrTokenizer()
    )
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    images = [PIL.Image.new("RGB", (40 + 10 * i, 16), (40 * i, 200, 90)) for i in range(3)]

    texts, scores = load_recognizer(tmp_path, device="cpu", dtype="int8")(images)
    quantized = quantize_linear_layers(model, torch.device("cpu"))
    assert not any(type(module) is torch.nn.Linear for module in quantized.modules())
    with torch.no_grad():
        logits = quantized(pixel_values=processor(images=images, return_tensors="pt")["pixel_values"]).logits
    expected = processor.batch_decode(logits)
    assert texts == expected["generated_text"]
    assert scores == pytest.approx(expected["scores"])
    with pytest.raises(ValueError, match="runs on the CPU"):
        quantize_linear_layers(model, torch.device("cuda"))


def test_the_report_counts_corrupt_records_by_reason_and_labels_the_protocol_removed(
    tmp_path, monkeypatch, capsys
):
    import lmdb

    monkeypatch.setattr(recognizer_module, "load_recognizer", lambda model, device, dtype: fake_predict)
    folder = tmp_path / "SVT"
    pairs = [("Shop", "shop"), ("x" * 26, "x"), ("Bar", "bar"), ("Inn", "inn"), ("Cafe", "cafe")]
    write_lmdb(({"image": _image_for(prediction), "label": label} for label, prediction in pairs), folder)
    with (
        lmdb.open(str(folder), map_size=1 << 24) as environment,
        environment.begin(write=True) as transaction,
    ):
        transaction.put(b"image-000000003", b"broken")  # not an image
        transaction.put(b"label-000000004", b"\xff\xfe")  # not UTF-8
        transaction.delete(b"image-000000005")  # missing key
    output = tmp_path / "report.json"
    argv = ["evaluate", "recognizer", "--model", "m", "--data", str(tmp_path), "--benchmarks", "SVT"]
    assert main([*argv, "--device", "cpu", "--json", str(output)]) == 0
    svt = json.loads(output.read_text())["datasets"]["SVT"]
    assert (svt["num_samples"], svt["num_dropped"], svt["num_skipped"]) == (1, 1, 3)
    assert svt["skipped_by_reason"] == {
        "label is not UTF-8": 1,
        "missing key image-N": 1,
        "not an image file": 1,
    }
    assert "SVT: 1 labels removed by the protocol, 3 corrupt records" in capsys.readouterr().out


def labelled_crop_folder(folder: Path, wrong: set[int] = frozenset(), count: int = 4):
    """Synthetic crops with a labels.txt, and a predictor that reads each crop's label (wrongly for the
    indices in `wrong`) by recognising its pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    readings, lines = {}, []
    for index in range(count):
        sample = render_word_sample(index, seed=11)
        sample["image"].save(folder / f"crop_{index}.png")
        lines.append(f"crop_{index}.png\t{sample['label']}\n")
        readings[sample["image"].tobytes()] = "wrong" if index in wrong else sample["label"].lower()
    (folder / "labels.txt").write_text("".join(lines), encoding="utf-8")

    def predict(images):
        return [readings[image.tobytes()] for image in images], None

    return predict


def test_folder_of_labelled_crops_is_scored_as_one_dataset(tmp_path):
    predict = labelled_crop_folder(tmp_path / "mine", wrong={2})
    report = evaluate_recognizer_on_folder(predict, tmp_path / "mine", batch_size=3, model_name="m")
    scores = report.datasets["mine"]
    assert (scores.num_samples, scores.num_correct, scores.num_dropped) == (4, 3, 0)
    assert report.source == {"model": "m", "data": str(tmp_path / "mine")}


def test_folder_evaluation_stops_at_an_undecodable_crop(tmp_path):
    predict = labelled_crop_folder(tmp_path)
    (tmp_path / "crop_1.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"unusable evaluation data: .*labels.txt:2: .*crop_1.png"):
        evaluate_recognizer_on_folder(predict, tmp_path)


def test_cli_reads_a_folder_with_labels_txt(tmp_path, monkeypatch, capsys):
    predict = labelled_crop_folder(tmp_path / "crops", wrong={0, 1})
    monkeypatch.setattr(recognizer_module, "load_recognizer", lambda model, device, dtype: predict)
    output = tmp_path / "report.json"
    argv = [
        "evaluate",
        "recognizer",
        "--model",
        "m",
        "--data",
        str(tmp_path / "crops"),
        "--json",
        str(output),
    ]
    assert run_cli(*argv) == 0
    report = json.loads(output.read_text())
    assert report["num_samples"] == 4 and report["accuracy"] == pytest.approx(50.0)
    assert "| crops" in capsys.readouterr().out
    assert run_cli(*argv, "--benchmarks", "SVT") == 2
    assert "is a folder of labelled crops" in capsys.readouterr().err
