import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from scenetext.processors.clip4str.image_processing_clip4str import Clip4StrImageProcessor
from scenetext.processors.clip4str.processing_clip4str import Clip4StrProcessor
from scenetext.processors.clip4str.tokenization_clip4str import Clip4StrTokenizer


def make_processor(charset=None, **image_kwargs):
    return Clip4StrProcessor(Clip4StrImageProcessor(**image_kwargs), Clip4StrTokenizer(charset=charset))


def word_images(count=2):
    rng = np.random.default_rng(7)
    return [Image.fromarray(rng.integers(0, 256, (32, 100), dtype=np.uint8)) for _ in range(count)]


def logits_from_probabilities(rows):
    """Logits whose softmax is exactly the given probabilities (up to float rounding)."""
    return torch.tensor(rows, dtype=torch.float64).log().float()


def test_call_gives_pixel_values_and_labels_of_the_sub_processors():
    processor = make_processor()
    images = word_images()
    inputs = processor(images=images, text=["Hello", "a1"])
    assert set(inputs) == {"pixel_values", "labels"}
    assert torch.equal(inputs["pixel_values"], processor.image_processor(images)["pixel_values"])
    assert inputs["labels"].tolist() == [[95, 44, 15, 22, 22, 25, 0], [95, 11, 2, 0, 96, 96, 96]]


def test_images_only_text_only_and_a_single_label():
    processor = make_processor()
    assert set(processor(images=word_images(1))) == {"pixel_values"}
    labels = processor(text="ab")["labels"]
    assert labels.dtype == torch.long and labels.tolist() == [[95, 11, 12, 0]]
    as_numpy = processor(images=word_images(1), text="ab", return_tensors="np")
    assert isinstance(as_numpy["pixel_values"], np.ndarray) and isinstance(as_numpy["labels"], np.ndarray)


def test_call_forwards_normalisation_and_image_options():
    processor = make_processor(charset="0123456789abcdefghijklmnopqrstuvwxyz")
    inputs = processor(images=word_images(1), text=["Ça va!"], normalize=True, size=(32, 128))
    assert inputs["pixel_values"].shape == (1, 3, 32, 128)
    assert processor.tokenizer.batch_decode(inputs["labels"], skip_special_tokens=True) == ["cava"]
    with pytest.raises(ValueError, match="outside the 36-character charset"):
        processor(text=["Ça va!"])


def test_call_rejects_missing_inputs_and_mismatched_counts():
    processor = make_processor()
    with pytest.raises(ValueError, match="needs `images`, `text` or both"):
        processor()
    with pytest.raises(ValueError, match="got 2 images but 1 labels"):
        processor(images=word_images(2), text=["one"])


def test_batch_decode_matches_a_hand_computed_example():
    processor = make_processor(charset="abc")  # classes: [E], a, b, c
    logits = torch.stack(
        [
            # "ab" then [E]; the "c" after [E] is ignored. Score = 0.6 * 0.7 * 0.5 (the [E] position counts).
            logits_from_probabilities(
                [[0.1, 0.6, 0.2, 0.1], [0.1, 0.1, 0.7, 0.1], [0.5, 0.2, 0.2, 0.1], [0.05, 0.05, 0.0, 0.9]]
            ),
            # No [E]: all four characters are kept and every position counts.
            logits_from_probabilities(
                [[0.1, 0.2, 0.3, 0.4], [0.1, 0.8, 0.05, 0.05], [0.2, 0.1, 0.5, 0.2], [0.0, 0.3, 0.3, 0.4]]
            ),
            # [E] first: empty text, score = probability of that [E].
            logits_from_probabilities(
                [[0.9, 0.05, 0.05, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]
            ),
        ]
    )
    decoded = processor.batch_decode(logits)
    assert decoded["generated_text"] == ["ab", "cabc", ""]
    for score, expected in zip(decoded["scores"], [0.6 * 0.7 * 0.5, 0.4 * 0.8 * 0.5 * 0.4, 0.9], strict=True):
        assert math.isclose(score, expected, rel_tol=1e-5)


def test_batch_decode_reproduces_the_official_strings_and_confidences(fixtures_dir):
    config = json.loads((fixtures_dir / "clip4str/a/config.json").read_text())
    logits = load_file(fixtures_dir / "clip4str/a/io.safetensors")["logits"]
    decoded = make_processor().batch_decode(logits)
    assert decoded["generated_text"] == config["expected"]["pred_strings"]
    for score, expected in zip(decoded["scores"], config["expected"]["pred_seq_probs"], strict=True):
        assert math.isclose(score, expected, rel_tol=1e-6)


def test_batch_decode_accepts_half_precision_logits(fixtures_dir):
    logits = load_file(fixtures_dir / "clip4str/a/io.safetensors")["logits"]
    processor = make_processor()
    full, half = processor.batch_decode(logits), processor.batch_decode(logits.bfloat16())
    assert half["generated_text"] == full["generated_text"]
    np.testing.assert_allclose(half["scores"], full["scores"], rtol=0.05)


def test_batch_decode_rejects_ids_and_wrong_shapes():
    processor = make_processor(charset="abc")
    with pytest.raises(TypeError, match=r"expects floating-point logits, got dtype torch\.int64"):
        processor.batch_decode(torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(
        ValueError, match=r"shape \(batch, positions, 4\) for \[E\] \+ the 3-character charset"
    ):
        processor.batch_decode(torch.zeros(1, 3, 6))
    with pytest.raises(ValueError, match=r"got \(3, 4\)"):
        processor.batch_decode(torch.zeros(3, 4))
    with pytest.raises(TypeError, match=r"expects the logits tensor \(outputs\.logits\), got dict"):
        processor.batch_decode({"logits": torch.zeros(1, 3, 4)})


def test_decode_forwards_token_ids_to_the_tokenizer():
    processor = make_processor()
    labels = processor(text=["Hello", "a1"])["labels"]
    assert processor.decode(labels[0], skip_special_tokens=True) == "Hello"
    assert processor.tokenizer.batch_decode(labels, skip_special_tokens=True) == ["Hello", "a1"]


def test_save_and_load_round_trip_in_process(tmp_path):
    processor = make_processor(charset="0123456789abcdefghijklmnopqrstuvwxyz", size=(32, 128))
    processor.save_pretrained(tmp_path)
    loaded = Clip4StrProcessor.from_pretrained(tmp_path)
    assert loaded.tokenizer.charset == processor.tokenizer.charset
    images, text = word_images(), ["ab1", "z"]
    expected, actual = processor(images=images, text=text), loaded(images=images, text=text)
    assert torch.equal(actual["pixel_values"], expected["pixel_values"])
    assert torch.equal(actual["labels"], expected["labels"])


@pytest.mark.slow
def test_auto_classes_load_the_saved_folders_without_scenetext(tmp_path, run_isolated):
    """AutoProcessor / AutoTokenizer / AutoImageProcessor with trust_remote_code, in a fresh process where
    `scenetext` cannot be imported, give the same outputs as the classes here."""
    processor = make_processor(charset="0123456789abcdefghijklmnopqrstuvwxyz", size=(32, 128))
    folders = {name: tmp_path / name for name in ("processor", "tokenizer", "image_processor")}
    processor.save_pretrained(folders["processor"])
    processor.tokenizer.save_pretrained(folders["tokenizer"])
    processor.image_processor.save_pretrained(folders["image_processor"])
    for folder in folders.values():
        assert {"tokenization_clip4str.py", "image_processing_clip4str.py"} & {
            p.name for p in folder.iterdir()
        }
    images = torch.stack([torch.from_numpy(np.array(image)) for image in word_images()])
    save_file({"images": images}, tmp_path / "images.safetensors")
    text = ["Hello 1", "wörld"]
    logits = torch.randn(2, 6, 37, generator=torch.Generator().manual_seed(0))
    save_file({"logits": logits}, tmp_path / "logits.safetensors")

    output = run_isolated(
        f"""
        import json
        from safetensors.torch import load_file, save_file
        from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

        images = list(load_file({str(tmp_path / "images.safetensors")!r})["images"].numpy())
        logits = load_file({str(tmp_path / "logits.safetensors")!r})["logits"]
        processor = AutoProcessor.from_pretrained({str(folders["processor"])!r}, trust_remote_code=True)
        tokenizer = AutoTokenizer.from_pretrained({str(folders["tokenizer"])!r}, trust_remote_code=True)
        image_processor = AutoImageProcessor.from_pretrained(
            {str(folders["image_processor"])!r}, trust_remote_code=True
        )
        inputs = processor(images=images, text={text!r}, normalize=True)
        save_file(
            {{
                "pixel_values": inputs["pixel_values"],
                "labels": inputs["labels"],
                "image_processor_pixel_values": image_processor(images)["pixel_values"],
                "tokenizer_labels": tokenizer({text!r}, normalize=True, padding=True, return_tensors="pt")[
                    "input_ids"
                ],
            }},
            {str(tmp_path / "isolated.safetensors")!r},
        )
        classes = [type(x) for x in (processor, processor.tokenizer, processor.image_processor, tokenizer, image_processor)]
        print(json.dumps({{
            "modules": [c.__module__ for c in classes],
            "names": [c.__name__ for c in classes],
            "decoded": processor.batch_decode(logits),
        }}))
        """
    )
    report = json.loads(output.strip().splitlines()[-1])
    assert all(module.startswith("transformers_modules.") for module in report["modules"])
    assert report["names"] == [
        "Clip4StrProcessor",
        "Clip4StrTokenizer",
        "Clip4StrImageProcessor",
        "Clip4StrTokenizer",
        "Clip4StrImageProcessor",
    ]
    expected = processor(images=list(images.numpy()), text=text, normalize=True)
    isolated = load_file(tmp_path / "isolated.safetensors")
    assert isolated["pixel_values"].shape == (2, 3, 32, 128)
    assert torch.equal(isolated["pixel_values"], expected["pixel_values"])
    assert torch.equal(isolated["image_processor_pixel_values"], expected["pixel_values"])
    assert torch.equal(isolated["labels"], expected["labels"])
    assert torch.equal(isolated["tokenizer_labels"], expected["labels"])
    assert report["decoded"] == processor.batch_decode(logits)
