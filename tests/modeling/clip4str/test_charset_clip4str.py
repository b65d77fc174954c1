"""CLIP4STR onto a new charset (`resize_charset`) and non-Latin text in the cross-modal captions."""

import random

import pytest
import torch
from open_clip.tokenizer import SimpleTokenizer

from scenetext.modeling.clip4str import CHARSET_36, Clip4StrConfig, Clip4StrForSceneTextRecognition
from scenetext.processors.clip4str import (
    CharsetAdapter,
    Clip4StrImageProcessor,
    Clip4StrProcessor,
    Clip4StrTokenizer,
)
from tests.tiny_models import tiny_recognizer

pytestmark = pytest.mark.usefixtures("single_thread")

NEW = "äöüßЖж"


def _read(model: Clip4StrForSceneTextRecognition, charset: str, pixel_values: torch.Tensor) -> list[str]:
    processor = Clip4StrProcessor(Clip4StrImageProcessor(size=32), Clip4StrTokenizer(charset=charset))
    with torch.no_grad():
        return processor.batch_decode(model(pixel_values).logits)["generated_text"]


def test_known_characters_keep_their_rows_wherever_they_move():
    model, _ = tiny_recognizer()
    old = model.config.charset
    before = {
        name: (decoder.text_embed.weight.clone(), decoder.head.weight.clone(), decoder.head.bias.clone())
        for name, decoder in (("visual", model.visual_decoder), ("cross", model.cross_decoder))
    }
    new = NEW + old[::-1]
    model.resize_charset(new)
    assert model.config.charset == new
    assert model.config.num_classes == len(new) + 1
    for name, decoder in (("visual", model.visual_decoder), ("cross", model.cross_decoder)):
        embed, head, bias = before[name]
        assert decoder.text_embed.weight.shape == (len(new) + 3, embed.shape[1])
        assert decoder.head.weight.shape == (len(new) + 1, head.shape[1])
        for character in "a", "Z", "~":
            old_id, new_id = old.index(character) + 1, new.index(character) + 1
            torch.testing.assert_close(decoder.text_embed.weight[new_id], embed[old_id], rtol=0, atol=0)
            torch.testing.assert_close(decoder.head.weight[new_id], head[old_id], rtol=0, atol=0)
            assert decoder.head.bias[new_id] == bias[old_id]
        # [E] stays 0; [B] and [P] move to the end of the new charset.
        torch.testing.assert_close(decoder.text_embed.weight[0], embed[0], rtol=0, atol=0)
        torch.testing.assert_close(decoder.text_embed.weight[-2:], embed[-2:], rtol=0, atol=0)
        torch.testing.assert_close(decoder.head.weight[0], head[0], rtol=0, atol=0)
        # New characters start from the mean of the old characters' rows.
        torch.testing.assert_close(decoder.text_embed.weight[1], embed[1 : len(old) + 1].mean(0))
        torch.testing.assert_close(decoder.head.weight[len(NEW)], head[1 : len(old) + 1].mean(0))
        torch.testing.assert_close(decoder.head.bias[2], bias[1 : len(old) + 1].mean())


def test_a_resized_model_reads_as_before_until_it_is_trained():
    # A new character's logit is the mean of the old ones, never the largest: greedy readings are unchanged.
    model, _ = tiny_recognizer()
    model.config.refine_iters = 1
    torch.manual_seed(1)
    pixel_values = torch.randn(4, 3, 32, 32)
    old = model.config.charset
    before = _read(model, old, pixel_values)
    model.resize_charset(NEW + old)
    assert _read(model, NEW + old, pixel_values) == before
    assert any(before)  # random weights still read something: the comparison is not of empty strings


def test_resized_model_saves_and_loads_with_its_charset(tmp_path):
    model, _ = tiny_recognizer()
    model.resize_charset("abcäöü")
    model.save_pretrained(tmp_path)
    loaded = Clip4StrForSceneTextRecognition.from_pretrained(tmp_path)
    assert loaded.config.charset == "abcäöü"
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, rtol=0, atol=0)


def test_resize_rejects_repeated_characters():
    model, _ = tiny_recognizer()
    with pytest.raises(ValueError, match="repeated"):
        model.resize_charset("abca")


@pytest.mark.parametrize("prediction", ["größe", "Straße", "ЖУК12", "café", "东京3"])
def test_captions_of_non_latin_predictions_keep_only_the_caption_charset(prediction):
    """The official cross-modal branch maps the visual prediction onto its 36-character caption charset before
    CLIP's BPE reads it: letters outside ASCII are dropped (ö, ß, Cyrillic, CJK), not transliterated."""
    charset = "".join(
        dict.fromkeys("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZöäüßЖУК东京é")
    )
    model = Clip4StrForSceneTextRecognition(Clip4StrConfig.from_preset("tiny", charset=charset))
    ids = torch.tensor([[charset.index(c) + 1 for c in prediction] + [0]])
    caption = CharsetAdapter(CHARSET_36)(prediction)
    expected = SimpleTokenizer(context_length=16)([caption])
    assert model.caption_tokenizer(ids).tolist() == expected.tolist()


FULL = "".join(
    dict.fromkeys(
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZäöüßÄÖÜéèçñ"
        "жукдомЖУКДОМαβγΩあいうかきカキ東京中文٣!?.,'&-"
    )
)


def test_a_full_caption_charset_tokenizes_any_script_as_clip_does():
    """With the model's whole charset as caption charset, the captions keep accents, Cyrillic, Greek, kana and
    CJK: their UTF-8 bytes go through CLIP's byte-level BPE exactly as the official tokenizer sends them."""
    model = Clip4StrForSceneTextRecognition(
        Clip4StrConfig.from_preset("tiny", charset=FULL, caption_charset=FULL)
    )
    reference = SimpleTokenizer(context_length=16)
    rng = random.Random(0)
    texts = [
        "Größe",
        "Straße",
        "ЖУК12",
        "東京3",
        "カキ",
        "αβγ's",
        "it's",
        "٣٣",
        "çñ!?",
    ]
    texts += ["".join(rng.choice(FULL) for _ in range(rng.randint(1, 12))) for _ in range(200)]
    ids = torch.tensor([[FULL.index(c) + 1 for c in text] + [0] * (13 - len(text)) for text in texts])
    assert model.caption_tokenizer(ids).tolist() == reference(texts).tolist()
    # Fixed steps (static shapes) give the same ids.
    assert model.caption_tokenizer(ids, early_exit=False).tolist() == reference(texts).tolist()


def test_a_caption_charset_with_whitespace_is_refused():
    with pytest.raises(ValueError, match="caption_charset` must be non-empty and without whitespace"):
        Clip4StrConfig.from_preset("tiny", charset="ab c", caption_charset="ab c")
