"""Word crops in a folder with a ``labels.txt``: the format users write for their own recognition data.

``labels.txt`` holds one crop per line, ``<file><TAB><label>``: the file name relative to the folder (it may
name a sub-folder), a tab, and the label as it is (spaces and punctuation kept; the evaluation protocol or
the training preprocessing decides what counts). The file is UTF-8 with or without a BOM, LF or CRLF; blank
lines are skipped. Every other line must be a crop: a line without a tab, with an empty name or label, naming a
file that does not exist or naming a file a second time is an error naming ``labels.txt:<line>``, since a
silently skipped crop would change the accuracy.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from datasets import IterableDataset

from .corrupt_records import CorruptRecordLog
from .icdar_folder import IMAGE_SUFFIXES
from .samples import RECOGNITION_FEATURES, LabelPreprocessing, decode_stored_image

LABELS_FILE = "labels.txt"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledCrop:
    """One line of ``labels.txt``: the crop's file, its label and where the line is (``labels.txt:<n>``)."""

    path: Path
    label: str
    location: str


def is_labelled_folder(folder: str | Path) -> bool:
    """Whether `folder` holds a ``labels.txt`` (and is thus read as labelled crops, not as a benchmark root)."""
    return (Path(folder) / LABELS_FILE).is_file()


def read_labels_file(folder: str | Path) -> list[LabelledCrop]:
    """The crops listed by ``<folder>/labels.txt``, in file order.

    Raises:
        FileNotFoundError: the folder or its ``labels.txt`` is missing, or a line names a missing file.
        ValueError: a line is not ``<file><TAB><label>``, names a file twice, or the file lists no crop.
    """
    folder = Path(folder)
    labels_path = folder / LABELS_FILE
    if not labels_path.is_file():
        raise FileNotFoundError(
            f"no {LABELS_FILE} in {folder} (expected one line <file><TAB><label> per word crop)"
        )
    crops: list[LabelledCrop] = []
    first_line_of: dict[str, int] = {}
    # utf-8-sig drops a BOM; text mode reads CRLF lines as LF.
    with labels_path.open(encoding="utf-8-sig") as lines:
        for line_number, line in enumerate(lines, start=1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            location = f"{labels_path}:{line_number}"
            name, tab, label = line.partition("\t")
            if not tab or not name.strip() or not label:
                raise ValueError(f"{location}: expected <file><TAB><label>, got {line!r}")
            key = os.path.normpath(name)
            if key in first_line_of:
                raise ValueError(
                    f"{location}: {name!r} is listed a second time (first at line {first_line_of[key]})"
                )
            first_line_of[key] = line_number
            path = folder / name
            if not path.is_file():
                raise FileNotFoundError(f"{location}: {name!r} not found in {folder}")
            crops.append(LabelledCrop(path, label, location))
    if not crops:
        raise ValueError(f"{labels_path} lists no crop (expected lines <file><TAB><label>)")
    _report_unlisted_images(folder, {crop.path.resolve() for crop in crops})
    return crops


def labelled_folder_dataset(
    folder: str | Path,
    corrupt_records: CorruptRecordLog | None = None,
    charset: str | None = None,
    max_label_length: int = 25,
    remove_whitespace: bool = True,
    normalize_unicode: bool = True,
) -> IterableDataset:
    """Stream the crops of ``<folder>/labels.txt`` as recognition samples (``image``, ``label``, and
    ``source`` = ``labels.txt:<line>``).

    ``labels.txt`` is read and checked first (see `read_labels_file`); an image that cannot be decoded is
    then skipped and reported to `corrupt_records` at its line. One shard per crop, so nodes and workers
    split the folder between them. Labels are kept as they are (evaluation: the protocol decides), or with a
    ``charset`` (training) go through the official CLIP4STR preprocessing, which drops some crops silently
    as for the other sources (`LabelPreprocessing`).
    """
    crops = read_labels_file(folder)
    preprocessing = (
        None
        if charset is None
        else LabelPreprocessing(charset, max_label_length, remove_whitespace, normalize_unicode)
    )
    return IterableDataset.from_generator(
        _generate_crops,
        features=RECOGNITION_FEATURES,
        gen_kwargs={
            "shards": [(str(crop.path), crop.label, crop.location) for crop in crops],
            "corrupt_records": corrupt_records or CorruptRecordLog(),
            "preprocessing": preprocessing,
        },
    )


def _generate_crops(
    shards: list[tuple[str, str, str]],
    corrupt_records: CorruptRecordLog,
    preprocessing: LabelPreprocessing | None,
) -> Iterator[dict]:
    for path, label, location in shards:
        if preprocessing is not None:
            label = preprocessing(label)
            if label is None:
                continue
        try:
            _, image = decode_stored_image(Path(path).read_bytes())
        except (OSError, ValueError) as error:
            corrupt_records.report(location, f"{path}: {error}")
            continue
        yield {"image": image, "label": label, "source": location}


def _report_unlisted_images(folder: Path, listed: set[Path]) -> None:
    # An image beside labels.txt that it does not name is usually a forgotten line: say so once.
    unlisted = sorted(
        path.name
        for path in folder.iterdir()
        if path.suffix.lower() in IMAGE_SUFFIXES and path.resolve() not in listed
    )
    if unlisted:
        shown = ", ".join(unlisted[:5]) + (f" and {len(unlisted) - 5} more" if len(unlisted) > 5 else "")
        logger.warning("%s: %d images are not listed in %s: %s", folder, len(unlisted), LABELS_FILE, shown)
