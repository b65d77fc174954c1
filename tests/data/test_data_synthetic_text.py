"""Synthetic texts of any charset: scripts without case, dictionaries of other languages."""

import numpy as np
import pytest

from scenetext.data.synthetic import SyntheticWordConfig, render_word_sample
from scenetext.data.synthetic_text import TextSampling
from scenetext.data.text_rendering import Font, available_fonts, draws_every_character
from scenetext.pipelines.image_loading import load_rgb_image

KANA = "あいうえおかきくけこさしすせそたちつてと"
GERMAN = "abcdefghijklmnopqrstuvwxyzäöüßABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÜ"


def _samples(sampling: TextSampling, count: int = 300) -> list[str]:
    rng = np.random.default_rng(0)
    return [sampling.sample(rng) for _ in range(count)]


def test_letters_without_case_make_strings_of_their_own_apart_from_digits():
    texts = _samples(TextSampling(charset=KANA + "0123456789", word_probability=0.0))
    kana_only = [t for t in texts if set(t) <= set(KANA)]
    digits_only = [t for t in texts if t.isdigit()]
    assert len(kana_only) + len(digits_only) == len(texts)  # never mixed
    assert len(kana_only) > 2 * len(digits_only) > 0  # letters are the usual case, as for cased scripts
    assert set("".join(kana_only)) == set(KANA)


def test_a_dictionary_of_another_language_is_written_in_the_charset_casings():
    words = ("größe", "straße", "öl", "tür")
    texts = _samples(TextSampling(charset=GERMAN, words=words, word_probability=1.0, min_length=2))
    allowed = {casing(word) for word in words for casing in (str.lower, str.upper, str.title)}
    assert set(texts) <= allowed
    assert {"größe", "GRÖSSE", "Öl", "TÜR"} <= set(texts)


def test_words_that_would_lose_a_character_to_the_charset_are_redrawn_not_cut():
    # Without "ß" in the charset, "straße" can only appear upper-cased ("STRASSE"), never as "strae".
    charset = GERMAN.replace("ß", "")
    texts = _samples(TextSampling(charset=charset, words=("straße", "tür"), word_probability=1.0))
    assert "strae" not in texts and "Strae" not in texts
    assert {"STRASSE", "tür", "Tür", "TÜR"} <= set(texts)


def test_a_word_file_gives_the_dictionary(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("жук\n\n  дом \nмир\n", encoding="utf-8")
    sampling = TextSampling(
        charset="абвгдежзийклмнопрстуфхцчшщъыьэюя", words_file=str(path), word_probability=1.0
    )
    assert set(_samples(sampling, 60)) == {"жук", "дом", "мир"}


def test_a_bad_word_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"words_file: no file .*missing\.txt"):
        TextSampling(words_file=str(tmp_path / "missing.txt"))
    (tmp_path / "latin1.txt").write_bytes("größe\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt is not UTF-8"):
        TextSampling(words_file=str(tmp_path / "latin1.txt"))
    (tmp_path / "empty.txt").write_text("\n \n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"empty\.txt is empty"):
        TextSampling(words_file=str(tmp_path / "empty.txt"))


@pytest.mark.parametrize(
    "charset", [KANA, "абвгдежзийклмнопрстуфхцчшщъыьэюяАБВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ", GERMAN]
)
def test_the_shipped_generator_renders_crops_of_any_charset_with_fonts_that_draw_it(charset):
    try:
        fonts = available_fonts(charset=charset)
    except ValueError:
        pytest.skip(
            "no built-in font draws this script (OpenCV 4 Hershey faces: ASCII only; OpenCV 5.1 faces: no kana)"
        )
    config = SyntheticWordConfig(text=TextSampling(charset=charset, min_length=3, max_length=6))
    samples = [render_word_sample(index, seed=0, config=config) for index in range(12)]
    for sample in samples:
        assert set(sample["label"]) <= set(charset)
        pixels = np.asarray(load_rgb_image(sample["image"]))
        assert pixels.std() > 5  # ink on the background
    used = {character for sample in samples for character in sample["label"]}
    assert len(used) >= 10  # the script's letters, not a few fallbacks
    # No font that would draw boxes for the script is among those the generator picks from.
    assert Font() not in fonts  # Pillow's bundled font has none of these scripts' letters
    assert all(draws_every_character(font, charset) for font in fonts)
