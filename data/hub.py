"""Any Hub or local `datasets` dataset as a recognition or detection source, streamed.

Accepted inputs: a Hub repository id or a local data folder / file (loaded with
``load_dataset(..., streaming=True)``), a folder written by ``save_to_disk``, or an already loaded
`datasets.Dataset` / `datasets.IterableDataset`. The image column must be a ``datasets.Image`` feature; the
source decodes images itself so that an undecodable one is skipped and reported rather than ending the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import datasets
import PIL.Image
from datasets import Dataset, DatasetDict, IterableDataset
from datasets.utils.file_utils import xopen

from scenetext.pipelines.image_loading import load_rgb_image

from .corrupt_records import CorruptRecordLog
from .icdar import DONT_CARE
from .samples import (
    DETECTION_FEATURES,
    RECOGNITION_FEATURES,
    LabelPreprocessing,
    decode_stored_image,
    flatten_polygon,
)

DatasetInput = str | Path | Dataset | IterableDataset


def hub_recognition_dataset(
    dataset: DatasetInput,
    image_column: str = "image",
    text_column: str = "text",
    split: str = "train",
    config_name: str | None = None,
    charset: str | None = None,
    max_label_length: int = 25,
    remove_whitespace: bool = True,
    normalize_unicode: bool = True,
    corrupt_records: CorruptRecordLog | None = None,
) -> IterableDataset:
    """Word crops and labels from a dataset with an image column and a text column.

    With a ``charset`` the labels go through the official CLIP4STR preprocessing (`LabelPreprocessing`),
    dropping samples as it does; without one they are kept as they are. A record with a missing, non-text
    label or an undecodable image is skipped and reported as ``<dataset>/<split>/shard<k>:<row>``.
    """
    stream = _open_stream(dataset, split, config_name)
    _check_columns(stream, image_column, {"text": text_column})
    label_preprocessing = (
        None
        if charset is None
        else LabelPreprocessing(charset, max_label_length, remove_whitespace, normalize_unicode)
    )
    return _wrap(
        stream,
        _convert_recognition_row,
        {
            "image_column": image_column,
            "text_column": text_column,
            "label_preprocessing": label_preprocessing,
        },
        RECOGNITION_FEATURES,
        _describe(dataset, split),
        corrupt_records,
    )


def hub_detection_dataset(
    dataset: DatasetInput,
    image_column: str = "image",
    polygons_column: str = "polygons",
    texts_column: str | None = "texts",
    ignore_column: str | None = None,
    split: str = "train",
    config_name: str | None = None,
    corrupt_records: CorruptRecordLog | None = None,
) -> IterableDataset:
    """Scenes and regions from a dataset with an image column and polygon columns.

    ``polygons_column`` holds one polygon per region (flat coordinates or ``[x, y]`` pairs); ``texts_column``
    the transcriptions (``None``: no transcriptions, all empty); ``ignore_column`` the don't-care flags
    (``None``: a text ``###`` is don't-care). A record with missing or inconsistent fields or an undecodable
    image is skipped and reported as ``<dataset>/<split>/shard<k>:<row>``.
    """
    stream = _open_stream(dataset, split, config_name)
    _check_columns(
        stream, image_column, {"polygons": polygons_column, "texts": texts_column, "ignore": ignore_column}
    )
    return _wrap(
        stream,
        _convert_detection_row,
        {
            "image_column": image_column,
            "polygons_column": polygons_column,
            "texts_column": texts_column,
            "ignore_column": ignore_column,
        },
        DETECTION_FEATURES,
        _describe(dataset, split),
        corrupt_records,
    )


def _open_stream(dataset: DatasetInput, split: str, config_name: str | None) -> IterableDataset:
    if isinstance(dataset, IterableDataset):
        return dataset
    if isinstance(dataset, (str, Path)) and _is_saved_to_disk(Path(dataset)):
        dataset = datasets.load_from_disk(str(dataset))
        if isinstance(dataset, DatasetDict):
            if split not in dataset:
                raise ValueError(f"split {split!r} not in the saved dataset; it has {sorted(dataset)}")
            dataset = dataset[split]
    if isinstance(dataset, Dataset):
        # Enough shards for several nodes and DataLoader workers to read disjoint parts.
        return dataset.to_iterable_dataset(num_shards=max(1, min(len(dataset), 64)))
    if isinstance(dataset, (str, Path)):
        return datasets.load_dataset(str(dataset), config_name, split=split, streaming=True)
    raise TypeError(
        f"dataset must be a Hub id, a path, a datasets.Dataset or IterableDataset, got {type(dataset).__name__}"
    )


def _is_saved_to_disk(path: Path) -> bool:
    return path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file())


def _check_columns(stream: IterableDataset, image_column: str, other_columns: dict[str, str | None]) -> None:
    """Fail early, naming the column, when the features are known and do not fit."""
    features = stream.features
    if features is None:  # some streamed datasets only know their columns once read; rows are checked then
        return
    for role, column in {"image": image_column, **other_columns}.items():
        if column is not None and column not in features:
            raise ValueError(
                f"{role} column {column!r} not in the dataset; its columns are {sorted(features)}"
            )
    if not isinstance(features[image_column], datasets.Image):
        raise ValueError(
            f"image column {image_column!r} must be a datasets.Image feature, got {features[image_column]}"
        )


def _wrap(
    stream: IterableDataset,
    convert_row: Callable[..., dict | None],
    columns: dict,
    features: datasets.Features,
    name: str,
    corrupt_records: CorruptRecordLog | None,
) -> IterableDataset:
    image_column = columns["image_column"]
    if stream.features is not None:
        # Raw bytes in, so that decoding happens here, where a failure can be skipped.
        stream = stream.cast_column(image_column, datasets.Image(decode=False))
    return IterableDataset.from_generator(
        _generate_rows,
        features=features,
        gen_kwargs={
            "shards": list(range(stream.num_shards)),
            "stream": stream,
            "convert_row": convert_row,
            "columns": columns,
            "name": name,
            "corrupt_records": corrupt_records or CorruptRecordLog(),
        },
    )


def _generate_rows(
    shards: list[int],
    stream: IterableDataset,
    convert_row: Callable[..., dict | None],
    columns: dict,
    name: str,
    corrupt_records: CorruptRecordLog,
) -> Iterator[dict]:
    for shard in shards:
        part = stream.shard(num_shards=stream.num_shards, index=shard)
        for row_index, row in enumerate(part):
            location = f"{name}/shard{shard}:{row_index}"
            try:
                sample = convert_row(row, **columns)
            except (OSError, ValueError, TypeError, KeyError) as error:
                corrupt_records.report(location, f"{type(error).__name__}: {error}")
                continue
            if sample is not None:
                yield {**sample, "source": location}


def _convert_recognition_row(
    row: dict, image_column: str, text_column: str, label_preprocessing: LabelPreprocessing | None
) -> dict | None:
    label = row[text_column]
    if not isinstance(label, str):
        raise TypeError(f"label in column {text_column!r} must be a string, got {type(label).__name__}")
    if label_preprocessing is not None:
        label = label_preprocessing(label)
        if label is None:
            return None
    return {"image": _image_value(row[image_column]), "label": label}


def _convert_detection_row(
    row: dict, image_column: str, polygons_column: str, texts_column: str | None, ignore_column: str | None
) -> dict:
    polygons = [flatten_polygon(polygon) for polygon in row[polygons_column]]
    texts = list(row[texts_column]) if texts_column else [""] * len(polygons)
    ignore = list(row[ignore_column]) if ignore_column else [text == DONT_CARE for text in texts]
    if not (len(polygons) == len(texts) == len(ignore)):
        raise ValueError(
            f"polygons, texts and ignore must have one entry per region, got {len(polygons)}, {len(texts)}, "
            f"{len(ignore)}"
        )
    return {"image": _image_value(row[image_column]), "polygons": polygons, "texts": texts, "ignore": ignore}


def _image_value(value: object) -> dict | PIL.Image.Image:
    if isinstance(value, PIL.Image.Image):
        # A stream without declared features decodes images itself; there is nothing left to check.
        return load_rgb_image(value, apply_exif_orientation=False)
    if not isinstance(value, dict) or (value.get("bytes") is None and value.get("path") is None):
        raise ValueError(f"expected an encoded image (bytes or path), got {type(value).__name__}")
    data = value["bytes"]
    if data is None:
        with xopen(value["path"], "rb") as file:  # local or remote (hf://, https://) paths alike
            data = file.read()
    return decode_stored_image(data)[1]


def _describe(dataset: DatasetInput, split: str) -> str:
    if isinstance(dataset, (str, Path)):
        return f"{dataset}/{split}"
    return f"{type(dataset).__name__}({dataset.info.dataset_name or 'in-memory'})/{dataset.split or split}"
