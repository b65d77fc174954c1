"""Training configs are validated when loaded: every key at any depth, types and ranges."""

import pytest

from scenetext.training.config import CONFIGS_DIR, load_config


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml")))
def test_every_shipped_config_is_valid(name):
    config = load_config(name, ["output_dir=/unused"])
    assert config.task in ("recognizer", "detector")


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.augmentt=false", r"unknown option data\.augmentt: did you mean data\.augment\?"),
        (
            "model.config.max_label_lenght=12",
            r"unknown option model\.config\.max_label_lenght: did you mean model\.config\.max_label_length\?",
        ),
        (
            "model.config.vision_config.hiden_size=8",
            r"unknown option model\.config\.vision_config\.hiden_size: did you mean .*\.hidden_size\?",
        ),
        ("data.train.word.font_sise=[8,9]", r"unknown option data\.train\.word\.font_sise"),
        (
            "data.eval.num_sample=3",
            r"unknown option data\.eval\.num_sample: did you mean data\.eval\.num_samples",
        ),
        (
            "model.zzz=1",
            r"unknown option model\.zzz: expected one of charset_from_data, charset_scan_limit, config, from_clip",
        ),
        ("max_step=3", r"unknown option max_step: did you mean max_steps\?"),
        ("max_steps=twenty", r"max_steps: expected an integer, got 'twenty'"),
        ("max_steps=-5", r"max_steps: expected an integer >= 1, got -5"),
        ("batch_size=2.5", r"batch_size: expected an integer, got 2\.5"),
        ("cpu=3", r"cpu: expected true or false, got 3"),
        ("optimizer.learning_rate=0", r"optimizer\.learning_rate: expected a number > 0, got 0\.0"),
        ("optimizer.learning_rate=fast", r"optimizer\.learning_rate: expected a number, got 'fast'"),
        ("optimizer.betas=[0.9]", r"optimizer\.betas: expected a list of 2 numbers"),
        ("optimizer.schedule=cosine", r"optimizer\.schedule: expected one_cycle, poly or constant"),
        ("max_grad_norm=-1", r"max_grad_norm: expected a number > 0 or null"),
        ("data.train.source=nowhere", r"data\.train\.source: expected one of synthetic, lmdb, hub"),
        ("data.eval_batch_size=many", r"data\.eval_batch_size: expected an integer"),
    ],
)
def test_a_bad_recognizer_option_is_named_with_its_full_key(override, message):
    with pytest.raises(ValueError, match=message) as error:
        load_config("tiny-recognizer", [override])
    assert "tiny-recognizer.yaml" in str(error.value)


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "data.augment.crop_sise=[8,8]",
            r"unknown option data\.augment\.crop_sise: did you mean .*crop_size\?",
        ),
        ("processor.sise=3", r"unknown option processor\.sise: did you mean processor\.size\?"),
        ("model.config.widht=3", r"unknown option model\.config\.widht: did you mean model\.config\.width\?"),
        ("data.train.scene.num_word=[1,2]", r"unknown option data\.train\.scene\.num_word"),
        ("data.train.source=lmdb", r"data\.train\.source: expected one of synthetic, icdar, jsonl, hub"),
    ],
)
def test_a_bad_detector_option_is_named_with_its_full_key(override, message):
    with pytest.raises(ValueError, match=message):
        load_config("tiny-detector", [override])


def test_numbers_written_as_yaml_strings_are_read_as_numbers(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("task: recognizer\noutput_dir: out\noptimizer: {learning_rate: 1e-3, eps: 1e-8}\n")
    config = load_config(path)
    assert (config.optimizer.learning_rate, config.optimizer.eps) == (1e-3, 1e-8)
    assert load_config(path, ["optimizer.betas=[0.5, 0.75]"]).optimizer.betas == (0.5, 0.75)


def test_a_missing_required_option_is_named(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("task: detector\n")
    with pytest.raises(
        ValueError, match=r"run\.yaml: .*missing 1 required positional argument: .output_dir."
    ):
        load_config(path)
