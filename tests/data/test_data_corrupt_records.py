import lmdb
import torch
from PIL import Image

from scenetext.data.corrupt_records import CorruptRecord, CorruptRecordLog
from scenetext.data.lmdb import lmdb_recognition_dataset, write_lmdb


def _database_with_bad_images(path, bad_indices: set[int], size: int = 8) -> None:
    write_lmdb([{"image": Image.new("RGB", (16, 8)), "label": f"w{i}"} for i in range(1, size + 1)], path)
    with lmdb.open(str(path), map_size=1 << 24) as environment, environment.begin(write=True) as transaction:
        for index in bad_indices:
            transaction.put(b"image-%09d" % index, b"broken")


def test_counts_from_dataloader_workers_reach_the_training_process(tmp_path):
    database = tmp_path / "db"
    _database_with_bad_images(database, {2, 5, 8})
    log = CorruptRecordLog(tmp_path / "skipped")
    dataset = lmdb_recognition_dataset(
        tmp_path / "db", charset="w0123456789", records_per_shard=2, corrupt_records=log
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2)
    labels = sorted(sample["label"] for sample in loader)
    assert labels == ["w1", "w3", "w4", "w6", "w7"]
    assert log.count() == 3
    assert sorted(record.location for record in log.records()) == [f"{database}:{i}" for i in (2, 5, 8)]
    # The two workers were separate processes, each with its own file.
    assert len(list((tmp_path / "skipped").glob("corrupt-records-*.jsonl"))) == 2
    assert log.counts_by_source() == {str(database): 3}


def test_a_second_reader_of_the_same_directory_sees_the_reports(tmp_path):
    writer, reader = CorruptRecordLog(tmp_path), CorruptRecordLog(tmp_path)
    writer.report("/data/a.mdb:7", "missing key label-000000007")
    assert reader.records() == [CorruptRecord("/data/a.mdb:7", "missing key label-000000007")]
    assert reader.records()[0].source == "/data/a.mdb"
    # A half-written last line (a worker killed mid-write) is ignored, not fatal.
    next(tmp_path.glob("corrupt-records-*.jsonl")).open("a").write('{"location": "/data/b')
    assert reader.count() == 1
    reader.clear()
    assert writer.count() == 0


def test_without_directory_reports_stay_in_process_and_are_logged(caplog):
    log = CorruptRecordLog()
    log.report("/data/gt_img_3.txt:4", "expected a finite number, found 'x'")
    assert log.count() == 1
    assert "skipped corrupt record /data/gt_img_3.txt:4: expected a finite number" in caplog.text
