"""Recognizer training onto a new charset: the charset from the training labels, the resized checkpoint, the
Unicode normalisation that must keep the charset's characters."""

import pytest
import torch
import yaml
from PIL import Image

from scenetext.data.lmdb import read_lmdb_labels, write_lmdb
from scenetext.modeling.clip4str import Clip4StrForSceneTextRecognition
from scenetext.training.config import load_config
from scenetext.training.recognition import RecognitionTask
from tests.tiny_models import save_tiny_recognizer

pytestmark = pytest.mark.usefixtures("single_thread")

GERMAN = "abcdefghijklmnopqrstuvwxyzäöüßABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÜ"


def _config(tmp_path, model, data, processor=None):
    path = tmp_path / "run.yaml"
    mapping = {
        "task": "recognizer",
        "output_dir": str(tmp_path / "run"),
        "model": model,
        "processor": processor or {},
        "data": data,
        "log_with": None,
    }
    path.write_text(yaml.safe_dump(mapping, allow_unicode=True), encoding="utf-8")
    return load_config(path)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return save_tiny_recognizer(tmp_path_factory.mktemp("tiny-recognizer"))


@pytest.fixture
def german_lmdb(tmp_path):
    image = Image.new("RGB", (32, 16), "white")
    labels = ["Straße", "über", "Ärger 7", "Gro\u0308ße"]  # the last one decomposed: o + combining diaeresis
    write_lmdb(({"image": image, "label": label} for label in labels), tmp_path / "lmdb")
    return tmp_path / "lmdb"


def test_lmdb_labels_are_read_without_images_up_to_a_limit(german_lmdb):
    assert list(read_lmdb_labels(german_lmdb)) == ["Straße", "über", "Ärger 7", "Gro\u0308ße"]
    assert list(read_lmdb_labels([german_lmdb], limit=2)) == ["Straße", "über"]


def test_charset_from_lmdb_labels_keeps_the_checkpoint_order_first(tmp_path, tiny_folder, german_lmdb):
    config = _config(
        tmp_path,
        {"from_pretrained": str(tiny_folder), "charset_from_data": True},
        {"train": {"source": "lmdb", "root": str(german_lmdb)}},
        {"normalize_unicode": "NFC"},
    )
    task = RecognitionTask(config)
    # The tiny checkpoint's 94-character order for what it knows (digits, lower, upper), then the new ones by
    # code point; NFC makes the decomposed "ö" one character; whitespace is never a character.
    assert task.model_config.charset == "7abegrtGSÄßöü"
    assert task.processor.tokenizer.charset == task.model_config.charset
    assert task.processor.tokenizer.normalize_unicode == "NFC"


def test_charset_from_a_synthetic_source_is_its_text_charset(tmp_path):
    config = _config(
        tmp_path,
        {"preset": "tiny", "charset_from_data": True},
        {"train": {"source": "synthetic", "num_samples": 4, "text": {"charset": "жук12"}}},
        {"normalize_unicode": "NFC"},
    )
    assert RecognitionTask(config).model_config.charset == "12жку"


def test_a_non_ascii_charset_with_the_official_ascii_folding_is_refused(tmp_path):
    config = _config(
        tmp_path,
        {"preset": "tiny", "config": {"charset": GERMAN}},
        {"train": {"source": "synthetic", "num_samples": 4}},
    )
    with pytest.raises(
        ValueError, match=r"non-ASCII characters \('äöüßÄÖÜ'\).*set processor.normalize_unicode"
    ):
        RecognitionTask(config)


def test_fine_tuning_onto_a_new_charset_resizes_the_checkpoint(tmp_path, tiny_folder):
    config = _config(
        tmp_path,
        {"from_pretrained": str(tiny_folder), "config": {"charset": GERMAN}},
        {"train": {"source": "synthetic", "num_samples": 4}},
        {"normalize_unicode": "NFC"},
    )
    task = RecognitionTask(config)
    model = task.build_model()
    assert model.config.charset == GERMAN
    assert model.visual_decoder.head.out_features == len(GERMAN) + 1
    original = Clip4StrForSceneTextRecognition.from_pretrained(tiny_folder)
    old_id = original.config.charset.index("Z") + 1
    torch.testing.assert_close(
        model.cross_decoder.head.weight[GERMAN.index("Z") + 1], original.cross_decoder.head.weight[old_id]
    )
    batch = task.collate(list(task.train_dataset()), seed=0)
    assert model(**batch).loss.isfinite()


def test_charset_from_a_mixture_reads_every_source(tmp_path, german_lmdb):
    folder = tmp_path / "crops"
    folder.mkdir()
    Image.new("RGB", (32, 16), "white").save(folder / "a.png")
    (folder / "labels.txt").write_text("a.png\tЖук\n", encoding="utf-8")
    train = {
        "source": "mix",
        "sources": [
            {"source": "lmdb", "root": str(german_lmdb)},
            {"source": "folder", "folder": str(folder)},
            {"source": "synthetic", "num_samples": 4, "text": {"charset": "xy"}},
        ],
    }
    config = _config(
        tmp_path,
        {"preset": "tiny", "charset_from_data": True},
        {"train": train},
        {"normalize_unicode": "NFC"},
    )
    # No checkpoint: the official 94-character order first, then the rest by code point.
    assert RecognitionTask(config).model_config.charset == "7abegrtxyGSÄßöüЖку"
