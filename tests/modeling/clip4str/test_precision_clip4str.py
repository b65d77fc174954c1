"""Inference modes on a trained recognizer (the embedded default): the fast paths read the same words as the
float32 reference order of work. Random weights cannot show this: their logits are near-ties everywhere."""

import copy
import dataclasses
import itertools

import pytest
import torch

from scenetext.cli.ocr import DEFAULTS_DIR
from scenetext.data.synthetic import SyntheticWordConfig, TextSampling, synthetic_word_dataset
from scenetext.modeling.clip4str import Clip4StrForSceneTextRecognition
from scenetext.modeling.clip4str.modeling_clip4str import Clip4StrDecodingOptions
from scenetext.modeling.devices import quantize_linear_layers
from scenetext.processors.clip4str import Clip4StrProcessor

NUM_WORDS = 32


@pytest.fixture(scope="module")
def trained(reference_decode):
    path = DEFAULTS_DIR / "recognizer"
    processor = Clip4StrProcessor.from_pretrained(path)
    model = Clip4StrForSceneTextRecognition.from_pretrained(path).eval()
    words = synthetic_word_dataset(
        NUM_WORDS, seed=3000, config=SyntheticWordConfig(text=TextSampling(min_length=3, max_length=10))
    )
    samples = list(itertools.islice(iter(words), NUM_WORDS))
    pixel_values = processor(images=[sample["image"] for sample in samples], return_tensors="pt")[
        "pixel_values"
    ]
    with torch.inference_mode():
        memory = model.encode_image(pixel_values)
        reference_logits, _ = reference_decode(model, memory)
    reference = processor.batch_decode(reference_logits)["generated_text"]
    # The reference must itself read most words, or agreeing with it would say little (the real-photo
    # recognizer reads 25 of these 32 plain synthetic words exactly, case included).
    assert sum(text == sample["label"] for text, sample in zip(reference, samples, strict=True)) >= 24
    return model, processor, pixel_values, memory, reference_logits, reference


@pytest.mark.slow
def test_cached_and_static_decoding_give_the_reference_logits(trained):
    model, _, _, memory, reference_logits, _ = trained
    with torch.inference_mode():
        cached, _ = model.decode(memory)
        fixed_steps = dataclasses.replace(Clip4StrDecodingOptions.from_config(model.config), fixed_steps=True)
        static, _ = model.decode(memory, fixed_steps)
    torch.testing.assert_close(cached, reference_logits, atol=1e-4, rtol=0)
    torch.testing.assert_close(static[:, : reference_logits.shape[1]], reference_logits, atol=1e-4, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["bfloat16", "bf16-autocast", "int8"])
def test_low_precision_modes_read_the_same_words(trained, mode):
    model, processor, pixel_values, _, reference_logits, reference = trained
    with torch.inference_mode():
        if mode == "bfloat16":
            logits = copy.deepcopy(model).to(torch.bfloat16)(pixel_values.to(torch.bfloat16)).logits
        elif mode == "bf16-autocast":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = model(pixel_values).logits
        else:
            logits = quantize_linear_layers(copy.deepcopy(model), torch.device("cpu"))(pixel_values).logits
    read = processor.batch_decode(logits.float())["generated_text"]
    # bf16 and int8 round every activation: they may tip a near-tie of the float32 reading (a repeated or
    # look-alike letter of a random string, e.g. `kmdogcy` / `kmdogey`), and nothing else.
    differing = [
        index for index, (text, want) in enumerate(zip(read, reference, strict=True)) if text != want
    ]
    assert len(differing) <= 2, (read, reference)
    for index in differing:
        steps = min(logits.shape[1], reference_logits.shape[1])
        ids, reference_ids = logits[index, :steps].argmax(-1), reference_logits[index, :steps].argmax(-1)
        step = int((ids != reference_ids).nonzero()[0])
        top_two = reference_logits[index, step].float().softmax(-1).topk(2).values
        assert float(top_two[0] - top_two[1]) < 0.25, (read[index], reference[index], top_two)
