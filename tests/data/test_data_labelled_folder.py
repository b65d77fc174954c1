import numpy as np
import pytest

from scenetext.data.corrupt_records import CorruptRecordLog
from scenetext.data.labelled_folder import (
    is_labelled_folder,
    labelled_folder_dataset,
    read_labels_file,
)
from scenetext.data.synthetic import render_word_sample


def _crops(folder, count=3, seed=3):
    """`count` synthetic crops saved as PNG in `folder`; returns their (file name, label) pairs."""
    folder.mkdir(parents=True, exist_ok=True)
    pairs = []
    for index in range(count):
        sample = render_word_sample(index, seed=seed)
        name = f"word_{index}.png"
        sample["image"].save(folder / name)
        pairs.append((name, sample["label"]))
    return pairs


def test_crops_stream_in_file_order_with_their_labels_and_pixels(tmp_path):
    pairs = _crops(tmp_path)
    # BOM, CRLF, a blank line, a label with a space and a sub-folder are all read.
    (tmp_path / "sub").mkdir()
    render_word_sample(9, seed=3)["image"].save(tmp_path / "sub" / "extra.png")
    lines = [f"{name}\t{label}" for name, label in pairs] + ["", "sub/extra.png\tNew York"]
    (tmp_path / "labels.txt").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    assert is_labelled_folder(tmp_path) and not is_labelled_folder(tmp_path / "sub")
    samples = list(labelled_folder_dataset(tmp_path))
    assert [sample["label"] for sample in samples] == [label for _, label in pairs] + ["New York"]
    assert [sample["source"] for sample in samples] == [
        f"{tmp_path / 'labels.txt'}:{line}" for line in (1, 2, 3, 5)
    ]
    np.testing.assert_array_equal(
        np.asarray(samples[0]["image"]), np.asarray(render_word_sample(0, seed=3)["image"])
    )


@pytest.mark.parametrize(
    ("line", "error", "message"),
    [
        ("word_0.png hello", ValueError, r"txt:2: expected <file><TAB><label>, got 'word_0.png hello'"),
        ("\thello", ValueError, r"labels.txt:2: expected <file><TAB><label>"),
        ("word_1.png\t", ValueError, r"labels.txt:2: expected <file><TAB><label>"),
        ("missing.png\thello", FileNotFoundError, r"labels.txt:2: 'missing.png' not found in "),
        (
            "./word_0.png\tagain",
            ValueError,
            r"txt:2: './word_0.png' is listed a second time \(first at line 1\)",
        ),
    ],
)
def test_a_bad_line_is_an_error_naming_it(tmp_path, line, error, message):
    _crops(tmp_path, count=2)
    (tmp_path / "labels.txt").write_text(f"word_0.png\tfirst\n{line}\n", encoding="utf-8")
    with pytest.raises(error, match=message):
        read_labels_file(tmp_path)


def test_missing_or_empty_labels_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no labels.txt in .* <file><TAB><label>"):
        read_labels_file(tmp_path)
    (tmp_path / "labels.txt").write_text("\n  \n")
    with pytest.raises(ValueError, match="lists no crop"):
        read_labels_file(tmp_path)


def test_undecodable_crop_is_reported_at_its_line_and_unlisted_images_named(tmp_path, caplog):
    pairs = _crops(tmp_path, count=3)
    (tmp_path / "word_1.png").write_bytes(b"not a png")
    (tmp_path / "labels.txt").write_text("".join(f"{n}\t{label}\n" for n, label in pairs[:2]))
    log = CorruptRecordLog()
    with caplog.at_level("WARNING", logger="scenetext.data.labelled_folder"):
        samples = list(labelled_folder_dataset(tmp_path, corrupt_records=log))
    assert [sample["label"] for sample in samples] == [pairs[0][1]]
    assert [record.location for record in log.records()] == [f"{tmp_path / 'labels.txt'}:2"]
    assert "word_1.png" in log.records()[0].reason
    assert [r.getMessage() for r in caplog.records if r.name == "scenetext.data.labelled_folder"] == [
        f"{tmp_path}: 1 images are not listed in labels.txt: word_2.png"
    ]


def test_with_a_charset_labels_go_through_the_training_preprocessing(tmp_path):
    names = [name for name, _ in _crops(tmp_path, count=3)]
    labels = ["Café au lait", "ÜBER", "x" * 30]  # accents folded, spaces removed; too long: dropped
    (tmp_path / "labels.txt").write_text(
        "".join(f"{n}\t{label}\n" for n, label in zip(names, labels, strict=True))
    )
    charset = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    samples = list(labelled_folder_dataset(tmp_path, charset=charset, max_label_length=25))
    assert [sample["label"] for sample in samples] == ["Cafeaulait", "UBER"]
