"""Real font files made on the spot with fontTools, so that font discovery, coverage and rendering with files
are tested without any font package installed."""

from __future__ import annotations

from pathlib import Path

from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen


def write_box_font(path: Path, characters: str, family: str = "BoxTest") -> Path:
    """A TrueType font whose glyph for each of ``characters`` is a filled box of its own width (so that
    different characters draw different ink), written to ``path``."""
    names = [".notdef", *(f"uni{ord(character):04X}" for character in characters)]
    glyphs, metrics = {}, {}
    for index, name in enumerate(names):
        pen = TTGlyphPen(None)
        width = 300 + 40 * (index % 8)
        if name != ".notdef":
            pen.moveTo((50, 0))
            pen.lineTo((50, 700))
            pen.lineTo((width - 50, 700))
            pen.lineTo((width - 50, 0))
            pen.closePath()
        glyphs[name] = pen.glyph()
        metrics[name] = (width, 50)
    builder = FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder(names)
    builder.setupCharacterMap(
        {ord(character): name for character, name in zip(characters, names[1:], strict=True)}
    )
    builder.setupGlyf(glyphs)
    builder.setupHorizontalMetrics(metrics)
    builder.setupHorizontalHeader(ascent=800, descent=-200)
    builder.setupNameTable({"familyName": family, "styleName": "Regular"})
    builder.setupOS2(sTypoAscender=800, usWinAscent=800, usWinDescent=200)
    builder.setupPost()
    builder.save(str(path))
    return path
