"""Listing the files of one kind under folders: the fonts and background photos of the synthetic data."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path


def find_files(
    folders: Sequence[str], suffixes: Collection[str], required: Collection[str], kind: str
) -> tuple[str, ...]:
    """The files under `folders` (searched recursively) whose suffix, in any case, is one of `suffixes`, sorted
    so that the same machine gives the same list. A folder among `required` that does not exist is an error
    naming it a `kind` folder; other missing folders are skipped."""
    found = set()
    for folder in folders:
        root = Path(folder).expanduser()
        if not root.is_dir():
            if folder in required:
                raise FileNotFoundError(f"{kind} folder not found: {folder}")
            continue
        found.update(
            str(path) for path in root.rglob("*") if path.suffix.lower() in suffixes and path.is_file()
        )
    return tuple(sorted(found))
