import lmdb
import numpy as np
import pytest
import torch
from datasets.distributed import split_dataset_by_node
from PIL import Image

from scenetext.data.corrupt_records import CorruptRecordLog
from scenetext.data.lmdb import find_lmdb_databases, lmdb_recognition_dataset, write_lmdb
from scenetext.data.synthetic import render_word_sample

ALPHANUMERIC = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _crop(shade: int, size: tuple[int, int] = (24, 12)) -> Image.Image:
    return Image.new("RGB", size, (shade, 255 - shade, 7))


def _put(database, entries: dict[bytes, bytes | None]) -> None:
    with (
        lmdb.open(str(database), map_size=1 << 24) as environment,
        environment.begin(write=True) as transaction,
    ):
        for key, value in entries.items():
            if value is None:
                transaction.delete(key)
            else:
                transaction.put(key, value)


def test_synthetic_words_round_trip_through_nested_databases(tmp_path):
    words = [render_word_sample(index, seed=3) for index in range(6)]
    assert write_lmdb(words[:4], tmp_path / "train" / "real" / "first") == 4
    assert write_lmdb(words[4:], tmp_path / "train" / "synth") == 2
    databases = find_lmdb_databases(tmp_path)
    assert databases == [tmp_path / "train" / "real" / "first", tmp_path / "train" / "synth"]

    samples = list(lmdb_recognition_dataset(tmp_path, charset=ALPHANUMERIC))
    assert [sample["label"] for sample in samples] == [word["label"] for word in words]
    for sample, word in zip(samples, words, strict=True):
        assert sample["image"].mode == "RGB"
        np.testing.assert_array_equal(np.asarray(sample["image"]), np.asarray(word["image"]))
    assert [sample["source"] for sample in samples] == [
        *(f"{databases[0]}:{index}" for index in range(1, 5)),
        *(f"{databases[1]}:{index}" for index in range(1, 3)),
    ]


def test_labels_follow_the_official_preprocessing(tmp_path):
    labels = ["Hello World", "café", "x" * 26, "a" * 25, "!!!", "Mixed9"]
    write_lmdb([{"image": _crop(i), "label": label} for i, label in enumerate(labels)], tmp_path / "db")
    lowercase = "0123456789abcdefghijklmnopqrstuvwxyz"
    assert [s["label"] for s in lmdb_recognition_dataset(tmp_path, charset=lowercase)] == [
        "helloworld",
        "cafe",
        "a" * 25,
        "mixed9",
    ]
    cased = list(lmdb_recognition_dataset(tmp_path, charset=ALPHANUMERIC, remove_whitespace=False))
    assert [s["label"] for s in cased] == ["HelloWorld", "cafe", "a" * 25, "Mixed9"]
    # The length limit applies before charset filtering: 26 characters of which none would be removed.
    assert [s["source"].rsplit(":", 1)[1] for s in cased] == ["1", "2", "4", "6"]


def test_min_image_dim_filters_small_crops(tmp_path):
    crops = [_crop(0, (30, 8)), _crop(1, (30, 16)), _crop(2, (9, 40))]
    write_lmdb([{"image": crop, "label": "ab"} for crop in crops], tmp_path / "db")
    kept = lmdb_recognition_dataset(tmp_path, charset=ALPHANUMERIC, min_image_dim=10)
    assert [sample["image"].size for sample in kept] == [(30, 16)]


def test_corrupt_records_are_skipped_counted_and_located(tmp_path):
    database = tmp_path / "db"
    write_lmdb([{"image": _crop(i), "label": f"word{i}"} for i in range(1, 7)], database)
    _put(
        database,
        {
            b"image-000000002": b"\x89PNG\r\n\x1a\n truncated",
            b"label-000000003": None,
            b"label-000000004": b"caf\xe9",
            b"image-000000005": None,
        },
    )
    log = CorruptRecordLog()
    samples = list(lmdb_recognition_dataset(tmp_path, charset=ALPHANUMERIC, corrupt_records=log))
    assert [sample["label"] for sample in samples] == ["word1", "word6"]
    assert log.count() == 4
    assert [record.location for record in log.records()] == [f"{database}:{index}" for index in (2, 3, 4, 5)]
    reasons = [record.reason for record in log.records()]
    assert "unreadable image" in reasons[0]
    assert reasons[1] == "missing key label-000000003"
    assert "not UTF-8" in reasons[2]
    assert reasons[3] == "missing key image-000000005"
    assert log.counts_by_source() == {str(database): 4}


def test_database_without_sample_count_is_reported_and_skipped(tmp_path):
    write_lmdb([{"image": _crop(1), "label": "kept"}], tmp_path / "good")
    write_lmdb([{"image": _crop(2), "label": "lost"}], tmp_path / "broken")
    _put(tmp_path / "broken", {b"num-samples": b"many"})
    log = CorruptRecordLog()
    samples = list(lmdb_recognition_dataset(tmp_path, charset=ALPHANUMERIC, corrupt_records=log))
    assert [sample["label"] for sample in samples] == ["kept"]
    assert [record.location for record in log.records()] == [f"{tmp_path / 'broken'}:num-samples"]


def test_two_nodes_read_disjoint_parts_that_cover_everything(tmp_path):
    write_lmdb([{"image": _crop(i), "label": f"w{i}"} for i in range(8)], tmp_path / "db")
    dataset = lmdb_recognition_dataset(tmp_path, charset=ALPHANUMERIC, records_per_shard=2)
    assert dataset.num_shards == 4
    parts = [{s["label"] for s in split_dataset_by_node(dataset, rank, 2)} for rank in range(2)]
    assert parts[0].isdisjoint(parts[1])
    assert parts[0] | parts[1] == {f"w{i}" for i in range(8)}
    assert len(parts[0]) == len(parts[1]) == 4


def test_missing_root_and_empty_root_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="LMDB root not found"):
        lmdb_recognition_dataset(tmp_path / "nowhere", charset=ALPHANUMERIC)
    with pytest.raises(FileNotFoundError, match=r"no LMDB database \(data.mdb\) found"):
        lmdb_recognition_dataset(tmp_path, charset=ALPHANUMERIC)


def test_shuffled_stream_reads_in_threads_and_in_workers_after_the_main_process(tmp_path):
    # `shuffle` reads several shards of one database at once in threads, and DataLoader workers fork from a
    # process that already has the database open: both need one LMDB handle per process.
    write_lmdb([{"image": _crop(i), "label": f"w{i}"} for i in range(8)], tmp_path / "db")
    dataset = lmdb_recognition_dataset(tmp_path, charset=ALPHANUMERIC, records_per_shard=2)
    shuffled = dataset.shuffle(seed=0, buffer_size=4)
    expected = sorted(f"w{i}" for i in range(8))
    assert sorted(sample["label"] for sample in shuffled) == expected
    loader = torch.utils.data.DataLoader(shuffled, batch_size=None, num_workers=2)
    assert sorted(sample["label"] for sample in loader) == expected


def test_a_database_can_be_rewritten_after_it_was_read_in_the_same_process(tmp_path):
    write_lmdb([{"image": _crop(1), "label": "before"}], tmp_path / "db")
    assert [s["label"] for s in lmdb_recognition_dataset(tmp_path, charset=ALPHANUMERIC)] == ["before"]
    write_lmdb(
        [{"image": _crop(2), "label": "after"}, {"image": _crop(3), "label": "again"}], tmp_path / "db"
    )
    assert [s["label"] for s in lmdb_recognition_dataset(tmp_path, charset=ALPHANUMERIC)] == [
        "after",
        "again",
    ]
