import numpy as np
import pytest

from scenetext.data import synthetic
from scenetext.data.fonts import find_font_files, fonts_covering
from scenetext.data.synthetic import SyntheticWordConfig, render_word_sample
from scenetext.data.synthetic_text import TextSampling
from scenetext.data.text_rendering import Font, render_text_mask
from tests.fonts_for_tests import write_box_font


def test_find_font_files_walks_folders_and_keeps_only_font_files(tmp_path):
    (tmp_path / "family" / "bold").mkdir(parents=True)
    first = write_box_font(tmp_path / "family" / "Box-Regular.ttf", "abc")
    second = write_box_font(tmp_path / "family" / "bold" / "Box-Bold.otf", "abc")
    (tmp_path / "family" / "README.txt").write_text("not a font")
    assert find_font_files([tmp_path]) == tuple(sorted((str(first), str(second))))


def test_a_missing_font_folder_named_by_the_user_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="font folder not found"):
        find_font_files([tmp_path / "nowhere"])


def test_system_search_adds_the_folders_of_the_environment_variable(tmp_path, monkeypatch):
    font = write_box_font(tmp_path / "Box.ttf", "ab")
    monkeypatch.setenv("SCENETEXT_FONT_DIRS", str(tmp_path))
    assert str(font) in find_font_files()


def test_fonts_covering_keeps_fonts_with_every_visible_character(tmp_path):
    letters = write_box_font(tmp_path / "letters.ttf", "abc")
    digits = write_box_font(tmp_path / "digits.ttf", "0123")
    broken = tmp_path / "broken.ttf"
    broken.write_bytes(b"not a font at all")
    files = [letters, digits, broken]
    assert fonts_covering("ab c", files) == (str(letters),)  # a blank needs no glyph
    assert fonts_covering("012", files) == (str(digits),)
    assert fonts_covering("a0", files) == ()
    # Characters outside ASCII are looked up by code point like any other.
    umlauts = write_box_font(tmp_path / "umlauts.ttf", "äöü")
    assert fonts_covering("üö", [letters, umlauts]) == (str(umlauts),)


def test_a_font_file_renders_its_own_glyphs(tmp_path):
    font = Font(path=str(write_box_font(tmp_path / "Box.ttf", "ab")))
    # Box glyphs: "a" and "b" are two solid boxes (240 and 280 font units wide at 1000 units per em) with a gap
    # of 100 units between them: two runs of inked columns, about 10 and 11 pixels wide at 40 pixels per em.
    mask = render_text_mask("ab", font, size=40)
    inked = (mask.max(axis=0) > 128).astype(int)
    runs = np.flatnonzero(np.diff(np.concatenate([[0], inked, [0]])))
    widths = runs[1::2] - runs[::2]
    assert len(widths) == 2
    assert 8 <= widths[0] <= 11 and 10 <= widths[1] <= 13


def test_synthetic_words_use_the_fonts_found_in_font_dirs(tmp_path):
    letters = write_box_font(tmp_path / "Box.ttf", "abcdefghijklmnopqrstuvwxyz")
    write_box_font(tmp_path / "Digits.ttf", "0123456789")  # cannot draw letters: never picked
    charset = "abcdefghijklmnopqrstuvwxyz"
    fonts = synthetic._fonts((), (str(tmp_path),), charset)
    assert [font.path for font in fonts if font.path and font.path.startswith(str(tmp_path))] == [
        str(letters)
    ]
    # With many font files every font is equally likely; the built-in faces keep at least half otherwise.
    rng = np.random.default_rng(0)
    picks = [synthetic._pick_font(rng, fonts) for _ in range(400)]
    assert sum(font.path == str(letters) for font in picks) > 400 / len(fonts) / 2
    config = SyntheticWordConfig(text=TextSampling(charset=charset), font_dirs=(str(tmp_path),))
    assert render_word_sample(0, seed=0, config=config)["label"]


def test_font_dirs_without_a_covering_font_is_a_clear_error(tmp_path):
    write_box_font(tmp_path / "Digits.ttf", "0123456789")
    config = SyntheticWordConfig(text=TextSampling(charset="abc"), font_dirs=(str(tmp_path),))
    with pytest.raises(FileNotFoundError, match="can draw every character"):
        render_word_sample(0, seed=0, config=config)
