import numpy as np
import pytest
import shapely
import torch
from datasets import IterableDataset
from datasets.distributed import split_dataset_by_node
from shapely.geometry import Polygon

from scenetext.data import synthetic
from scenetext.data.synthetic import (
    SyntheticSceneConfig,
    SyntheticWordConfig,
    render_scene_sample,
    render_word_sample,
    synthetic_scene_dataset,
    synthetic_word_dataset,
)
from scenetext.data.synthetic_text import TextSampling
from scenetext.data.text_rendering import Font, available_fonts, render_text_mask
from scenetext.training.loop import train_stream

# Flat backgrounds and no camera effects: every changed pixel is ink, so the ground truth can be checked.
PLAIN_SCENES = SyntheticSceneConfig(
    image_size=(160, 224),
    num_words=(3, 6),
    font_size=(14, 40),
    max_angle=40.0,
    distractors=(0, 0),
    backgrounds=("flat",),
    blur_probability=0.0,
    noise_probability=0.0,
    jpeg_probability=0.0,
)


def test_same_seed_gives_identical_bytes_and_another_seed_differs():
    for index in range(5):
        first, again = render_word_sample(index, seed=1), render_word_sample(index, seed=1)
        assert first["label"] == again["label"]
        assert first["image"].tobytes() == again["image"].tobytes()
    scene, scene_again = render_scene_sample(3, seed=1), render_scene_sample(3, seed=1)
    assert scene["image"].tobytes() == scene_again["image"].tobytes()
    assert scene["polygons"] == scene_again["polygons"]
    other_seed = [render_word_sample(index, seed=2)["label"] for index in range(5)]
    assert other_seed != [render_word_sample(index, seed=1)["label"] for index in range(5)]


def test_samples_do_not_depend_on_dataloader_workers():
    dataset = synthetic_word_dataset(12, seed=4, samples_per_shard=3)
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2)
    by_source = {sample["source"]: sample for sample in loader}
    assert sorted(by_source) == sorted(f"synthetic-words-seed4:{index}" for index in range(12))
    for index in (0, 7, 11):
        direct = render_word_sample(index, seed=4)
        streamed = by_source[f"synthetic-words-seed4:{index}"]
        assert streamed["label"] == direct["label"]
        assert streamed["image"].tobytes() == direct["image"].tobytes()


def test_two_nodes_get_disjoint_samples():
    dataset = synthetic_scene_dataset(8, seed=0, config=PLAIN_SCENES, samples_per_shard=2)
    parts = [{sample["source"] for sample in split_dataset_by_node(dataset, rank, 2)} for rank in range(2)]
    assert parts[0].isdisjoint(parts[1])
    assert parts[0] | parts[1] == {f"synthetic-scenes-seed0:{index}" for index in range(8)}


@pytest.mark.parametrize("index", range(6))
def test_scene_quads_are_exact_boxes_of_the_rendered_words(index):
    scene = render_scene_sample(index, seed=9, config=PLAIN_SCENES)
    pixels = np.asarray(scene["image"]).astype(int)
    height, width = pixels.shape[:2]
    background = pixels[0, 0]
    quads = [Polygon(np.reshape(polygon, (4, 2))) for polygon in scene["polygons"]]
    assert len(quads) >= 2
    assert all(
        polygon.within(Polygon([(0, 0), (width, 0), (width, height), (0, height)])) for polygon in quads
    )
    for first in range(len(quads)):
        for second in range(first + 1, len(quads)):
            assert quads[first].distance(quads[second]) >= PLAIN_SCENES.word_gap - 1e-9
    ink_rows, ink_columns = np.nonzero(np.abs(pixels - background).sum(axis=-1) > 0)
    centres = np.stack([ink_columns + 0.5, ink_rows + 0.5], axis=1)
    points = shapely.points(centres)
    # Every ink pixel lies in a quad, up to the half pixel that bilinear resampling spreads beyond the glyphs.
    assert shapely.distance(shapely.union_all(quads), points).max() <= 0.75
    # Every quad is tight: in the word's own frame its ink reaches each of the four sides.
    for polygon in quads:
        corners = np.asarray(polygon.exterior.coords)[:4]
        along, across = corners[1] - corners[0], corners[3] - corners[0]
        inside = shapely.distance(polygon, points) <= 0.75
        offsets = centres[inside] - corners[0]
        u = offsets @ along / np.linalg.norm(along)
        v = offsets @ across / np.linalg.norm(across)
        assert u.min() <= 2.0 and u.max() >= np.linalg.norm(along) - 2.0
        assert v.min() <= 2.0 and v.max() >= np.linalg.norm(across) - 2.0


def test_quads_run_clockwise_from_the_words_top_left():
    config = SyntheticSceneConfig(num_words=(4, 4), max_angle=0.0)
    scene = render_scene_sample(0, seed=3, config=config)
    for polygon in scene["polygons"]:
        (x1, y1), (x2, y2), (x3, y3), (x4, y4) = np.reshape(polygon, (4, 2))
        assert x1 < x2 and y1 == y2 and x2 == x3 and y3 > y2 and x4 == x1 and y4 == y3


def test_word_labels_follow_the_text_sampling():
    lowercase = TextSampling(charset="abcdefghijklmnopqrstuvwxyz", min_length=3, max_length=6)
    config = SyntheticWordConfig(text=lowercase)
    labels = [render_word_sample(index, seed=0, config=config)["label"] for index in range(40)]
    assert all(label.isalpha() and label.islower() and 3 <= len(label) <= 6 for label in labels)
    digits = TextSampling(charset="0123456789", min_length=4, max_length=4, word_probability=1.0)
    assert all(len(digits.sample(np.random.default_rng(seed))) == 4 for seed in range(10))


def test_each_text_keeps_one_casing_and_digits_apart_so_that_lookalikes_stay_readable():
    sampling = TextSampling(word_probability=0.0)
    rng = np.random.default_rng(0)
    texts = [sampling.sample(rng) for _ in range(300)]
    casings = {"lower" if t == t.lower() else "upper" if t == t.upper() else "title" for t in texts}
    assert all(t in (t.lower(), t.upper()) or (t[0].isupper() and t[1:] == t[1:].lower()) for t in texts)
    assert casings == {"lower", "upper", "title"}
    # Letters and digits never share a random string (O/0, I/1, S/5 look alike in many fonts).
    assert all(t.isalpha() or t.isdigit() for t in texts)
    assert any(t.isdigit() for t in texts)
    lowercase_only = TextSampling(charset="abcdefghij0123", word_probability=0.5)
    assert all(set(lowercase_only.sample(rng)) <= set("abcdefghij0123") for _ in range(100))


def test_every_builtin_font_renders_the_printable_ascii():
    text = "".join(chr(code) for code in range(33, 127))
    fonts = available_fonts()
    assert Font() in fonts  # Pillow's bundled font
    # The Hershey faces (OpenCV 4's) render through the same call whichever OpenCV is installed.
    for font in (*fonts, Font(opencv_face="simplex"), Font(opencv_face="complex-italic")):
        for boldness in (-0.5, 1.0):
            mask = render_text_mask(text, font, 24, boldness=boldness)
            assert mask.dtype == np.uint8 and mask.max() == 255
            # Tight: ink on all four borders; and all 94 glyphs side by side on one line.
            assert mask[:, 0].any() and mask[:, -1].any() and mask[0].any() and mask[-1].any()
            assert mask.shape[1] > 10 * mask.shape[0]
    wide = render_text_mask("W" * 20, Font(opencv_face=fonts[-1].opencv_face), 32, boldness=1.0)
    assert wide.shape[1] > 20 * 20  # not clipped by the canvas


def test_invalid_settings_are_rejected_with_the_field_name():
    with pytest.raises(ValueError, match="min_length <= max_length"):
        TextSampling(min_length=5, max_length=2)
    with pytest.raises(ValueError, match="image_size"):
        SyntheticSceneConfig(image_size=(640, 320))
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        synthetic_word_dataset(4, seed=-1)
    with pytest.raises(FileNotFoundError, match="font file not found"):
        available_fonts(["/no/such/font.ttf"])


def test_a_stream_started_later_continues_exactly_without_rendering_the_skipped_samples(monkeypatch):
    full = [s["label"] for s in synthetic_word_dataset(23, seed=4, samples_per_shard=5)]
    rendered = []
    render = synthetic.render_word_sample
    monkeypatch.setattr(
        synthetic, "render_word_sample", lambda index, *a: rendered.append(index) or render(index, *a)
    )
    for start in (0, 7, 10, 22, 23):
        rendered.clear()
        labels = [s["label"] for s in synthetic_word_dataset(23, seed=4, samples_per_shard=5, start=start)]
        assert labels == full[start:]
        assert rendered == list(range(start, 23))


def test_train_stream_starts_other_sources_after_the_consumed_examples():
    def build_source(spec, where):
        return IterableDataset.from_generator(lambda: ({"label": str(i)} for i in range(12)))

    for buffer in (0, 4):
        data = {"train": {"source": "lmdb"}, "shuffle_buffer": buffer}
        full = [s["label"] for s in train_stream(data, build_source, seed=1)]
        assert [s["label"] for s in train_stream(data, build_source, seed=1, start=5)] == full[5:]
