"""`scenetext train`: user errors are one line with exit status 2; a previous run is never overwritten silently."""

import json

from scenetext.cli.main import main

QUICK = [
    "batch_size=2",
    "data.train.num_samples=4",
    "data.eval.num_samples=2",
    "data.augment=false",
    "log_with=null",
    "eval_every=1000",
]


def _train(output_dir, *options):
    return main(
        ["train", "recognizer", "--config", "tiny-recognizer", "--output-dir", str(output_dir), *options]
    )


def test_a_config_typo_is_one_line_and_exit_status_2(tmp_path, capsys):
    assert _train(tmp_path, "data.augmentt=false") == 2
    error = capsys.readouterr().err
    assert error.startswith("scenetext train: error: ") and error.count("\n") == 1
    assert "unknown option data.augmentt: did you mean data.augment?" in error
    assert _train(tmp_path, "--max-steps", "-3") == 2
    assert "max_steps: expected an integer >= 1, got -3" in capsys.readouterr().err
    assert _train(tmp_path, "--resume", *QUICK) == 2
    assert f"--resume: no complete training state under {tmp_path / 'checkpoints'}" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_non_empty_output_folder_is_refused_unless_resuming_or_overwriting(tmp_path, capsys):
    (tmp_path / "train_log.jsonl").write_text('{"step": 1, "loss": 9.0}\n')
    (tmp_path / "checkpoints" / "step_00000099").mkdir(parents=True)
    (tmp_path / "notes.txt").write_text("mine")
    assert _train(tmp_path, "--max-steps", "1", *QUICK) == 2
    error = capsys.readouterr().err
    assert "is not empty (checkpoints, notes.txt, train_log.jsonl)" in error
    assert "--overwrite-output-dir" in error
    assert (tmp_path / "checkpoints" / "step_00000099").is_dir()
    assert _train(tmp_path, "--resume", "--overwrite-output-dir", *QUICK) == 2
    assert "exclude each other" in capsys.readouterr().err

    assert _train(tmp_path, "--max-steps", "1", "save_every=1", "--overwrite-output-dir", *QUICK) == 0
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [record["step"] for record in log if "loss" in record] == [1]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000001"]
    assert (tmp_path / "notes.txt").read_text() == "mine"  # not a run output: left alone
