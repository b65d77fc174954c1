import json

import numpy as np
import pytest
from datasets.distributed import split_dataset_by_node
from PIL import Image

from scenetext.data.corrupt_records import CorruptRecordLog
from scenetext.data.jsonl import jsonl_detection_dataset, write_jsonl_detection
from scenetext.data.synthetic import SyntheticSceneConfig, render_scene_sample

SMALL_SCENES = SyntheticSceneConfig(image_size=(96, 128), num_words=(1, 3), font_size=(12, 24))


def test_synthetic_scenes_round_trip_with_exact_coordinates(tmp_path):
    scenes = [render_scene_sample(index, seed=11, config=SMALL_SCENES) for index in range(3)]
    path = tmp_path / "train.jsonl"
    assert write_jsonl_detection(scenes, path) == 3
    samples = list(jsonl_detection_dataset(path))
    assert [sample["source"] for sample in samples] == [f"{path}:{line}" for line in (1, 2, 3)]
    for sample, scene in zip(samples, scenes, strict=True):
        np.testing.assert_array_equal(np.asarray(sample["image"]), np.asarray(scene["image"]))
        assert sample["polygons"] == scene["polygons"]  # float64 all the way: no rounding
        assert sample["texts"] == scene["texts"]
        assert sample["ignore"] == scene["ignore"]


def test_point_pairs_and_implicit_dont_care(tmp_path):
    Image.new("RGB", (60, 40)).save(tmp_path / "a.png")
    record = {
        "image": "a.png",
        "polygons": [[[0, 0], [30, 0], [45, 5], [30, 10], [0, 10]], [1, 20, 9, 20, 9, 30, 1, 30]],
        "texts": ["curved", "###"],
    }
    (tmp_path / "gt.jsonl").write_text(json.dumps(record) + "\n\n")
    (sample,) = jsonl_detection_dataset(tmp_path / "gt.jsonl")
    assert sample["polygons"] == [[0, 0, 30, 0, 45, 5, 30, 10, 0, 10], [1, 20, 9, 20, 9, 30, 1, 30]]
    assert sample["ignore"] == [False, True]


def test_corrupt_lines_are_skipped_counted_and_located(tmp_path):
    Image.new("RGB", (20, 20)).save(tmp_path / "ok.png")
    (tmp_path / "broken.png").write_bytes(b"GIF89a...")
    good = {"image": "ok.png", "polygons": [[0, 0, 5, 0, 5, 5, 0, 5]], "texts": ["a"]}
    lines = [
        json.dumps(good),
        '{"image": "ok.png", "polygons": [',
        json.dumps({"image": "ok.png", "texts": []}),
        json.dumps({**good, "texts": ["a", "b"]}),
        json.dumps({**good, "image": "absent.png"}),
        json.dumps({**good, "image": "broken.png"}),
        json.dumps({**good, "polygons": [[0, 0, 5, 0]]}),
        json.dumps({**good, "texts": ["z"]}),
    ]
    path = tmp_path / "gt.jsonl"
    path.write_text("\n".join(lines) + "\n")
    log = CorruptRecordLog()
    samples = list(jsonl_detection_dataset(path, lines_per_shard=3, corrupt_records=log))
    assert [sample["texts"] for sample in samples] == [["a"], ["z"]]
    assert [record.location for record in log.records()] == [f"{path}:{line}" for line in range(2, 8)]
    reasons = [record.reason for record in log.records()]
    assert "missing key(s) polygons" in reasons[1]
    assert "one entry per region, got 1, 2, 2" in reasons[2]
    assert "absent.png" in reasons[3]
    assert "not an image file" in reasons[4]
    assert "even number (>= 6) of coordinates" in reasons[5]


def test_line_shards_split_between_two_nodes(tmp_path):
    Image.new("RGB", (20, 20)).save(tmp_path / "ok.png")
    path = tmp_path / "gt.jsonl"
    path.write_text(
        "".join(
            json.dumps({"image": "ok.png", "polygons": [[0, 0, 5, 0, 5, 5]], "texts": [f"t{i}"]}) + "\n"
            for i in range(10)
        )
    )
    dataset = jsonl_detection_dataset(path, lines_per_shard=3)
    assert dataset.num_shards == 4
    parts = [[s["texts"][0] for s in split_dataset_by_node(dataset, rank, 2)] for rank in range(2)]
    assert sorted(parts[0] + parts[1]) == sorted(f"t{i}" for i in range(10))
    assert set(parts[0]).isdisjoint(parts[1])


def test_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="JSONL annotation file not found"):
        jsonl_detection_dataset(tmp_path / "none.jsonl")
