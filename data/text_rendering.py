"""Rendering words as ink masks with fonts that ship with installed packages, for the synthetic data.

Two families need nothing beyond the project's dependencies: Pillow's bundled TrueType font (Aileron,
``ImageFont.load_default(size=...)``, when Pillow has FreeType) and OpenCV's own faces (embedded TrueType
faces in OpenCV 5, Hershey vector fonts in OpenCV 4). Users add their own TrueType/OpenType files with
``font_paths``. A mask is a ``uint8`` array, 255 = ink, cropped tightly
to the ink, so its frame is the exact text box that the scene ground truth is made of.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

# OpenCV 5 replaced the Hershey vector fonts with embedded TrueType faces ("sans" and "italic" are variable
# fonts with a weight axis, "uni" a second sans); OpenCV 4 still draws Hershey faces. Both are used the same way.
_OPENCV5_FACES = ("sans", "italic", "uni")
# The Hershey faces legible at word-crop sizes (FONT_HERSHEY_PLAIN and COMPLEX_SMALL are too thin).
_HERSHEY_FACES = {"simplex": 0, "duplex": 2, "complex": 3, "triplex": 4, "script_simplex": 6}
_HERSHEY_ITALIC = 16  # cv2.FONT_ITALIC


@dataclass(frozen=True)
class Font:
    """A font the renderer can use: a TrueType/OpenType file (``path``; ``None`` = Pillow's bundled font)
    or one of OpenCV's faces (``opencv_face``: an embedded face of OpenCV 5, or a Hershey face of OpenCV 4,
    with ``-italic`` appended for the italic variant)."""

    path: str | None = None
    opencv_face: str | None = None


# A code point no font has a glyph for (plane 15, private use): what a font draws for it is its missing glyph,
# whatever that looks like (a box for Pillow's font, "?" for OpenCV's faces).
_UNDRAWABLE = "\U000f0000"


def available_fonts(
    font_paths: Sequence[str | Path] = (), include_builtin: bool = True, charset: str | None = None
) -> tuple[Font, ...]:
    """The fonts to render with: the files in ``font_paths`` plus, with ``include_builtin``, Pillow's bundled
    font and OpenCV's faces. Which OpenCV faces exist depends on its major version (see above). With a
    ``charset``, the built-in fonts that cannot draw all of it are left out (Pillow's bundled font has no "ä",
    OpenCV 4's Hershey faces no letter beyond ASCII); the files are taken as given (choose them by coverage with
    `scenetext.data.fonts`)."""
    fonts = []
    for path in font_paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"font file not found: {path}")
        fonts.append(Font(path=str(path)))
    if include_builtin:
        if features.check("freetype2"):
            fonts.append(Font())
        if hasattr(cv2, "FontFace"):
            fonts.extend(Font(opencv_face=face) for face in _OPENCV5_FACES)
        else:
            fonts.extend(Font(opencv_face=face) for face in _HERSHEY_FACES)
            fonts.extend(Font(opencv_face=f"{face}-italic") for face in ("simplex", "complex"))
        if charset is not None:
            fonts = [font for font in fonts if font.path is not None or draws_every_character(font, charset)]
    if not fonts:
        if charset is not None and include_builtin:
            raise ValueError(
                f"no font can draw every character of {charset!r}: no built-in font does; pass font files that "
                "cover it (font_paths, or fonts found by coverage)"
            )
        raise ValueError("no font to render with: pass font_paths or include_builtin=True")
    return tuple(fonts)


@functools.lru_cache(maxsize=64)
def draws_every_character(font: Font, charset: str) -> bool:
    """Whether ``font`` has a glyph for every non-ASCII character of ``charset``: a character is missing when it
    renders exactly as a code point no font has. This works for the built-in faces, whose character maps cannot
    be read. Printable ASCII is not tested: every built-in font draws it, and OpenCV's missing glyph is "?"."""
    if font.opencv_face is not None and font.opencv_face.removesuffix("-italic") in _HERSHEY_FACES:
        # Hershey faces are ASCII only; they draw "?" per UTF-8 byte, which the comparison below cannot tell from
        # a glyph (the stand-in code point has another number of bytes).
        return all(character.isascii() or character.isspace() for character in charset)
    missing = render_text_mask(_UNDRAWABLE, font, 24)
    return not any(
        np.array_equal(render_text_mask(character, font, 24), missing)
        for character in dict.fromkeys(charset)
        if not character.isascii() and not character.isspace()
    )


def render_text_mask(
    text: str, font: Font, size: int, boldness: float = 0.0, slant: float = 0.0
) -> np.ndarray:
    """Render ``text`` as a tight ink mask (``uint8``, 255 = ink).

    Args:
        text: the characters to draw (not blank).
        font: which font.
        size: the font size in pixels (em size; Hershey faces are scaled to a similar cap height).
        boldness: 0 = regular weight, 1 = bold, negative = lighter where the font has a weight axis;
            otherwise the strokes are thickened by about ``boldness * size / 24`` pixels.
        slant: horizontal shear (the top moves right by ``slant * height``), e.g. 0.2 for an oblique look.
    """
    if not text.strip():
        raise ValueError(f"cannot render an empty or blank text: {text!r}")
    if size < 4:
        raise ValueError(f"font size must be at least 4 pixels, got {size}")
    stroke = max(0, round(boldness * size / 24))
    if font.opencv_face is None:
        mask = _render_truetype(text, font.path, size, stroke)
    elif font.opencv_face in _OPENCV5_FACES:
        mask = _render_opencv5(text, font.opencv_face, size, boldness)
    else:
        mask = _render_hershey(text, font.opencv_face, size, stroke)
    if slant:
        mask = _shear(mask, slant)
    return _crop_to_ink(mask, text)


@functools.lru_cache(maxsize=256)
def _truetype_font(path: str | None, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size) if path is None else ImageFont.truetype(path, size=size)


def _render_truetype(text: str, path: str | None, size: int, stroke: int) -> np.ndarray:
    font = _truetype_font(path, size)
    left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
    margin = 2 + stroke
    canvas = Image.new("L", (right - left + 2 * margin, bottom - top + 2 * margin), 0)
    ImageDraw.Draw(canvas).text(
        (margin - left, margin - top), text, fill=255, font=font, stroke_width=stroke, stroke_fill=255
    )
    return np.asarray(canvas)


def _render_opencv5(text: str, face: str, size: int, boldness: float) -> np.ndarray:
    weight = int(np.clip(400 + 400 * boldness, 100, 900))
    margin = size
    # No advance-width query exists for these faces: the canvas allows 1.5 em per character, wider than any
    # glyph of the embedded faces even at full weight.
    canvas = np.zeros((3 * size, int(1.5 * size * len(text)) + 2 * margin), np.uint8)
    cv2.putText(canvas, text, (margin, 2 * size), 255, _opencv5_font(face), size, weight)
    return canvas


@functools.lru_cache(maxsize=8)
def _opencv5_font(face: str) -> cv2.FontFace:
    return cv2.FontFace(face)


def _render_hershey(text: str, face_name: str, size: int, stroke: int) -> np.ndarray:
    italic = face_name.endswith("-italic")
    face = _HERSHEY_FACES[face_name.removesuffix("-italic")] | (_HERSHEY_ITALIC if italic else 0)
    # Hershey glyphs are ~22 px tall (cap height) at scale 1; a TrueType em of `size` has caps of ~0.7 size.
    (_, reference_height), _ = cv2.getTextSize("H", face, 1.0, 1)
    scale = 0.7 * size / reference_height
    thickness = max(1, round(size / 16)) + stroke
    (width, height), baseline = cv2.getTextSize(text, face, scale, thickness)
    margin = thickness + 2 + (height if italic else 0)
    canvas = np.zeros((height + baseline + 2 * margin, width + 2 * margin), np.uint8)
    cv2.putText(canvas, text, (margin, margin + height), face, scale, 255, thickness, cv2.LINE_AA)
    return canvas


def _shear(mask: np.ndarray, slant: float) -> np.ndarray:
    height, width = mask.shape
    extra = int(np.ceil(abs(slant) * height))
    # Forward map x_out = x_in + slant * (height - y) (+ extra for a negative slant, to stay in frame);
    # PIL's affine transform takes the inverse, output -> input.
    shift = -slant * height - (extra if slant < 0 else 0)
    image = Image.fromarray(mask).transform(
        (width + extra, height), Image.Transform.AFFINE, (1, slant, shift, 0, 1, 0), Image.Resampling.BICUBIC
    )
    return np.asarray(image)


def _crop_to_ink(mask: np.ndarray, text: str) -> np.ndarray:
    rows = np.flatnonzero(mask.max(axis=1))
    columns = np.flatnonzero(mask.max(axis=0))
    if rows.size == 0:
        raise ValueError(f"the font drew no ink for {text!r}")
    return np.ascontiguousarray(mask[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1])
