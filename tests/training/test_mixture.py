import pytest

from scenetext.training.config import load_config
from scenetext.training.recognition import RecognitionTask

MIXTURE = [
    "data.train={source: mix, weights: [3, 1], sources: [{source: synthetic, num_samples: 400, seed: 1}, "
    "{source: synthetic, num_samples: 40, seed: 2}]}",
]


def test_a_mixture_draws_from_every_source_by_weight_and_repeats_the_small_one():
    config = load_config("tiny-recognizer", MIXTURE)
    task = RecognitionTask(config)
    origins = [sample["source"].split(":")[0] for sample in task.train_dataset()]
    first, second = origins.count("synthetic-words-seed1"), origins.count("synthetic-words-seed2")
    # Runs until the large source is used up once; the small one starts over meanwhile (~400/3 draws of 40).
    assert first == 400
    assert 90 <= second <= 180


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.train={source: mix, sources: []}", "non-empty list"),
        (
            "data.train={source: mix, sources: [{source: synthetic, num_samples: 4}], weights: [0]}",
            "positive numbers",
        ),
        ("data.train={source: mix, sources: [{source: synthetic, num_samples: 4}], ratio: 1}", "not ratio"),
        ("data.train={source: mix, sources: [{source: nowhere}]}", r"sources\[0\]\.source"),
    ],
)
def test_mixture_config_errors_name_the_key(override, message):
    with pytest.raises(ValueError, match=message):
        load_config("tiny-recognizer", [override])


def test_lists_of_folders_are_accepted_for_tuple_options():
    config = load_config("tiny-recognizer", ["data.train.word={font_dirs: [a, b], background_dirs: [c]}"])
    assert config.data["train"]["word"]["font_dirs"] == ("a", "b")


def test_a_labelled_folder_is_a_training_source(tmp_path):
    from scenetext.data.synthetic import render_word_sample

    lines = []
    for index in range(3):
        sample = render_word_sample(index, seed=5)
        sample["image"].save(tmp_path / f"{index}.png")
        lines.append(f"{index}.png\t{sample['label']}")
    (tmp_path / "labels.txt").write_text("\n".join(lines) + "\n")
    config = load_config("tiny-recognizer", [f"data.train={{source: folder, folder: {tmp_path}}}"])
    samples = list(RecognitionTask(config).train_dataset())
    assert [sample["source"] for sample in samples] == [
        f"{tmp_path / 'labels.txt'}:{line}" for line in (1, 2, 3)
    ]
