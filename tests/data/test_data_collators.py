"""Collation: one recognition batch builder for training and `Trainer`, processors accepted by interface."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers.dynamic_module_utils import get_class_from_dynamic_module

from scenetext.data.collators import (
    DetectionCollator,
    RecognitionCollator,
    detection_batch,
    recognition_batch,
)
from scenetext.data.synthetic import SyntheticSceneConfig, render_scene_sample, render_word_sample
from scenetext.modeling.clip4str import Clip4StrConfig
from scenetext.modeling.clip4str.convert_clip4str import build_processor
from scenetext.processors.clip4str import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, Clip4StrProcessor
from scenetext.processors.tcm import TcmImageProcessor


@pytest.fixture(scope="module")
def processor():
    return build_processor(Clip4StrConfig.from_preset("tiny"), OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)


def test_recognition_batch_drops_rows_whose_label_does_not_survive(processor):
    rows = [render_word_sample(index, seed=3) for index in range(3)]
    rows[1] = {**rows[1], "label": "\u4e2d\u6587"}  # no character of the charset: dropped
    batch = recognition_batch(rows, processor, None, seeds=[0, 0, 0])
    kept = [rows[0], rows[2]]
    expected = processor(images=[row["image"] for row in kept], text=[row["label"] for row in kept])
    assert torch.equal(batch["pixel_values"], expected["pixel_values"])
    assert torch.equal(batch["labels"], expected["labels"])
    assert recognition_batch([rows[1]], processor, None, seeds=[0]) is None


def test_recognition_batch_augments_each_kept_row_with_its_own_seed(processor):
    rows = [render_word_sample(index, seed=3) for index in range(2)]
    seen = []

    def augment(image, seed):
        seen.append((image.mode, seed))
        return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)

    batch = recognition_batch(rows, processor, augment, seeds=[11, 12])
    flipped = [row["image"].transpose(Image.Transpose.FLIP_LEFT_RIGHT) for row in rows]
    assert seen == [("RGB", 11), ("RGB", 12)]
    assert torch.equal(batch["pixel_values"], processor(images=flipped)["pixel_values"])


def test_rows_keep_their_stored_orientation_and_their_value_range(processor):
    row = render_word_sample(0, seed=1)
    reference = recognition_batch([row], processor, None, seeds=[0])["pixel_values"]
    exif = Image.Exif()
    exif[0x0112] = 6  # a rotation tag on the stored crop must not turn it under its label
    tagged = row["image"].copy()
    tagged.info["exif"] = exif.tobytes()
    assert not torch.equal(
        processor(images=[tagged])["pixel_values"], reference
    )  # the processor alone turns it
    assert torch.equal(
        recognition_batch([{**row, "image": tagged}], processor, None, seeds=[0])["pixel_values"], reference
    )

    gray = row["image"].convert("L")
    sixteen_bit = Image.fromarray(np.asarray(gray, dtype=np.uint16) * 257)
    pixel_values = recognition_batch([{**row, "image": sixteen_bit}], processor, None, seeds=[0])[
        "pixel_values"
    ]
    assert torch.equal(pixel_values, processor(images=[gray.convert("RGB")])["pixel_values"])


def remote_class(folder, reference: str):
    """The class a machine without this package gets from `folder` with trust_remote_code: the folder's copy of
    the code, imported as a dynamic module (here, `import scenetext` registered the package's own classes)."""
    return get_class_from_dynamic_module(reference, folder)


def test_collators_accept_processors_loaded_with_trust_remote_code(processor, tmp_path):
    """A processor loaded from a folder's own code is another class than the package's."""
    processor.save_pretrained(tmp_path / "recognizer")
    remote = remote_class(tmp_path / "recognizer", "processing_clip4str.Clip4StrProcessor").from_pretrained(
        tmp_path / "recognizer"
    )
    assert type(remote) is not Clip4StrProcessor and type(remote).__name__ == "Clip4StrProcessor"
    rows = [render_word_sample(index, seed=5) for index in range(2)]
    ours = RecognitionCollator(processor, seed=1)(rows)
    theirs = RecognitionCollator(remote, seed=1)(rows)
    assert torch.equal(ours["pixel_values"], theirs["pixel_values"])
    assert torch.equal(ours["labels"], theirs["labels"])

    image_processor = TcmImageProcessor(size={"shortest_edge": 96, "longest_edge": 128})
    image_processor.save_pretrained(tmp_path / "detector")
    remote_detector = remote_class(
        tmp_path / "detector", "image_processing_tcm.TcmImageProcessor"
    ).from_pretrained(tmp_path / "detector")
    assert type(remote_detector) is not TcmImageProcessor
    scene = render_scene_sample(
        0, seed=0, config=SyntheticSceneConfig(image_size=(96, 128), num_words=(1, 1))
    )
    expected = detection_batch([scene], image_processor, None, seeds=[0])
    batch = DetectionCollator(remote_detector)([scene])
    assert torch.equal(batch["pixel_values"], expected["pixel_values"])


def test_collators_name_what_a_wrong_processor_lacks():
    with pytest.raises(TypeError, match=r"processor must be a CLIP4STR processor.*object has no __call__"):
        RecognitionCollator(object())
    with pytest.raises(
        TypeError, match=r"image_processor must be a TCM image processor.*post_process_text_detection"
    ):
        DetectionCollator(lambda images: images)
