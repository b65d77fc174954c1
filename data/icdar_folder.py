"""Detection data in ICDAR2015 folder layout (``img_N.jpg`` + ``gt_img_N.txt``), streamed, and a writer.

An image ``<stem>.<ext>`` pairs with the annotation ``gt_<stem>.txt``; images and annotations may sit in one
folder or in two (as in the official ``ch4_training_images`` / ``ch4_training_localization_transcription_gt``).
Given one folder that holds neither, its sub-folders are searched: one of images and one of annotations (the
same one or two, e.g. ``Imgs/`` + ``Gts/`` of the ICDAR2015 end-to-end release) make the dataset.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from datasets import IterableDataset

from .corrupt_records import CorruptRecordLog
from .icdar import format_ground_truth_line, read_ground_truth
from .samples import DETECTION_FEATURES, check_detection_sample, decode_stored_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

logger = logging.getLogger(__name__)


def icdar_detection_dataset(
    images: str | Path,
    ground_truth: str | Path | None = None,
    num_points: int | None = 4,
    corrupt_records: CorruptRecordLog | None = None,
) -> IterableDataset:
    """Stream the images of ``images`` with the regions of their ``gt_<stem>.txt`` files.

    Args:
        images: folder of images.
        ground_truth: folder of the annotation files; ``None`` = the images folder, or the layout found by
            `find_icdar_layout` when that folder holds neither images nor annotations.
        num_points: 4 for ICDAR2015 quadrilaterals, ``None`` for polygons of any size (see `icdar`).
        corrupt_records: where skipped records are reported. An image without annotation, an annotation
            without image, an undecodable image are skipped whole (location ``<file>:0``); a malformed
            annotation line is skipped alone (location ``<file>:<line>``) and the rest of the image is kept.

    One shard per image, so nodes and workers split the folder between them.
    """
    if num_points is not None and num_points < 3:
        raise ValueError(f"num_points must be None or at least 3, got {num_points}")
    if ground_truth is None:
        images, ground_truth = find_icdar_layout(images)
    images, ground_truth = Path(images), Path(ground_truth)
    for folder in (images, ground_truth):
        if not folder.is_dir():
            raise FileNotFoundError(f"ICDAR folder not found: {folder}")
    image_paths = {path.stem: path for path in images.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES}
    annotation_paths = {path.stem[len("gt_") :]: path for path in ground_truth.glob("gt_*.txt")}
    _report_other_files(images, {*image_paths.values(), *annotation_paths.values()})
    stems = sorted(image_paths.keys() | annotation_paths.keys(), key=_natural_key)
    if not stems:
        raise FileNotFoundError(f"no images or gt_*.txt annotations in {images} / {ground_truth}")
    shards = [
        (
            str(image_paths[stem]) if stem in image_paths else None,
            str(annotation_paths.get(stem, "")) or None,
            stem,
        )
        for stem in stems
    ]
    return IterableDataset.from_generator(
        _generate_images,
        features=DETECTION_FEATURES,
        gen_kwargs={
            "shards": shards,
            "folders": (str(images), str(ground_truth)),
            "num_points": num_points,
            "corrupt_records": corrupt_records or CorruptRecordLog(),
        },
    )


def find_icdar_layout(root: str | Path) -> tuple[Path, Path]:
    """(images folder, annotations folder) of an ICDAR-style dataset given as one folder.

    `root` itself when it holds images or ``gt_*.txt`` files; otherwise the one sub-folder holding images and
    the one holding ``gt_*.txt`` (the same folder or two). Raises `FileNotFoundError` when `root` is missing or
    no sub-folder holds them, `ValueError` when several do (name them with ``ground_truth``).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"ICDAR folder not found: {root}")
    if _has_images(root) or _has_annotations(root):
        return root, root
    subfolders = sorted(path for path in root.iterdir() if path.is_dir())
    found = []
    for what, holds in (("images", _has_images), ("gt_*.txt annotations", _has_annotations)):
        candidates = [folder for folder in subfolders if holds(folder)]
        if not candidates:
            raise FileNotFoundError(f"no {what} in {root} or its sub-folders")
        if len(candidates) > 1:
            raise ValueError(
                f"several sub-folders of {root} hold {what}: {', '.join(path.name for path in candidates)}; "
                "give the images folder and the ground-truth folder separately"
            )
        found.append(candidates[0])
    return found[0], found[1]


def _has_images(folder: Path) -> bool:
    return any(path.suffix.lower() in IMAGE_SUFFIXES for path in folder.iterdir())


def _has_annotations(folder: Path) -> bool:
    return any(folder.glob("gt_*.txt"))


def _report_other_files(folder: Path, used: set[Path]) -> None:
    """One line naming the files of `folder` that are neither images nor annotations (a README, a JSON)."""
    others = sorted(path.name for path in folder.iterdir() if path.is_file() and path not in used)
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        logger.warning(
            "%s: skipped %d files that are neither images nor gt_*.txt: %s", folder, len(others), shown
        )


def write_icdar_folder(samples: Iterable[dict], folder: str | Path, image_format: str = "PNG") -> int:
    """Write detection samples as ``img_N.<ext>`` + ``gt_img_N.txt`` (N from 1) into ``folder``.

    Coordinates are rounded to integers, the convention of ICDAR files (the official evaluation script
    expects it); don't-care regions are written as ``###``. Returns the number of images written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    extension = {"JPEG": "jpg"}.get(image_format.upper(), image_format.lower())
    count = 0
    for count, sample in enumerate(samples, start=1):
        check_detection_sample(sample, count)
        sample["image"].save(folder / f"img_{count}.{extension}", format=image_format)
        lines = [
            format_ground_truth_line(polygon, "###" if ignore else text)
            for polygon, text, ignore in zip(
                sample["polygons"], sample["texts"], sample["ignore"], strict=True
            )
        ]
        (folder / f"gt_img_{count}.txt").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return count


def _generate_images(
    shards: list[tuple[str | None, str | None, str]],
    folders: tuple[str, str],
    num_points: int | None,
    corrupt_records: CorruptRecordLog,
) -> Iterator[dict]:
    for image_path, annotation_path, stem in shards:
        if image_path is None:
            corrupt_records.report(f"{annotation_path}:0", f"no image {stem}.* in {folders[0]}")
            continue
        if annotation_path is None:
            corrupt_records.report(f"{image_path}:0", f"no annotation gt_{stem}.txt in {folders[1]}")
            continue
        try:
            data = Path(image_path).read_bytes()
            _, image = decode_stored_image(data)
        except (OSError, ValueError) as error:
            corrupt_records.report(f"{image_path}:0", str(error))
            continue
        regions = read_ground_truth(
            annotation_path,
            num_points,
            on_malformed=lambda line: corrupt_records.report(f"{line.path}:{line.line_number}", line.reason),
        )
        yield {
            "image": image,
            "polygons": [list(region.points) for region in regions],
            "texts": [region.text for region in regions],
            "ignore": [region.ignore for region in regions],
            "source": image_path,
        }


def _natural_key(stem: str) -> tuple:
    # img_2 before img_10, as the files are numbered. re.split alternates text and digits, so the tuples compare.
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", stem))
