"""Every command reports a user's mistake as one line `scenetext CMD: error: ...` with exit status 2, and an
unexpected failure as one line plus a hint with exit status 1 (the traceback only with --debug)."""

import argparse
import subprocess
import sys
from importlib.metadata import version

import pytest
from PIL import Image

from scenetext.assets import DEFAULTS_DIR
from scenetext.cli import main as cli_main
from scenetext.cli import ocr as ocr_cli
from scenetext.cli.main import main


def _one_error_line(capsys, command: str) -> str:
    """The captured stderr, checked to be the single line of a usage error of `command`."""
    err = capsys.readouterr().err
    assert err.startswith(f"scenetext {command}: error: ") and err.count("\n") == 1, err
    return err


def test_version_prints_the_installed_package_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"scenetext {version('scenetext')}\n"


def test_building_the_parser_imports_neither_torch_nor_transformers():
    code = (
        "import sys; from scenetext.cli.main import build_parser; build_parser(); "
        "print(sorted(name for name in ('torch', 'transformers', 'datasets', 'PIL') if name in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_startup_benchmark_runs_every_command_once(tmp_path):
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "cli_startup.py"
    benchmark = runpy.run_path(str(script))
    assert benchmark["median_wall_time"](["--version"], repeats=1) > 0
    with pytest.raises(subprocess.CalledProcessError):
        benchmark["median_wall_time"](["no-such-command"], repeats=1)


@pytest.fixture
def failing_command(monkeypatch):
    """`scenetext ocr` replaced by a command that fails with an error no user caused."""

    def add_parser(subparsers):
        parser = subparsers.add_parser("ocr")

        def fail(args: argparse.Namespace) -> int:
            raise RuntimeError("the model produced NaN\nsecond line")

        parser.set_defaults(func=fail)

    monkeypatch.setattr(cli_main, "COMMAND_MODULES", ("scenetext.cli.ocr",))
    monkeypatch.setattr(ocr_cli, "add_parser", add_parser)


def test_an_unexpected_failure_is_one_line_and_a_hint_with_exit_status_1(
    failing_command, capsys, monkeypatch
):
    monkeypatch.delenv("SCENETEXT_DEBUG", raising=False)
    assert main(["ocr"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "scenetext ocr: failed: RuntimeError: the model produced NaN second line",
        "hint: rerun with --debug (or SCENETEXT_DEBUG=1) to see where it failed; if your inputs look right, "
        "please report it with that output",
    ]


@pytest.mark.parametrize("how", ["flag after the command", "flag first", "environment"])
def test_debug_shows_the_traceback(failing_command, capsys, monkeypatch, how):
    monkeypatch.delenv("SCENETEXT_DEBUG", raising=False)
    argv = {"flag after the command": ["ocr", "--debug"], "flag first": ["--debug", "ocr"]}.get(how, ["ocr"])
    if how == "environment":
        monkeypatch.setenv("SCENETEXT_DEBUG", "1")
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and 'raise RuntimeError("the model produced NaN' in err
    assert err.rstrip().endswith("scenetext ocr: failed: RuntimeError: the model produced NaN second line")


# --- train -----------------------------------------------------------------------------------------------


def test_train_missing_config_file_and_wrong_value_type(tmp_path, capsys):
    assert main(["train", "recognizer", "--config", str(tmp_path / "mine.yaml")]) == 2
    assert str(tmp_path / "mine.yaml") in _one_error_line(capsys, "train")
    argv = ["train", "recognizer", "--config", "tiny-recognizer", "--output-dir", str(tmp_path / "run")]
    assert main([*argv, "batch_size=many"]) == 2
    assert "batch_size" in _one_error_line(capsys, "train")


# --- convert ---------------------------------------------------------------------------------------------


def test_convert_missing_checkpoint(tmp_path, capsys):
    assert main(["convert", "tcm", str(tmp_path / "tcm.pth"), str(tmp_path / "out")]) == 2
    err = _one_error_line(capsys, "convert tcm")
    assert f"checkpoint {tmp_path / 'tcm.pth'} does not exist: expected a file" in err
    assert not (tmp_path / "out").exists()


def test_convert_refuses_a_non_empty_output_folder_and_a_file_that_is_no_checkpoint(tmp_path, capsys):
    source = tmp_path / "model.ckpt"
    source.write_bytes(b"these bytes are no checkpoint")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["convert", "clip4str", str(source), str(out)]) == 2
    assert "is not empty: pass --overwrite-output-dir" in _one_error_line(capsys, "convert clip4str")
    assert main(["convert", "clip4str", str(source), str(out), "--overwrite-output-dir"]) == 2
    assert str(source) in _one_error_line(capsys, "convert clip4str")
    assert [path.name for path in out.iterdir()] == ["notes.txt"]


# --- evaluate --------------------------------------------------------------------------------------------


def test_evaluate_missing_prediction_file_and_malformed_record(tmp_path, capsys):
    missing = tmp_path / "predictions.jsonl"
    assert main(["evaluate", "recognizer", "--predictions", str(missing), "--json", str(tmp_path / "r")]) == 2
    assert str(missing) in _one_error_line(capsys, "evaluate")
    missing.write_text('{"prediction": "a"}\n')
    assert main(["evaluate", "recognizer", "--predictions", str(missing), "--json", str(tmp_path / "r")]) == 2
    assert "label" in _one_error_line(capsys, "evaluate")
    assert not (tmp_path / "r").exists()


def test_evaluate_a_model_folder_of_the_wrong_type_is_refused_before_loading(tmp_path, capsys):
    argv = ["evaluate", "detector", "--model", str(DEFAULTS_DIR / "recognizer"), "--data", str(tmp_path)]
    assert main([*argv, "--device", "cpu"]) == 2
    err = _one_error_line(capsys, "evaluate")
    assert "holds a 'clip4str' model, expected a 'tcm' detector" in err


# --- ocr -------------------------------------------------------------------------------------------------


def _scene(path):
    Image.new("RGB", (48, 32), "white").save(path)
    return path


def test_ocr_missing_input_empty_folder_and_folder_without_images(tmp_path, capsys):
    assert main(["ocr", str(tmp_path / "nothing.png")]) == 2
    assert "nothing.png does not exist" in _one_error_line(capsys, "ocr")
    folder = tmp_path / "photos"
    folder.mkdir()
    assert main(["ocr", str(folder)]) == 2
    assert f"no image files in {folder}" in _one_error_line(capsys, "ocr")
    (folder / "README.md").write_text("# my photos\n")
    (folder / "words.json").write_text("[]\n")
    assert main(["ocr", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"scenetext ocr: error: no image files in {folder} (looked for {err.split('looked for ')[1].strip()}"
    ]


def test_ocr_refuses_to_write_over_an_input(tmp_path, capsys):
    photo = _scene(tmp_path / "photo.png")
    before = photo.read_bytes()
    assert main(["ocr", str(tmp_path), "--out", str(tmp_path)]) == 2
    err = _one_error_line(capsys, "ocr")
    assert f"would write photo.png over the input {photo}: choose another folder" in err
    assert photo.read_bytes() == before and not (tmp_path / "photo.json").exists()


def test_ocr_names_both_model_types_when_a_folder_has_the_wrong_one(tmp_path, capsys):
    image = _scene(tmp_path / "scene.png")
    argv = ["ocr", str(image), "--out", str(tmp_path / "out"), "--device", "cpu"]
    argv += ["--detector", str(DEFAULTS_DIR / "detector"), "--recognizer", str(DEFAULTS_DIR / "detector")]
    assert main(argv) == 2
    err = _one_error_line(capsys, "ocr")
    assert f"{DEFAULTS_DIR / 'detector'} holds a 'tcm' model, expected a 'clip4str' recognizer" in err


def test_ocr_unknown_device_is_a_usage_error(tmp_path, capsys):
    image = _scene(tmp_path / "scene.png")
    assert main(["ocr", str(image), "--out", str(tmp_path / "out"), "--device", "tpu"]) == 2
    assert "device 'tpu'" in _one_error_line(capsys, "ocr")


# --- demo ------------------------------------------------------------------------------------------------


def test_demo_missing_checkpoints_and_unknown_device(tmp_path, monkeypatch, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--device", "tpu"]) == 2
    assert "device 'tpu'" in _one_error_line(capsys, "demo")
    monkeypatch.setattr(ocr_cli, "DEFAULTS_DIR", tmp_path / "defaults")
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 2
    assert "the demo needs the embedded checkpoints" in _one_error_line(capsys, "demo")
    assert not (tmp_path / "demo").exists()


# --- push ------------------------------------------------------------------------------------------------


def test_push_missing_folder_and_invalid_repo_id(tmp_path, capsys):
    assert main(["push", str(tmp_path / "model"), "user/model", "--dry-run", str(tmp_path / "o")]) == 2
    assert str(tmp_path / "model") in _one_error_line(capsys, "push")
    assert (
        main(["push", str(DEFAULTS_DIR / "recognizer"), "not a repo id", "--dry-run", str(tmp_path / "o")])
        == 2
    )
    assert "not a repo id" in _one_error_line(capsys, "push")


def test_the_protocol_choices_are_the_metrics_protocols():
    from scenetext.cli.evaluate import PROTOCOLS
    from scenetext.evaluation.metrics.recognition import FULL_PROTOCOL, PROTOCOL_CHARSETS

    assert (*PROTOCOL_CHARSETS, FULL_PROTOCOL) == PROTOCOLS
