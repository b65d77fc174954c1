"""The real-data preparation reads training splits out of pinned Git commits; here the public repositories are
replaced by small local ones laid out the same way."""

import subprocess

import numpy as np
from PIL import Image

from scenetext.data.lmdb import lmdb_recognition_dataset
from scenetext.data.prepare_real_data import SOURCES, GitSource, icdar2015_crops, prepare, text_free_regions

ASCII = "".join(chr(code) for code in range(33, 127))


def _commit(folder, files):
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    git = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "data"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    return folder / ".git", head


def _png(colour, size=(40, 16)):
    from io import BytesIO

    buffer = BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_icdar2015_labels_unescape_quotes_and_backslashes():
    files = {
        "gt.txt": '\ufeffword_1.png, "Genaxis Theatre"\n\nword_2.png, "say \\"hi\\""\n'.encode(),
        "word_1.png": b"1",
        "word_2.png": b"2",
    }
    assert [(name, label) for name, _, label in icdar2015_crops(files)] == [
        ("word_1.png", "Genaxis Theatre"),
        ("word_2.png", 'say "hi"'),
    ]


def test_text_free_regions_avoid_the_text_lines():
    photo = Image.new("RGB", (400, 300), (255, 255, 255))
    pixels = np.asarray(photo).copy()
    pixels[100:140, 50:350] = 0  # a dark text line, annotated below
    gt = "0 0 50 100 300 40 0.0\n"
    regions = list(text_free_regions(Image.fromarray(pixels), gt, np.random.default_rng(0), count=6))
    assert regions
    for region in regions:
        assert np.asarray(region).min() == 255  # no dark text pixel inside


def test_prepare_writes_train_and_held_out_crops_and_backgrounds(tmp_path):
    ic15, ic15_head = _commit(
        tmp_path / "ic15",
        {
            "WordRecognition/TrainingSet/gt.txt": "".join(
                f'word_{i}.png, "w{i}"\n' for i in range(1, 31)
            ).encode(),
            **{f"WordRecognition/TrainingSet/word_{i}.png": _png((i, 0, 0)) for i in range(1, 31)},
            "WordRecognition/TestSet/word_1.png": _png((0, 0, 0)),  # never read
        },
    )
    cased, cased_head = _commit(
        tmp_path / "cased",
        {
            **{f"iiit5k_train/IMG/{i}.jpg": _png((0, i, 0)) for i in range(1, 11)},
            **{f"iiit5k_train/label/{i}.txt": f"Word{i}\n".encode() for i in range(1, 11)},
            "svt_train/IMG/1.jpg": _png((0, 0, 9)),
            "svt_train/label/1.txt": b"PUBLIC",
            "iiit5k_test/label/1.txt": b"never read",
        },
    )
    photo = Image.new("RGB", (320, 240), (90, 120, 60))
    from io import BytesIO

    buffer = BytesIO()
    photo.save(buffer, format="JPEG")
    td500, td500_head = _commit(
        tmp_path / "td500",
        {
            "MSRA-TD500/train/IMG_0001.JPG": buffer.getvalue(),
            "MSRA-TD500/train/IMG_0001.gt": b"0 0 10 10 100 30 0.1\n",
        },
    )
    sources = {
        "icdar2015": GitSource("a/ic15", ic15_head, "WordRecognition/TrainingSet", "crops"),
        "iiit5k": GitSource("b/cased", cased_head, "iiit5k_train", "crops"),
        "svt": GitSource("b/cased", cased_head, "svt_train", "crops"),
        "msra-td500": GitSource("c/td500", td500_head, "MSRA-TD500/train", "photos"),
    }
    assert set(sources) == set(SOURCES)
    out = tmp_path / "out"
    counts = prepare(out, {"a/ic15": ic15, "b/cased": cased, "c/td500": td500}, sources)
    assert counts["words/train"] + counts["words/val"] == 41
    assert counts["words/val"] == 2  # every 20th crop
    assert 1 <= counts["backgrounds"] <= 4
    train = {sample["label"] for sample in lmdb_recognition_dataset(out / "words" / "train", ASCII)}
    val = {sample["label"] for sample in lmdb_recognition_dataset(out / "words" / "val", ASCII)}
    assert not train & val
    assert {"w1", "Word1", "PUBLIC"} <= train | val
    assert "never read" not in train | val
    assert "a/ic15" in (out / "SOURCES.md").read_text()
