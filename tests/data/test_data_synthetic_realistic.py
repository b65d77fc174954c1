"""The photo-like options of the synthetic engine: photo backgrounds, curved baselines, lighting and camera
effects, textless patterns and negatives, word lists. All default to off, which keeps the earlier streams."""

import numpy as np
import pytest
from PIL import Image

from scenetext.data import synthetic, synthetic_backgrounds
from scenetext.data.synthetic import (
    SyntheticSceneConfig,
    SyntheticWordConfig,
    render_scene_sample,
    render_word_sample,
)
from scenetext.data.synthetic_text import TextSampling

NO_EFFECTS = {"blur_probability": 0.0, "noise_probability": 0.0, "jpeg_probability": 0.0}


def _photo_folder(tmp_path, colour=(200, 30, 40)):
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    Image.new("RGB", (300, 200), colour).save(folder / "nested" / "wall.jpg", quality=98)
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_effects_that_are_off_draw_nothing_from_the_random_stream():
    # Before the photo options existed, the camera effects drew one number each for blur, noise and JPEG. With
    # the new effects off they still draw exactly those three, so existing configs (and the data their
    # checkpoints were trained on) render the same samples.
    image = np.full((16, 32, 3), 128.0, np.float32)
    effects = synthetic_backgrounds.CameraEffects(
        blur_probability=0.0, noise_probability=0.0, jpeg_probability=0.0
    )
    drawn, expected = np.random.default_rng(7), np.random.default_rng(7)
    synthetic_backgrounds.apply_camera_effects(drawn, image, effects)
    expected.random(3)
    assert drawn.random() == expected.random()


def test_photo_backgrounds_come_from_the_photo_folders(tmp_path):
    config = SyntheticWordConfig(
        background_dirs=(str(_photo_folder(tmp_path)),), backgrounds=("photo",), min_contrast=60, **NO_EFFECTS
    )
    image = np.asarray(render_word_sample(0, seed=0, config=config)["image"], np.float32)
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    # The crop's border is background: the photo's colour (JPEG-rounded).
    assert np.abs(np.median(border, axis=0) - (200, 30, 40)).max() < 6


def test_photo_background_errors_name_what_is_missing(tmp_path):
    with pytest.raises(ValueError, match="needs photos"):
        render_word_sample(0, config=SyntheticWordConfig(backgrounds=("photo",)))
    with pytest.raises(FileNotFoundError, match="background folder not found"):
        synthetic_backgrounds.find_photo_files([tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        synthetic_backgrounds.find_photo_files([tmp_path / "empty"])
    assert synthetic_backgrounds.find_photo_files([_photo_folder(tmp_path)]) == (
        str(tmp_path / "photos" / "nested" / "wall.jpg"),
    )


def test_curved_baseline_moves_the_ends_of_a_word_against_its_middle():
    bar = np.zeros((10, 200), np.uint8)
    bar[:, :] = 255
    rng = np.random.default_rng(4)
    curved = synthetic._curve_baseline(rng, bar)
    rows = np.arange(curved.shape[0])[:, None]
    centre_of_ink = (curved.astype(np.float32) * rows).sum(axis=0) / curved.sum(axis=0)
    bend = abs(centre_of_ink[100] - centre_of_ink[0])
    # The arc moves the ends by up to half the text height against the middle, and both ends alike.
    assert 0.5 < bend <= 5.5
    assert abs(centre_of_ink[0] - centre_of_ink[-1]) < 0.5
    assert curved.shape[0] == 10 + round(bend + 0.49)


def test_camera_effects_change_the_image_only_when_asked():
    rng = np.random.default_rng(0)
    image = np.zeros((40, 80, 3), np.float32)
    image[:, 40:] = 255.0  # a sharp vertical edge

    def run(**probabilities):
        effects = SyntheticWordConfig(**{**NO_EFFECTS, **probabilities})
        return np.asarray(
            synthetic_backgrounds.apply_camera_effects(np.random.default_rng(1), image.copy(), effects),
            np.float32,
        )

    plain = run()
    assert np.array_equal(plain, image)
    lit = run(light_probability=1.0)
    assert lit[:, 40:].std() > 1.0  # the white half is no longer uniform
    # Low resolution and motion blur both soften the edge: fewer columns jump by more than half the range.
    for name in ("low_resolution_probability", "motion_blur_probability"):
        soft = run(**{name: 1.0})
        assert np.abs(np.diff(soft[20, :, 0])).max() < 200, name
    assert rng is not None


def test_negative_scenes_have_no_words_and_patterns_draw_regular_lines():
    config = SyntheticSceneConfig(
        negative_probability=1.0,
        pattern_probability=1.0,
        backgrounds=("flat",),
        distractors=(0, 0),
        **NO_EFFECTS,
    )
    for index in range(4):
        scene = render_scene_sample(index, seed=2, config=config)
        assert scene["polygons"] == [] and scene["texts"] == []
        pixels = np.asarray(scene["image"]).reshape(-1, 3)
        assert len(np.unique(pixels, axis=0)) > 1  # the pattern is there on the flat background


def test_words_come_from_the_word_file(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("harbour\n\nlighthouse\n")
    sampling = TextSampling(charset="abcdefghijklmnopqrstuvwxyz", word_probability=1.0, words_file=str(words))
    rng = np.random.default_rng(0)
    assert {sampling.sample(rng) for _ in range(20)} == {"harbour", "lighthouse"}
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        TextSampling(word_probability=1.0, words_file=str(tmp_path / "empty.txt")).sample(rng)
