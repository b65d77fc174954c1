"""Which fonts can draw a charset: the built-in faces are tested by rendering, as they have no readable cmap."""

import cv2
import numpy as np
import pytest

from scenetext.data.text_rendering import Font, available_fonts, draws_every_character, render_text_mask


def test_an_ascii_charset_keeps_every_builtin_font():
    assert available_fonts(charset="abcXYZ019!?") == available_fonts()


def test_pillows_bundled_font_is_left_out_of_charsets_it_has_no_glyphs_for():
    # Aileron (Pillow's bundled font) has no umlauts: it would draw boxes where the label says "ä".
    assert not draws_every_character(Font(), "abcä")
    assert draws_every_character(Font(), "abc")
    if hasattr(cv2, "FontFace"):
        assert Font() not in available_fonts(charset="Größe")
    else:  # OpenCV 4's Hershey faces are ASCII only (they draw "?" per byte): nothing built in draws "ö"
        assert not draws_every_character(Font(opencv_face="simplex"), "ö")
        with pytest.raises(ValueError, match="no font can draw every character"):
            available_fonts(charset="Größe")


@pytest.mark.skipif(not hasattr(cv2, "FontFace"), reason="OpenCV 5's embedded faces")
def test_opencv5_faces_draw_cyrillic_and_not_emoji():
    # Kana is not asserted: OpenCV 5.0's faces drew it, 5.1's draw "?" (the coverage check tells them apart).
    assert available_fonts(charset="ЖУКжук") == tuple(Font(opencv_face=f) for f in ("sans", "italic", "uni"))
    with pytest.raises(ValueError, match="no font can draw every character of 'ok\U0001f600'"):
        available_fonts(charset="ok\U0001f600")


def test_a_missing_glyph_is_what_the_font_draws_for_a_code_point_without_one():
    # The test's premise, checked: two different missing characters render the same, two real ones do not.
    font = Font()
    assert np.array_equal(render_text_mask("ä", font, 24), render_text_mask("Ж", font, 24))
    assert not np.array_equal(render_text_mask("a", font, 24), render_text_mask("b", font, 24))


def test_font_files_are_taken_as_given_with_a_charset(tmp_path):
    path = tmp_path / "any.ttf"
    path.write_bytes(b"not checked here")
    assert Font(path=str(path)) in available_fonts([path], charset="Größe")
