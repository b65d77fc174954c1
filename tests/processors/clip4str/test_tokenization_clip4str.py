import json
import string

import pytest
import torch
from safetensors.torch import load_file

from scenetext.processors.clip4str.tokenization_clip4str import (
    DEFAULT_CHARSET,
    Clip4StrTokenizer,
    charset_from_labels,
    normalize_label,
    preprocess_label,
)

CHARSET_36 = string.digits + string.ascii_lowercase
CHARSET_62 = CHARSET_36 + string.ascii_uppercase
CHARSET_94 = CHARSET_62 + string.punctuation


@pytest.fixture(scope="module")
def official(fixtures_dir):
    config = json.loads((fixtures_dir / "clip4str/a/config.json").read_text())
    io = load_file(fixtures_dir / "clip4str/a/io.safetensors")
    return config, io


def test_default_charset_is_the_official_94_character_charset(official):
    config, _ = official
    assert DEFAULT_CHARSET == CHARSET_94 == config["charset_train"]


def test_vocabulary_ids_follow_the_official_order(official):
    config, _ = official
    tokenizer = Clip4StrTokenizer()
    itos = config["special_tokens"]["itos"]
    assert tokenizer.convert_ids_to_tokens(list(range(len(itos)))) == itos
    assert len(tokenizer) == tokenizer.vocab_size == 97
    specials = config["special_tokens"]
    assert (tokenizer.eos_token_id, tokenizer.bos_token_id, tokenizer.pad_token_id) == (
        specials["eos_id"],
        specials["bos_id"],
        specials["pad_id"],
    )


def test_labels_encode_exactly_as_the_official_tokenizer(official):
    config, io = official
    tokenizer = Clip4StrTokenizer()
    labels = tokenizer(config["training_loss"]["labels"], padding=True, return_tensors="pt")["input_ids"]
    assert labels.dtype == torch.long
    assert torch.equal(labels, io["train_tgt"])


def test_encode_then_decode_gives_the_label_back():
    tokenizer = Clip4StrTokenizer()
    labels = ["Hello", "CLIP4STR!", "a", "~{|}`", "0123456789012345678901234"]
    ids = tokenizer(labels, padding=True)["input_ids"]
    assert tokenizer.batch_decode(ids, skip_special_tokens=True) == labels
    assert tokenizer.decode(ids[2]) == "[B]a[E]" + "[P]" * 24


def test_decode_joins_characters_without_spaces_and_stops_at_the_first_end_token():
    tokenizer = Clip4StrTokenizer(charset="abc")
    assert tokenizer.decode([1, 2, 3, 1]) == "abca"
    assert tokenizer.decode([1, 2, 0, 3], skip_special_tokens=True) == "ab"
    assert tokenizer.decode([1, 2, 0, 3]) == "ab[E]c"
    assert tokenizer.decode([0, 1], skip_special_tokens=True) == ""


def test_special_token_text_in_a_label_is_plain_characters():
    tokenizer = Clip4StrTokenizer()
    ids = tokenizer("[E]")["input_ids"]
    assert ids == [95, 85, 41, 87, 0]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "[E]"


def test_max_length_padding_gives_the_fixed_model_layout():
    tokenizer = Clip4StrTokenizer()
    labels = tokenizer(["ab"], padding="max_length", return_tensors="pt")["input_ids"]
    assert labels.tolist() == [[95, 11, 12, 0] + [96] * 23]


def test_save_and_load_keep_charset_length_and_mode(tmp_path):
    tokenizer = Clip4StrTokenizer(charset=CHARSET_36, max_label_length=7, normalize=True)
    tokenizer.save_pretrained(tmp_path)
    vocab = json.loads((tmp_path / "vocab.json").read_text())
    assert vocab == {"[E]": 0, **{c: i + 1 for i, c in enumerate(CHARSET_36)}, "[B]": 37, "[P]": 38}
    loaded = Clip4StrTokenizer.from_pretrained(tmp_path)
    assert (loaded.charset, loaded.max_label_length, loaded.normalize) == (CHARSET_36, 7, True)
    assert loaded(["Ab c"])["input_ids"] == tokenizer(["Ab c"])["input_ids"] == [[37, 11, 12, 13, 0]]


def test_vocab_file_and_a_different_charset_conflict(tmp_path):
    Clip4StrTokenizer(charset="abc").save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="does not match the charset stored in"):
        Clip4StrTokenizer(vocab_file=str(tmp_path / "vocab.json"), charset="abd")


# Official normalisation (normalize=True), per charset: 36 lowercase alphanumerics, 62 cased, 94 with
# punctuation.
@pytest.mark.parametrize(
    ("label", "expected_36", "expected_62", "expected_94"),
    [
        (" he llo\t", "hello", "hello", "hello"),
        ("Café", "cafe", "Cafe", "Cafe"),
        ("ÀÉÎõü", "aeiou", "AEIou", "AEIou"),
        ("ＡＢＣ１！", "abc1", "ABC1", "ABC1!"),
        ("Hello!", "hello", "Hello", "Hello!"),
        ("a€b", "ab", "ab", "ab"),
        ("don't", "dont", "dont", "don't"),
    ],
)
def test_normalize_applies_the_official_pipeline(label, expected_36, expected_62, expected_94):
    for charset, expected in (
        (CHARSET_36, expected_36),
        (CHARSET_62, expected_62),
        (CHARSET_94, expected_94),
    ):
        tokenizer = Clip4StrTokenizer(charset=charset)
        assert tokenizer.check_label(label, normalize=True) == expected
        assert tokenizer.preprocess_label(label) == expected == preprocess_label(label, charset)
        ids = tokenizer(label, normalize=True)["input_ids"]
        assert tokenizer.decode(ids, skip_special_tokens=True) == expected


def test_normalize_upper_cases_for_an_uppercase_only_charset():
    tokenizer = Clip4StrTokenizer(charset=string.ascii_uppercase + string.digits)
    assert tokenizer.check_label("Exit 9b", normalize=True) == "EXIT9B"


def test_normalize_can_be_the_tokenizer_default():
    tokenizer = Clip4StrTokenizer(charset=CHARSET_36, normalize=True)
    assert tokenizer.decode(tokenizer("Straße 5")["input_ids"], skip_special_tokens=True) == "strae5"
    with pytest.raises(ValueError, match="outside the 36-character charset"):
        tokenizer("Straße", normalize=False)


def test_length_limit_is_checked_before_charset_filtering_as_the_official_pipeline():
    tokenizer = Clip4StrTokenizer(charset=CHARSET_36)
    label = "a!" * 13  # 26 characters, 13 after filtering
    assert tokenizer.preprocess_label(label) is None
    with pytest.raises(ValueError, match="has 26 characters after whitespace removal"):
        tokenizer(label, normalize=True)
    # Whitespace does not count: it is removed first.
    assert tokenizer.check_label("a " * 25, normalize=True) == "a" * 25


def test_a_label_without_charset_characters_is_dropped_or_rejected():
    tokenizer = Clip4StrTokenizer(charset=CHARSET_36)
    assert tokenizer.preprocess_label("!?!") is None
    with pytest.raises(ValueError, match="no character of the charset"):
        tokenizer(["ok", "!?!"], normalize=True)


@pytest.mark.parametrize(
    ("charset", "label", "unsupported"),
    [
        (CHARSET_36, "Hello", "'H'"),
        (CHARSET_62, "Hello!", "'!'"),
        (CHARSET_94, "hello world", "' '"),
        (CHARSET_94, "café", "'é'"),
        (CHARSET_94, "ＡＢ", "'ＡＢ'"),
    ],
)
def test_strict_mode_rejects_characters_outside_the_charset(charset, label, unsupported):
    tokenizer = Clip4StrTokenizer(charset=charset)
    with pytest.raises(ValueError, match="outside the") as error:
        tokenizer(["fine", label])
    assert repr(label) in str(error.value)
    assert unsupported in str(error.value)
    assert "normalize=True" in str(error.value)


def test_strict_mode_rejects_labels_longer_than_max_label_length():
    tokenizer = Clip4StrTokenizer()
    assert tokenizer.check_label("a" * 25) == "a" * 25
    with pytest.raises(ValueError, match=r"'a{26}' has 26 characters, more than max_label_length=25"):
        tokenizer(["a" * 26])


def test_strict_mode_rejects_empty_labels():
    with pytest.raises(ValueError, match="label '' is empty"):
        Clip4StrTokenizer()(["ok", ""])


def test_non_string_labels_are_a_type_error():
    with pytest.raises(TypeError, match="a label must be a str, got int"):
        Clip4StrTokenizer().check_label(5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"charset": ""}, "charset must be a non-empty string"),
        ({"charset": "abca"}, "repeated characters 'a'"),
        ({"max_label_length": 0}, "max_label_length must be a positive integer"),
    ],
)
def test_bad_constructor_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Clip4StrTokenizer(**kwargs)


def test_missing_or_malformed_vocab_files_are_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.json does not exist"):
        Clip4StrTokenizer(vocab_file=str(tmp_path / "missing.json"))
    malformed = tmp_path / "vocab.json"
    malformed.write_text(json.dumps({"a": 0, "b": 1, "[B]": 2, "[P]": 3}))
    with pytest.raises(ValueError, match="is not a CLIP4STR vocabulary"):
        Clip4StrTokenizer(vocab_file=str(malformed))


def test_unknown_ids_are_reported():
    with pytest.raises(ValueError, match="token id 99 is outside the vocabulary of 6 tokens"):
        Clip4StrTokenizer(charset="abc").decode([1, 99])


# -- other scripts: Unicode normalisation as an option, charsets from data ------------------------------------


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        # The official folding: ö decomposes to o + diaeresis, the diaeresis is dropped; ß has no ASCII form.
        ("ascii", "Groe"),
        (True, "Groe"),
        ("NFC", "Größe"),
        ("NFKC", "Größe"),
        ("NFD", "Gro\u0308ße"),
        ("none", "Gro\u0308ße"),
        (False, "Gro\u0308ße"),
    ],
)
def test_unicode_normalisation_is_an_explicit_option(form, expected):
    # "o" + combining diaeresis, as some keyboards and PDFs store it; surrounding whitespace is removed.
    assert normalize_label(" Gro\u0308ße ", normalize_unicode=form) == expected


def test_unknown_unicode_normalisation_is_rejected_with_the_choices():
    with pytest.raises(ValueError, match="ascii, NFC, NFKC, NFD, NFKD, none"):
        normalize_label("a", normalize_unicode="nfc")
    with pytest.raises(ValueError, match="ascii, NFC"):
        Clip4StrTokenizer(normalize_unicode="latin")


def test_tokenizer_keeps_other_scripts_with_nfc_and_saves_the_setting(tmp_path):
    tokenizer = Clip4StrTokenizer(charset="абвгдежзийклмнопрстуфхцчшщъыьэюяё", normalize_unicode="NFC")
    # NFC composes "е" + combining diaeresis into "ё"; the caseless-charset rule lower-cases the label.
    assert tokenizer.preprocess_label("Ёж Е\u0308") == "ёжё"
    tokenizer.save_pretrained(tmp_path)
    loaded = Clip4StrTokenizer.from_pretrained(tmp_path)
    assert loaded.normalize_unicode == "NFC"
    assert loaded.preprocess_label("Ёж") == "ёж"
    # The official folding erases every Cyrillic letter: the sample is dropped.
    assert Clip4StrTokenizer(charset=tokenizer.charset).preprocess_label("Ёж") is None


def test_charset_from_labels_puts_the_base_charset_first_then_code_point_order():
    labels = ["Straße", "über", "Ärger", "dog"]
    assert charset_from_labels(labels, base_charset=CHARSET_62) == "abdegortSÄßü"
    # Without a base, code-point order; the label order does not matter.
    assert charset_from_labels(labels[::-1]) == "SabdegortÄßü"
    # NFC (the default) composes; "none" keeps the combining mark as a character of its own.
    assert charset_from_labels(["u\u0308"]) == "ü"
    assert charset_from_labels(["u\u0308"], normalize_unicode="none") == "u\u0308"
