"""Build the real-photo training data of the embedded defaults from its public sources (training splits only).

    python -m scenetext.data.prepare_real_data OUT [--git-cache DIR] [--git-dir OWNER/NAME=PATH ...]

Each source is a public Git repository at a pinned commit (`SOURCES`); a repository is cloned (bare) into
``--git-cache`` unless a local clone is named with ``--git-dir``. Only training splits are read: their test
splits sit next to them and are never touched, because the shipped models are measured on them.

Writes, under OUT:
    words/train/      LMDB of real word crops (ICDAR2015, IIIT5K and SVT training crops), 19 of every 20
    words/val/        LMDB of the other 1 of 20: held out from training, for choosing checkpoints and thresholds
    backgrounds/      text-free regions of the MSRA-TD500 training photos (its text lines and a margin around
                      them are avoided), for the synthetic data's ``photo`` backgrounds and hard negatives
    SOURCES.md        the sources, their commits and the counts written

The labels are kept as the datasets spell them (case, punctuation); the training sources apply the model's
charset and label rules when they read them.
"""

from __future__ import annotations

import argparse
import io
import math
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from scenetext.pipelines.image_loading import load_rgb_image

from .lmdb import write_lmdb


@dataclass(frozen=True)
class GitSource:
    repo: str  # OWNER/NAME on GitHub
    commit: str
    path: str  # the training split inside the repository
    what: str


SOURCES = {
    "icdar2015": GitSource(
        "ocr-algorithm-and-data/ICDAR2015",
        "50f031dff55faec509f34d58b0b073e14a129360",
        "WordRecognition/TrainingSet",
        "ICDAR 2015 Incidental Scene Text, task 4.3 word crops, training set",
    ),
    "iiit5k": GitSource(
        "Jyouhou/Case-Sensitive-Scene-Text-Recognition-Datasets",
        "2de20adcaa486e69810cef3f611a36cb71bf18f8",
        "iiit5k_train",
        "IIIT 5K-Words, training set (case-sensitive labels)",
    ),
    "svt": GitSource(
        "Jyouhou/Case-Sensitive-Scene-Text-Recognition-Datasets",
        "2de20adcaa486e69810cef3f611a36cb71bf18f8",
        "svt_train",
        "Street View Text, training set (case-sensitive labels)",
    ),
    "msra-td500": GitSource(
        "rudolflam/comp_vision_project",
        "9ab57226cd16abddb67d1c692a8977a907e0c7fd",
        "MSRA-TD500/train",
        "MSRA-TD500, training photos (text-free regions only, as backgrounds)",
    ),
}
VALIDATION_EVERY = 20  # every 20th crop is held out
BACKGROUNDS_PER_PHOTO = 4


def read_split(git_dir: Path, source: GitSource) -> dict[str, bytes]:
    """The files of ``source.path`` at ``source.commit`` of the repository ``git_dir``, keyed by their path
    relative to ``source.path``."""
    archive = subprocess.run(
        ["git", f"--git-dir={git_dir}", "archive", "--format=tar", source.commit, source.path],
        check=True,
        capture_output=True,
    ).stdout
    files = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                files[member.name[len(source.path) + 1 :]] = tar.extractfile(member).read()
    if not files:
        raise FileNotFoundError(f"{source.repo}@{source.commit[:10]} has no files under {source.path}")
    return files


def icdar2015_crops(files: dict[str, bytes]) -> Iterator[tuple[str, bytes, str]]:
    """``(name, image bytes, label)`` of the ICDAR2015 word crops: ``gt.txt`` lines read
    ``word_1.png, "Genaxis Theatre"`` (quotes inside the label escaped with a backslash)."""
    for number, line in enumerate(files["gt.txt"].decode("utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        name, separator, quoted = line.partition(", ")
        if not separator or len(quoted) < 2 or quoted[0] != '"' or quoted[-1] != '"':
            raise ValueError(
                f"ICDAR2015 gt.txt line {number}: expected 'word_N.png, \"label\"', got {line!r}"
            )
        if name not in files:
            raise FileNotFoundError(f"ICDAR2015 gt.txt line {number} names {name}, which the split lacks")
        yield name, files[name], quoted[1:-1].replace('\\"', '"').replace("\\\\", "\\")


def numbered_crops(files: dict[str, bytes]) -> Iterator[tuple[str, bytes, str]]:
    """``(name, image bytes, label)`` of a split laid out as ``IMG/N.jpg`` with ``label/N.txt`` beside."""
    for name in sorted(files, key=_natural_key):
        if not name.startswith("IMG/"):
            continue
        label_name = f"label/{Path(name).stem}.txt"
        if label_name not in files:
            raise FileNotFoundError(f"{name} has no label file {label_name}")
        yield name, files[name], files[label_name].decode("utf-8-sig").strip()


def text_free_regions(
    photo: Image.Image, gt: str, rng: np.random.Generator, count: int
) -> Iterator[Image.Image]:
    """Up to ``count`` rectangles of ``photo`` that touch none of its MSRA-TD500 text lines (each line
    ``index difficult x y w h theta``: a box rotated by ``theta`` radians about its centre), kept a margin of
    a fifth of the line height away."""
    width, height = photo.size
    text = np.zeros((height, width), np.uint8)
    for line in gt.splitlines():
        fields = line.split()
        if len(fields) != 7:
            continue
        x, y, w, h, theta = (float(value) for value in fields[2:])
        centre = (x + w / 2, y + h / 2)
        corners = cv2.boxPoints((centre, (w + 0.4 * h, 1.4 * h), math.degrees(theta)))
        cv2.fillPoly(text, [np.round(corners).astype(np.int32)], 1)
    # A summed-area table answers "is there text in this rectangle" in constant time.
    table = cv2.integral(text)
    found = 0
    for _ in range(50 * count):
        side = int(rng.uniform(0.2, 0.5) * min(width, height))
        region_width = min(width, int(side * rng.uniform(0.7, 1.6)))
        left, top = int(rng.integers(0, width - region_width + 1)), int(rng.integers(0, height - side + 1))
        right, bottom = left + region_width, top + side
        if table[bottom, right] - table[top, right] - table[bottom, left] + table[top, left] == 0:
            yield photo.crop((left, top, right, bottom))
            found += 1
            if found == count:
                return


def prepare(out: Path, git_dirs: dict[str, Path], sources: dict[str, GitSource] = SOURCES) -> dict[str, int]:
    """Write the crops and backgrounds of ``sources`` (keys as in `SOURCES`) under ``out`` (see the module
    docstring), reading each repository from ``git_dirs[source.repo]``; returns the counts written."""
    crops: list[dict] = []
    for name, reader in (("icdar2015", icdar2015_crops), ("iiit5k", numbered_crops), ("svt", numbered_crops)):
        source = sources[name]
        for file_name, data, label in reader(read_split(git_dirs[source.repo], source)):
            if label:
                crops.append({"image": load_rgb_image(data), "label": label, "source": f"{name}:{file_name}"})
    train = [crop for index, crop in enumerate(crops) if index % VALIDATION_EVERY != VALIDATION_EVERY - 1]
    val = [crop for index, crop in enumerate(crops) if index % VALIDATION_EVERY == VALIDATION_EVERY - 1]
    counts = {
        "words/train": write_lmdb(train, out / "words" / "train"),
        "words/val": write_lmdb(val, out / "words" / "val"),
    }
    source = sources["msra-td500"]
    files = read_split(git_dirs[source.repo], source)
    backgrounds = out / "backgrounds"
    backgrounds.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    written = 0
    for name in sorted(files):
        if not name.upper().endswith(".JPG"):
            continue
        gt = files.get(f"{Path(name).stem}.gt", b"").decode("utf-8")
        photo = load_rgb_image(files[name])
        for index, region in enumerate(text_free_regions(photo, gt, rng, BACKGROUNDS_PER_PHOTO)):
            region.save(backgrounds / f"{Path(name).stem}_{index}.jpg", quality=92)
            written += 1
    counts["backgrounds"] = written
    _write_sources(out, counts, sources)
    return counts


def _write_sources(out: Path, counts: dict[str, int], sources: dict[str, GitSource]) -> None:
    lines = ["# Real training data (training splits only)", ""]
    lines += [
        f"- {source.what}: github.com/{source.repo} @ {source.commit}, `{source.path}`"
        for source in sources.values()
    ]
    lines += ["", *(f"- {name}: {count}" for name, count in counts.items())]
    (out / "SOURCES.md").write_text("\n".join(lines) + "\n")


def _git_dir(repo: str, overrides: dict[str, Path], cache: Path) -> Path:
    if repo in overrides:
        return overrides[repo]
    target = cache / repo.replace("/", "+")
    if not target.exists():
        subprocess.run(["git", "clone", "--bare", f"https://github.com/{repo}", str(target)], check=True)
    return target


def _natural_key(name: str) -> tuple:
    stem = Path(name).stem
    return (Path(name).parent.as_posix(), int(stem) if stem.isdigit() else math.inf, stem)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write (outside the repository)")
    parser.add_argument("--git-cache", type=Path, default=Path("~/.cache/scenetext/git").expanduser())
    parser.add_argument(
        "--git-dir",
        action="append",
        default=[],
        metavar="OWNER/NAME=PATH",
        help="a local clone (bare or not: its .git folder) to use instead of cloning",
    )
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.git_dir:
        repo, separator, path = item.partition("=")
        if not separator:
            parser.error(f"--git-dir takes OWNER/NAME=PATH, got {item!r}")
        overrides[repo] = Path(path)
    args.git_cache.mkdir(parents=True, exist_ok=True)
    git_dirs = {source.repo: _git_dir(source.repo, overrides, args.git_cache) for source in SOURCES.values()}
    for name, count in prepare(args.out, git_dirs).items():
        print(f"{name}: {count}")


if __name__ == "__main__":
    main()
