"""Finding font files on the machine and choosing those that can draw a charset.

The synthetic data looks more like the real world the more typefaces it is drawn in. Installed font packages
(`scripts/install_fonts.sh` installs a set of free Debian ones) put TrueType/OpenType files under the system font
folders; `find_font_files` lists them and `fonts_covering` keeps the ones whose character map has every
character of a charset, so that a word is never drawn with missing-glyph boxes.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from fontTools.ttLib import TTCollection, TTFont, TTLibError

from .file_search import find_files

# Where Linux distributions, macOS and Windows keep fonts; users add folders with SCENETEXT_FONT_DIRS
# (os.pathsep-separated).
SYSTEM_FONT_DIRS = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.local/share/fonts",
    "~/.fonts",
    "/Library/Fonts",
    "/System/Library/Fonts",
    "C:/Windows/Fonts",
)
FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")


def find_font_files(font_dirs: Sequence[str | Path] | None = None) -> tuple[str, ...]:
    """The font files under ``font_dirs`` (searched recursively), sorted so that the same machine gives the
    same list; ``None`` searches `SYSTEM_FONT_DIRS` and the folders in ``$SCENETEXT_FONT_DIRS``. A folder that
    was asked for by name and does not exist is an error; missing system folders are skipped."""
    if font_dirs is None:
        extra = [folder for folder in os.environ.get("SCENETEXT_FONT_DIRS", "").split(os.pathsep) if folder]
        folders, required = [*extra, *SYSTEM_FONT_DIRS], set(extra)
    else:
        folders, required = [str(folder) for folder in font_dirs], {str(folder) for folder in font_dirs}
    return find_files(folders, FONT_SUFFIXES, required, "font")


def fonts_covering(charset: str, font_files: Iterable[str | Path]) -> tuple[str, ...]:
    """The files among ``font_files`` that have a glyph for every visible character of ``charset`` (blanks
    need none). Files fontTools cannot read are left out, as are symbol and icon fonts that map letters to
    pictures only in their private-use area (they fail the coverage test on ordinary characters)."""
    wanted = frozenset(ord(character) for character in charset if not character.isspace())
    return tuple(str(path) for path in font_files if wanted <= _code_points(str(path)))


@functools.lru_cache(maxsize=4096)
def _code_points(path: str) -> frozenset[int]:
    """The characters a font file maps to glyphs (for a collection, those of its first face, the one that
    Pillow opens by default)."""
    try:
        if path.lower().endswith((".ttc", ".otc")):
            font = TTCollection(path, lazy=True).fonts[0]
        else:
            font = TTFont(path, lazy=True, fontNumber=0)
        with font:
            cmap = font.getBestCmap() or {}
    except (TTLibError, OSError, AssertionError, KeyError, IndexError):
        return frozenset()
    return frozenset(cmap)
