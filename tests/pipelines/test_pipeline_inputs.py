"""What the three pipelines accept, as transformers' vision pipelines do: PIL images, paths, numpy arrays,
torch tensors, lists and batch tensors all give the results of the same pixels; the recognizer takes
`max_new_tokens` (directly or in `generate_kwargs`) as a cap on the characters it reads."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

from ..tiny_models import save_tiny_detector, save_tiny_recognizer


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    save_tiny_recognizer(root / "recognizer")
    save_tiny_detector(root / "detector")
    options = {"trust_remote_code": True, "device": "cpu"}
    return {
        "image-to-text": pipeline("image-to-text", model=str(root / "recognizer"), **options),
        "scene-text-detection": pipeline("scene-text-detection", model=str(root / "detector"), **options),
        "ocr": pipeline("ocr", model=str(root / "detector"), recognizer=str(root / "recognizer"), **options),
    }


@pytest.fixture(scope="module")
def images():
    generator = np.random.default_rng(0)
    return [Image.fromarray(generator.integers(0, 256, (32, 64, 3), dtype=np.uint8)) for _ in range(2)]


@pytest.mark.parametrize("task", ["image-to-text", "scene-text-detection", "ocr"])
def test_every_input_form_gives_the_results_of_the_same_pixels(pipelines, images, task, tmp_path):
    run = pipelines[task]
    image = images[0]
    path = tmp_path / "image.png"
    image.save(path)
    expected = run(image)
    assert expected, "the random models find (and read) one region of noise"
    assert run(str(path)) == expected
    assert run(np.asarray(image)) == expected
    assert run(torch.from_numpy(np.array(image)).permute(2, 0, 1)) == expected  # (C, H, W) uint8
    both = [run(picture) for picture in images]
    assert run(images) == both
    assert run(np.stack([np.asarray(picture) for picture in images])) == both  # (N, H, W, C) array
    assert run(torch.stack([torch.from_numpy(np.array(p)).permute(2, 0, 1) for p in images])) == both


def test_max_new_tokens_caps_the_characters_read(pipelines, images):
    run = pipelines["image-to-text"]
    image = images[0]
    [full] = run(image)
    length = len(full["generated_text"])
    assert length >= 3, "the random recognizer should read a few characters of noise"
    [capped] = run(image, max_new_tokens=2)
    assert capped["generated_text"] == full["generated_text"][:2]
    assert capped["score"] > full["score"]  # fewer confidences in the product
    assert run(image, generate_kwargs={"max_new_tokens": 2}) == [capped]
    assert run(image, max_new_tokens=length) == [full]  # a cap the word fits in changes nothing
    assert run(images, max_new_tokens=1) == [run(picture, max_new_tokens=1) for picture in images]


def test_unsupported_generation_settings_say_what_is_supported(pipelines, images):
    run = pipelines["image-to-text"]
    with pytest.raises(TypeError, match=r"does not use generate_kwargs \['num_beams'\].*only max_new_tokens"):
        run(images[0], generate_kwargs={"num_beams": 4})
    with pytest.raises(ValueError, match="max_new_tokens must be an integer >= 1, got 0"):
        run(images[0], max_new_tokens=0)
    with pytest.raises(ValueError, match="differ"):
        run(images[0], max_new_tokens=2, generate_kwargs={"max_new_tokens": 3})
    with pytest.raises(TypeError, match="takes timeout, max_new_tokens and generate_kwargs"):
        run(images[0], temperature=0.5)
