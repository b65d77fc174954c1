"""Scene-text-recognition LMDB databases in the layout of parseq / CLIP4STR, streamed, and a writer for them.

Layout of one database (a folder holding ``data.mdb``): key ``num-samples`` (ASCII integer), and for
``index`` in ``1..num-samples`` the keys ``image-%09d`` (encoded image bytes) and ``label-%09d`` (UTF-8 text).
A dataset root may hold many databases at any depth (``train/real/ArT/data.mdb`` ...); they are discovered
recursively, as the official ``build_tree_dataset`` does.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import PIL.Image

try:
    import lmdb
except ImportError as error:
    raise ImportError(
        'LMDB datasets need the lmdb library: pip install "scenetext[train]" or "scenetext[eval]"'
    ) from error
from datasets import IterableDataset

from .corrupt_records import CorruptRecordLog
from .samples import RECOGNITION_FEATURES, LabelPreprocessing, decode_stored_image

_NUM_SAMPLES_KEY = b"num-samples"
_ENVIRONMENTS: dict[str, lmdb.Environment] = {}
_ENVIRONMENTS_OWNER = [os.getpid()]  # the process that opened the handles in _ENVIRONMENTS
_ENVIRONMENTS_LOCK = threading.Lock()


def find_lmdb_databases(root: str | Path) -> list[Path]:
    """Every folder under ``root`` (``root`` included) that holds a ``data.mdb``, sorted by path."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"LMDB root not found: {root}")
    return sorted(path.parent for path in root.rglob("data.mdb"))


def lmdb_recognition_dataset(
    roots: str | Path | Sequence[str | Path],
    charset: str,
    max_label_length: int = 25,
    remove_whitespace: bool = True,
    normalize_unicode: bool = True,
    min_image_dim: int = 0,
    records_per_shard: int = 10_000,
    corrupt_records: CorruptRecordLog | None = None,
) -> IterableDataset:
    """Stream word crops and labels from every LMDB database under ``roots``.

    Labels go through the official preprocessing (see `LabelPreprocessing`); samples whose label is dropped,
    or whose image is smaller than ``min_image_dim`` on its shorter side, are filtered silently as in the
    official code. Corrupt records (missing key, bad UTF-8 label, undecodable image) are skipped and
    reported to ``corrupt_records`` with location ``<database folder>:<index>``.

    Each database is cut into shards of ``records_per_shard`` consecutive indices, so that
    `datasets.distributed.split_dataset_by_node` and DataLoader workers read disjoint parts.
    """
    if records_per_shard < 1:
        raise ValueError(f"records_per_shard must be positive, got {records_per_shard}")
    roots = [roots] if isinstance(roots, (str, Path)) else list(roots)
    databases = [database for root in roots for database in find_lmdb_databases(root)]
    if not databases:
        raise FileNotFoundError(f"no LMDB database (data.mdb) found under {', '.join(map(str, roots))}")
    corrupt_records = corrupt_records or CorruptRecordLog()
    shards = []
    for database in databases:
        num_samples = _read_num_samples(database, corrupt_records)
        shards.extend(
            (str(database), start, min(start + records_per_shard, num_samples + 1))
            for start in range(1, num_samples + 1, records_per_shard)
        )
    return IterableDataset.from_generator(
        _generate_records,
        features=RECOGNITION_FEATURES,
        gen_kwargs={
            "shards": shards,
            "label_preprocessing": LabelPreprocessing(
                charset, max_label_length, remove_whitespace, normalize_unicode
            ),
            "min_image_dim": min_image_dim,
            "corrupt_records": corrupt_records,
        },
    )


def write_lmdb(
    samples: Iterable[dict], path: str | Path, image_format: str = "PNG", map_size: int = 1 << 30
) -> int:
    """Write recognition samples (``{"image": PIL.Image, "label": str, ...}``) as one LMDB database.

    Indices start at 1; ``num-samples`` is written last. Images are encoded in ``image_format`` (PNG keeps
    pixels exact). Returns the number of samples written. ``map_size`` is the database's maximum size.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    _close_readonly_environment(path)  # LMDB allows one handle per database and process
    count = 0
    with lmdb.open(str(path), map_size=map_size) as environment, environment.begin(write=True) as transaction:
        for count, sample in enumerate(samples, start=1):
            if not isinstance(sample.get("image"), PIL.Image.Image) or not isinstance(
                sample.get("label"), str
            ):
                raise TypeError(
                    f"sample {count} needs a PIL 'image' and a str 'label', got keys {sorted(sample)}"
                )
            buffer = io.BytesIO()
            sample["image"].save(buffer, format=image_format)
            transaction.put(b"image-%09d" % count, buffer.getvalue())
            transaction.put(b"label-%09d" % count, sample["label"].encode("utf-8"))
        transaction.put(_NUM_SAMPLES_KEY, str(count).encode("ascii"))
    return count


def _readonly_environment(database: str | Path) -> lmdb.Environment:
    """This process's read-only handle on ``database``, opened once and shared.

    LMDB refuses to open one environment twice in a process, and `datasets` reads several shards of a
    database at once in threads (e.g. after ``shuffle``), so the handle is shared. A DataLoader worker
    inherits its parent's handles through fork, where they must not be used; it closes its copies (the
    parent's stay open) and opens its own. The settings are the official reader's: no locking and no
    read-ahead, fit for many concurrent readers of a database nobody writes.
    """
    path = str(Path(database).resolve())
    with _ENVIRONMENTS_LOCK:
        if _ENVIRONMENTS and _ENVIRONMENTS_OWNER[0] != os.getpid():
            for inherited in _ENVIRONMENTS.values():
                inherited.close()
            _ENVIRONMENTS.clear()
        _ENVIRONMENTS_OWNER[0] = os.getpid()
        if path not in _ENVIRONMENTS:
            _ENVIRONMENTS[path] = lmdb.open(
                path, readonly=True, lock=False, readahead=False, meminit=False, max_readers=1
            )
        return _ENVIRONMENTS[path]


def _close_readonly_environment(database: str | Path) -> None:
    with _ENVIRONMENTS_LOCK:
        environment = _ENVIRONMENTS.pop(str(Path(database).resolve()), None)
        if environment is not None:
            environment.close()


def num_stored_records(database: str | Path) -> int | None:
    """The record count (`num-samples`) of an LMDB database, None when it has no usable one. Evaluation
    compares it with what a source yielded to count the labels its preprocessing dropped."""
    with _readonly_environment(database).begin() as transaction:
        value = transaction.get(_NUM_SAMPLES_KEY)
    try:
        return int(value.decode("ascii"))
    except (AttributeError, UnicodeDecodeError, ValueError):
        return None


def read_lmdb_labels(roots: str | Path | Sequence[str | Path], limit: int | None = None) -> Iterator[str]:
    """The raw labels of every database under ``roots`` (as `lmdb_recognition_dataset` finds them), without
    reading an image: what building a charset from the data needs. Labels that are missing or not UTF-8 are
    skipped (the dataset reports them as corrupt when it reads them). At most ``limit`` labels."""
    roots = [roots] if isinstance(roots, (str, Path)) else list(roots)
    read = 0
    for database in (database for root in roots for database in find_lmdb_databases(root)):
        with _readonly_environment(database).begin() as transaction:
            for index in range(1, (num_stored_records(database) or 0) + 1):
                if limit is not None and read >= limit:
                    return
                raw_label = transaction.get(b"label-%09d" % index)
                try:
                    label = raw_label.decode("utf-8")
                except (AttributeError, UnicodeDecodeError):
                    continue
                read += 1
                yield label


def _read_num_samples(database: Path, corrupt_records: CorruptRecordLog) -> int:
    num_samples = num_stored_records(database)
    if num_samples is None:
        # A database without a usable count cannot be indexed: all of it is skipped, and said so.
        with _readonly_environment(database).begin() as transaction:
            value = transaction.get(_NUM_SAMPLES_KEY)
        corrupt_records.report(f"{database}:num-samples", f"expected an ASCII integer, found {value!r}")
        return 0
    return num_samples


def _generate_records(
    shards: list[tuple[str, int, int]],
    label_preprocessing: LabelPreprocessing,
    min_image_dim: int,
    corrupt_records: CorruptRecordLog,
) -> Iterator[dict]:
    for database, start, stop in shards:
        with _readonly_environment(database).begin() as transaction:
            for index in range(start, stop):
                location = f"{database}:{index}"
                try:
                    sample = _read_record(transaction, index, label_preprocessing, min_image_dim)
                except ValueError as error:
                    corrupt_records.report(location, str(error))
                    continue
                if sample is not None:
                    yield {**sample, "source": location}


def _read_record(
    transaction: lmdb.Transaction, index: int, label_preprocessing: LabelPreprocessing, min_image_dim: int
) -> dict | None:
    """One record as a sample, ``None`` when filtered; raises `ValueError` describing a corrupt record."""
    label_key, image_key = b"label-%09d" % index, b"image-%09d" % index
    raw_label = transaction.get(label_key)
    if raw_label is None:
        raise ValueError(f"missing key {label_key.decode()}")
    try:
        label = label_preprocessing(raw_label.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"label is not UTF-8 ({error})") from error
    if label is None:
        return None
    image_bytes = transaction.get(image_key)
    if image_bytes is None:
        raise ValueError(f"missing key {image_key.decode()}")
    image, value = decode_stored_image(image_bytes)
    if min(image.size) < min_image_dim:
        return None
    return {"image": value, "label": label}
