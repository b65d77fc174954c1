import numpy as np
import pytest
from datasets.distributed import split_dataset_by_node
from PIL import Image

from scenetext.data.corrupt_records import CorruptRecordLog
from scenetext.data.icdar_folder import find_icdar_layout, icdar_detection_dataset, write_icdar_folder
from scenetext.data.synthetic import SyntheticSceneConfig, render_scene_sample

SMALL_SCENES = SyntheticSceneConfig(image_size=(96, 128), num_words=(1, 3), font_size=(12, 24))


def _scene(shade: int) -> dict:
    return {
        "image": Image.new("RGB", (40, 30), (shade, shade, shade)),
        "polygons": [[1, 1, 20, 1, 20, 9, 1, 9], [2, 12, 30, 12, 30, 20, 2, 20]],
        "texts": ["first, word", "###"],
        "ignore": [False, True],
    }


def test_synthetic_scenes_round_trip_with_integer_coordinates(tmp_path):
    scenes = [render_scene_sample(index, seed=5, config=SMALL_SCENES) for index in range(3)]
    assert write_icdar_folder(scenes, tmp_path) == 3
    assert sorted(path.name for path in tmp_path.iterdir())[:3] == [
        "gt_img_1.txt",
        "gt_img_2.txt",
        "gt_img_3.txt",
    ]
    samples = list(icdar_detection_dataset(tmp_path))
    assert [sample["source"] for sample in samples] == [str(tmp_path / f"img_{i}.png") for i in (1, 2, 3)]
    for sample, scene in zip(samples, scenes, strict=True):
        np.testing.assert_array_equal(np.asarray(sample["image"]), np.asarray(scene["image"]))
        assert sample["texts"] == scene["texts"]
        assert sample["ignore"] == scene["ignore"]
        assert sample["polygons"] == [
            [float(round(value)) for value in polygon] for polygon in scene["polygons"]
        ]


def test_dont_care_regions_and_quoted_texts_survive(tmp_path):
    write_icdar_folder([_scene(10)], tmp_path)
    assert (
        tmp_path / "gt_img_1.txt"
    ).read_text() == '1,1,20,1,20,9,1,9,"first, word"\n2,12,30,12,30,20,2,20,###\n'
    (sample,) = icdar_detection_dataset(tmp_path)
    assert sample["texts"] == ["first, word", "###"]
    assert sample["ignore"] == [False, True]


def test_corrupt_records_are_skipped_counted_and_located(tmp_path):
    write_icdar_folder([_scene(shade) for shade in (10, 20, 30, 40)], tmp_path)
    # img_1: one malformed line among good ones -> only that line is lost.
    (tmp_path / "gt_img_1.txt").write_bytes(
        b"\xef\xbb\xbf1,1,20,1,20,9,1,9,good\r\n1,1,oops,1,20,9,1,9,bad\r\n2,12,30,12,30,20,2,20,###\r\n"
    )
    (tmp_path / "img_2.png").unlink()  # annotation without image
    (tmp_path / "gt_img_3.txt").unlink()  # image without annotation
    (tmp_path / "img_4.png").write_bytes(b"not a png")  # undecodable image
    log = CorruptRecordLog()
    samples = list(icdar_detection_dataset(tmp_path, corrupt_records=log))
    assert len(samples) == 1
    assert samples[0]["texts"] == ["good", "###"]
    assert samples[0]["polygons"][0] == [1, 1, 20, 1, 20, 9, 1, 9]
    assert [(record.location, record.reason.split(" ")[0]) for record in log.records()] == [
        (f"{tmp_path / 'gt_img_1.txt'}:2", "expected"),
        (f"{tmp_path / 'gt_img_2.txt'}:0", "no"),
        (f"{tmp_path / 'img_3.png'}:0", "no"),
        (f"{tmp_path / 'img_4.png'}:0", "image"),
    ]
    assert "not an image file" in log.records()[3].reason


def test_separate_folders_in_numeric_order_and_split_between_nodes(tmp_path):
    images, annotations = tmp_path / "images", tmp_path / "gt"
    write_icdar_folder([_scene(shade) for shade in range(0, 120, 10)], images)
    annotations.mkdir()
    for path in images.glob("gt_*.txt"):
        path.rename(annotations / path.name)
    dataset = icdar_detection_dataset(images, annotations)
    assert [sample["source"].rsplit("/", 1)[1] for sample in dataset] == [
        f"img_{i}.png" for i in range(1, 13)
    ]
    parts = [{s["source"] for s in split_dataset_by_node(dataset, rank, 2)} for rank in range(2)]
    assert parts[0].isdisjoint(parts[1]) and len(parts[0] | parts[1]) == 12


def test_polygon_annotations_in_icdar_files(tmp_path):
    Image.new("RGB", (50, 50)).save(tmp_path / "img_1.jpg")
    (tmp_path / "gt_img_1.txt").write_text("0,0,10,0,20,0,20,8,10,8,0,8,2011\n")
    (sample,) = icdar_detection_dataset(tmp_path, num_points=None)
    assert sample["polygons"] == [[0, 0, 10, 0, 20, 0, 20, 8, 10, 8, 0, 8]]
    assert sample["texts"] == ["2011"]


def test_missing_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="ICDAR folder not found"):
        icdar_detection_dataset(tmp_path / "missing")


def test_exif_orientation_is_not_applied_because_annotations_use_stored_pixels(tmp_path):
    stored = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    stored.save(tmp_path / "img_1.jpg", exif=exif.tobytes())
    (tmp_path / "gt_img_1.txt").write_text("1,1,39,1,39,19,1,19,wide\n")
    (sample,) = icdar_detection_dataset(tmp_path)
    assert sample["image"].size == (40, 20)


def test_files_that_are_neither_images_nor_annotations_are_named_once(tmp_path, caplog):
    write_icdar_folder([_scene(90)], tmp_path)
    (tmp_path / "README.md").write_text("my scenes")
    (tmp_path / "words.json").write_text("{}")
    with caplog.at_level("WARNING", logger="scenetext.data.icdar_folder"):
        rows = list(icdar_detection_dataset(tmp_path))
    assert len(rows) == 1
    assert [record.getMessage() for record in caplog.records] == [
        f"{tmp_path}: skipped 2 files that are neither images nor gt_*.txt: README.md, words.json"
    ]


def test_one_folder_with_image_and_annotation_sub_folders_is_found(tmp_path):
    # The ICDAR2015 end-to-end release: Imgs/ and Gts/ under one folder.
    write_icdar_folder([_scene(10), _scene(20)], tmp_path / "Imgs")
    (tmp_path / "Gts").mkdir()
    for path in (tmp_path / "Imgs").glob("gt_*.txt"):
        path.rename(tmp_path / "Gts" / path.name)
    assert find_icdar_layout(tmp_path) == (tmp_path / "Imgs", tmp_path / "Gts")
    samples = list(icdar_detection_dataset(tmp_path))
    assert [sample["source"] for sample in samples] == [
        str(tmp_path / "Imgs" / f"img_{i}.png") for i in (1, 2)
    ]
    assert samples[0]["texts"] == ["first, word", "###"]
    assert samples[0]["ignore"] == [False, True]


def test_a_folder_holding_images_is_its_own_layout_and_ambiguous_sub_folders_are_named(tmp_path):
    write_icdar_folder([_scene(10)], tmp_path / "a")
    assert find_icdar_layout(tmp_path / "a") == (tmp_path / "a", tmp_path / "a")
    assert find_icdar_layout(tmp_path) == (tmp_path / "a", tmp_path / "a")
    write_icdar_folder([_scene(10)], tmp_path / "b")
    with pytest.raises(ValueError, match=r"several sub-folders of .* hold images: a, b"):
        icdar_detection_dataset(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no images in .*empty or its sub-folders"):
        icdar_detection_dataset(tmp_path / "empty")
