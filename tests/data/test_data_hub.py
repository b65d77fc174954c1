import io

import datasets
import numpy as np
import pytest
from datasets.distributed import split_dataset_by_node

from scenetext.data.corrupt_records import CorruptRecordLog
from scenetext.data.hub import hub_detection_dataset, hub_recognition_dataset
from scenetext.data.synthetic import SyntheticSceneConfig, render_scene_sample, render_word_sample

LOWERCASE = "0123456789abcdefghijklmnopqrstuvwxyz"


def _encoded(image) -> dict:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


@pytest.fixture
def word_dataset() -> tuple[datasets.Dataset, list[dict]]:
    words = [render_word_sample(index, seed=8) for index in range(6)]
    labels = [word["label"] for word in words]
    labels[2] = "with space"
    images = [_encoded(word["image"]) for word in words]
    images[4] = {"bytes": b"\x89PNG but not really", "path": None}
    features = datasets.Features({"picture": datasets.Image(), "transcript": datasets.Value("string")})
    return datasets.Dataset.from_dict({"picture": images, "transcript": labels}, features=features), words


@pytest.mark.parametrize("storage", ["in_memory", "save_to_disk", "parquet_folder"])
def test_recognition_round_trip_from_local_datasets(tmp_path, word_dataset, storage):
    dataset, words = word_dataset
    if storage == "save_to_disk":
        dataset.save_to_disk(str(tmp_path / "saved"))
        dataset = tmp_path / "saved"
    elif storage == "parquet_folder":
        dataset.to_parquet(str(tmp_path / "data" / "train.parquet"))
        dataset = tmp_path / "data"
    log = CorruptRecordLog()
    stream = hub_recognition_dataset(
        dataset, image_column="picture", text_column="transcript", charset=LOWERCASE, corrupt_records=log
    )
    samples = list(stream)
    expected = [0, 1, 2, 3, 5]
    assert [sample["label"] for sample in samples] == [
        "withspace" if index == 2 else words[index]["label"].lower() for index in expected
    ]
    for sample, index in zip(samples, expected, strict=True):
        np.testing.assert_array_equal(np.asarray(sample["image"]), np.asarray(words[index]["image"]))
    assert log.count() == 1
    assert "not an image file" in log.records()[0].reason
    assert log.records()[0].location.startswith(str(dataset) if storage != "in_memory" else "Dataset(")


def test_recognition_labels_kept_raw_without_charset_and_split_between_nodes(word_dataset):
    dataset, _ = word_dataset
    stream = hub_recognition_dataset(dataset, image_column="picture", text_column="transcript")
    parts = [[s["label"] for s in split_dataset_by_node(stream, rank, 2)] for rank in range(2)]
    assert set(parts[0]).isdisjoint(parts[1])
    assert "with space" in parts[0] + parts[1]
    assert len(parts[0] + parts[1]) == 5


def test_detection_from_a_local_dataset_with_point_pairs(tmp_path):
    config = SyntheticSceneConfig(image_size=(96, 128), num_words=(2, 3), font_size=(12, 20))
    scenes = [render_scene_sample(index, seed=2, config=config) for index in range(3)]
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "boxes": datasets.List(datasets.List(datasets.List(datasets.Value("float64")))),
            "words": datasets.List(datasets.Value("string")),
        }
    )
    rows = {
        "image": [_encoded(scene["image"]) for scene in scenes],
        "boxes": [[np.reshape(p, (-1, 2)).tolist() for p in scene["polygons"]] for scene in scenes],
        "words": [scene["texts"] for scene in scenes],
    }
    rows["words"][1] = ["###", *rows["words"][1][1:]]
    # A fourth row whose texts do not match its polygons is corrupt.
    rows["image"].append(rows["image"][0])
    rows["boxes"].append(rows["boxes"][0])
    rows["words"].append(["only one", "and two", "and three", "too many"])
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp_path / "scenes"))
    log = CorruptRecordLog()
    samples = list(
        hub_detection_dataset(
            tmp_path / "scenes", polygons_column="boxes", texts_column="words", corrupt_records=log
        )
    )
    assert [sample["polygons"] for sample in samples] == [scene["polygons"] for scene in scenes]
    assert samples[1]["ignore"] == [True] + [False] * (len(scenes[1]["texts"]) - 1)
    assert samples[0]["texts"] == scenes[0]["texts"]
    assert log.count() == 1
    assert "one entry per region" in log.records()[0].reason
    assert log.records()[0].location == f"{tmp_path / 'scenes'}/train/shard3:0"


def test_missing_or_wrong_columns_are_named(word_dataset):
    dataset, _ = word_dataset
    with pytest.raises(ValueError, match="text column 'text' not in the dataset; its columns are"):
        hub_recognition_dataset(dataset, image_column="picture")
    with pytest.raises(ValueError, match=r"image column 'transcript' must be a datasets\.Image feature"):
        hub_recognition_dataset(dataset, image_column="transcript", text_column="transcript")
    with pytest.raises(TypeError, match="got int"):
        hub_recognition_dataset(42)
