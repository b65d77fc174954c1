"""Detection data with polygons of any size (TotalText / CTW1500 style) as a JSON-lines file, and a writer.

The format, one UTF-8 JSON object per line::

    {"image": "images/img_1.jpg",
     "polygons": [[x1, y1, x2, y2, ...], ...],
     "texts": ["word", ...],
     "ignore": [false, ...]}

- ``image``: path of the image, relative to the folder of the JSONL file (or absolute).
- ``polygons``: one polygon per region, at least 3 points, in image pixels; each may be a flat coordinate
  list or a list of ``[x, y]`` pairs.
- ``texts``: one transcription per polygon.
- ``ignore`` (optional): don't-care flags, one per polygon; without it, a text ``###`` is don't-care.
Blank lines are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from datasets import IterableDataset

from .corrupt_records import CorruptRecordLog
from .icdar import DONT_CARE
from .samples import (
    DETECTION_FEATURES,
    check_detection_sample,
    decode_stored_image,
    flatten_polygon,
)


def jsonl_detection_dataset(
    paths: str | Path | Sequence[str | Path],
    lines_per_shard: int = 256,
    corrupt_records: CorruptRecordLog | None = None,
) -> IterableDataset:
    """Stream detection samples from one or more JSONL files in the format above.

    A malformed line (invalid JSON or UTF-8, missing or inconsistent fields, missing or undecodable image)
    is skipped and reported as ``<jsonl file>:<line>``. Each file is cut into shards of ``lines_per_shard``
    lines.
    """
    if lines_per_shard < 1:
        raise ValueError(f"lines_per_shard must be positive, got {lines_per_shard}")
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    shards = []
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"JSONL annotation file not found: {path}")
        shards.extend(_line_ranges(path, lines_per_shard))
    return IterableDataset.from_generator(
        _generate_lines,
        features=DETECTION_FEATURES,
        gen_kwargs={"shards": shards, "corrupt_records": corrupt_records or CorruptRecordLog()},
    )


def write_jsonl_detection(
    samples: Iterable[dict], path: str | Path, image_folder: str = "images", image_format: str = "PNG"
) -> int:
    """Write detection samples as a JSONL file, their images as ``<image_folder>/img_N.<ext>`` beside it.

    Coordinates are written at full precision, so exact polygons read back unchanged. Returns the number of
    samples written.
    """
    path = Path(path)
    (path.parent / image_folder).mkdir(parents=True, exist_ok=True)
    extension = {"JPEG": "jpg"}.get(image_format.upper(), image_format.lower())
    count = 0
    with path.open("w", encoding="utf-8") as file:
        for count, sample in enumerate(samples, start=1):
            check_detection_sample(sample, count)
            image_name = f"{image_folder}/img_{count}.{extension}"
            sample["image"].save(path.parent / image_name, format=image_format)
            record = {
                "image": image_name,
                "polygons": [[float(value) for value in polygon] for polygon in sample["polygons"]],
                "texts": list(sample["texts"]),
                "ignore": [bool(flag) for flag in sample["ignore"]],
            }
            file.write(json.dumps(record, ensure_ascii=False) + "\n")
    return count


def _line_ranges(path: Path, lines_per_shard: int) -> list[tuple[str, int, int, int]]:
    """Shards of a file as ``(path, first line number, start byte, stop byte)``, so a reader seeks to its part."""
    ranges, first_line, start, offset = [], 1, 0, 0
    with path.open("rb") as file:
        for line_number, line in enumerate(file, start=1):
            offset += len(line)
            if line_number % lines_per_shard == 0:
                ranges.append((str(path), first_line, start, offset))
                first_line, start = line_number + 1, offset
    if offset > start:
        ranges.append((str(path), first_line, start, offset))
    return ranges


def _generate_lines(
    shards: list[tuple[str, int, int, int]], corrupt_records: CorruptRecordLog
) -> Iterator[dict]:
    for path, first_line, start, stop in shards:
        with open(path, "rb") as file:
            file.seek(start)
            chunk = file.read(stop - start)
        for line_number, raw_line in enumerate(chunk.split(b"\n"), start=first_line):
            if not raw_line.strip():
                continue
            location = f"{path}:{line_number}"
            try:
                yield {**_parse_record(raw_line, Path(path).parent), "source": location}
            except (OSError, ValueError) as error:  # json and UTF-8 errors are ValueErrors
                corrupt_records.report(location, str(error))


def _parse_record(raw_line: bytes, folder: Path) -> dict:
    record = json.loads(raw_line.decode("utf-8").lstrip("\ufeff"))
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, found {type(record).__name__}")
    missing = [key for key in ("image", "polygons", "texts") if key not in record]
    if missing:
        raise ValueError(f"missing key(s) {', '.join(missing)}")
    polygons = [flatten_polygon(polygon) for polygon in record["polygons"]]
    texts = record["texts"]
    ignore = record.get("ignore", [text == DONT_CARE for text in texts])
    if not (len(polygons) == len(texts) == len(ignore)):
        raise ValueError(
            f"polygons, texts and ignore must have one entry per region, got {len(polygons)}, {len(texts)}, "
            f"{len(ignore)}"
        )
    if not all(isinstance(text, str) for text in texts) or not all(isinstance(flag, bool) for flag in ignore):
        raise ValueError("texts must be strings and ignore flags booleans")
    image_path = folder / record["image"]
    data = image_path.read_bytes()
    _, image = decode_stored_image(data)
    return {"image": image, "polygons": polygons, "texts": texts, "ignore": ignore}
