"""What the synthetic images say: dictionary words in the casings of signs, and random strings, for any charset
(scripts with and without letter case)."""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass

import numpy as np

from scenetext.processors.clip4str.tokenization_clip4str import CharsetAdapter

# Everyday and shop-sign words: enough variety of letter shapes and lengths for a dictionary prior, small
# enough to live in the source.
_WORD_LIST = """
    the and for you with open closed exit entrance push pull stop sale new free hotel cafe coffee bar pizza
    bakery bank pharmacy hospital police station street road avenue park parking taxi bus train airport
    city center market shop store mall food restaurant kitchen menu price today only welcome hello world
    please thank thanks toilet room floor level north south east west left right ahead danger warning
    caution slow school zone area private public office post mail phone number open24 fresh fruit milk
    bread cheese wine beer tea juice water ice cream chicken burger fries salad soup rice noodle sushi
    grill house home garden flower book books library museum gallery theatre cinema music art photo studio
    beauty salon hair nails fashion shoes jeans sport fitness gym club dance night day time year week month
    monday friday sunday star moon sun sky blue red green black white gold silver love life happy best good
    great big small long short high low fast quick easy smart super mega king queen royal grand central
    national international global service services repair auto car cars motor oil gas fuel energy power
    electric tower bridge river lake beach sea ocean island port harbor gate door window wall stairs lift
    elevator way one two three four five six seven eight nine ten hundred first second third main old york
    london paris tokyo berlin rome madrid china india america europe asia africa express delivery online
    shopping discount offer deal limited edition special premium quality original classic modern vintage
    design company group team family friends church temple castle palace square plaza hall court county
    state union federal council university college academy institute science technology computer digital
    mobile network wireless internet video games toys kids baby junior senior adult student teacher doctor
    dental clinic health care medical emergency fire safety security guard alarm camera notice keep clear
    no smoking entry staff members visitors information tickets booking reception lobby lounge suite
"""
WORDS = tuple(_WORD_LIST.split())

# "caseless": letters of scripts without case (kana, CJK, Arabic, Hebrew, Thai, ...), written as they are.
# "number": digits and the charset's other symbols that are not letters, never mixed with letters.
_CASINGS = ("lower", "upper", "title", "caseless", "number")
_LETTER_CASINGS = _CASINGS[:4]
_CASING_WEIGHTS = tuple(zip(_CASINGS, (0.4, 0.27, 0.21, 0.4, 0.12), strict=True))


@dataclass(frozen=True)
class TextSampling:
    """How synthetic texts are drawn.

    Attributes:
        charset: the characters a text may contain, of any script (the fonts must be able to draw them; the
            built-in ones cover printable ASCII, and `SyntheticWordConfig` can pick fonts by coverage). Dictionary
            words are mapped onto it with the CLIP4STR charset adapter (a lowercase-only charset lowercases them);
            a word that would lose a character to it (an "ß" for a charset without one) is redrawn, not cut.
        min_length / max_length: length range of every text; dictionary words outside it are redrawn.
        word_probability: share of texts taken from the dictionary rather than random strings.
        words: the dictionary; `WORDS` (English shop-sign words) by default.
        words_file: a UTF-8 text file with one dictionary entry per line (blank lines skipped), read instead of
            `words` (e.g. ``/usr/share/dict/words``): the way to give a dictionary of another language.

    Words and random strings alike are written in one casing: lower, UPPER or Title, as far as the charset
    has letters of that case, or as they are for letters without case; random strings of the "number" kind hold
    the charset's characters that are not letters (digits, symbols) only. Mixing cases or letters and digits
    character by character would make ``I``/``l``, ``O``/``0`` and ``S``/``5`` unreadable even for people, and
    leave a recognizer an error floor no training removes.
    """

    charset: str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    min_length: int = 1
    max_length: int = 12
    word_probability: float = 0.5
    words: tuple[str, ...] = WORDS
    words_file: str | None = None

    def __post_init__(self) -> None:
        if self.words_file is not None:
            _read_words(self.words_file)  # a bad file fails here, not at the first sample
        if not self.charset.strip():
            raise ValueError("TextSampling.charset must contain at least one visible character")
        if not 1 <= self.min_length <= self.max_length:
            raise ValueError(
                f"need 1 <= min_length <= max_length, got min_length={self.min_length}, max_length={self.max_length}"
            )
        if not 0.0 <= self.word_probability <= 1.0:
            raise ValueError(f"word_probability must be in [0, 1], got {self.word_probability}")

    def sample(self, rng: np.random.Generator) -> str:
        """One text: a dictionary word (if one fits charset and length) or a random string."""
        alphabets = _alphabets(self.charset)
        if rng.random() < self.word_probability:
            casing = _pick_casing(rng, alphabets, _LETTER_CASINGS)
            word = casing and self._sample_word(rng, casing)
            if word:
                return word
        casing = _pick_casing(rng, alphabets, _CASINGS)
        length = int(rng.integers(self.min_length, self.max_length + 1))
        letters = alphabets["lower" if casing == "title" else casing]
        text = [letters[i] for i in rng.integers(0, len(letters), size=length)]
        if casing == "title":
            text[0] = alphabets["upper"][int(rng.integers(len(alphabets["upper"])))]
        return "".join(text)

    def _sample_word(self, rng: np.random.Generator, casing: str) -> str | None:
        adapter = _charset_adapter(self.charset)
        words = _read_words(self.words_file) if self.words_file else self.words
        for _ in range(8):
            cased = _write_in_casing(words[int(rng.integers(len(words)))], casing)
            word = adapter(cased)
            if len(word) == len(cased) and self.min_length <= len(word) <= self.max_length:
                return word
        return None


def _write_in_casing(word: str, casing: str) -> str:
    return word if casing == "caseless" else getattr(word, casing)()


def _pick_casing(rng: np.random.Generator, alphabets: dict, kinds: tuple[str, ...]) -> str | None:
    """One of ``kinds`` that the charset allows, drawn with `_CASING_WEIGHTS`; None if none is allowed."""
    probabilities = np.array(
        [p if c in kinds and c in alphabets["casings"] else 0.0 for c, p in _CASING_WEIGHTS]
    )
    if probabilities.sum() == 0:
        return None
    return _CASINGS[int(rng.choice(len(_CASINGS), p=probabilities / probabilities.sum()))]


@functools.lru_cache(maxsize=16)
def _alphabets(charset: str) -> dict:
    """The lowercase letters, uppercase letters, letters without case and other characters of ``charset``, and
    the casings it allows."""
    # Blanks are left out so that every drawn character leaves ink (a space has no box of its own).
    visible = "".join(dict.fromkeys(character for character in charset if not character.isspace()))
    cased = {character for character in visible if character.islower() or character.isupper()}
    alphabets = {
        "lower": "".join(character for character in visible if character.islower()),
        "upper": "".join(character for character in visible if character.isupper()),
        "caseless": "".join(c for c in visible if c not in cased and unicodedata.category(c).startswith("L")),
        "number": "".join(
            c for c in visible if c not in cased and not unicodedata.category(c).startswith("L")
        ),
    }
    casings = {casing for casing in ("lower", "upper", "caseless", "number") if alphabets[casing]}
    if {"lower", "upper"} <= casings:
        casings.add("title")
    return {**alphabets, "casings": casings}


@functools.lru_cache(maxsize=4)
def _read_words(path: str) -> tuple[str, ...]:
    """The entries of a UTF-8 word file, one per line, surrounding blanks removed and blank lines skipped; read
    once per process (the config holds the path, so it pickles small to DataLoader workers)."""
    try:
        with open(path, encoding="utf-8") as file:
            words = tuple(word for word in (line.strip() for line in file) if word)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"TextSampling.words_file: no file {path}") from error
    except UnicodeDecodeError as error:
        raise ValueError(f"TextSampling.words_file: {path} is not UTF-8 text ({error})") from error
    if not words:
        raise ValueError(f"TextSampling.words_file: the word list {path} is empty")
    return words


@functools.lru_cache(maxsize=16)
def _charset_adapter(charset: str) -> CharsetAdapter:
    return CharsetAdapter(charset)
