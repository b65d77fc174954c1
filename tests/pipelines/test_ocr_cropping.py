"""Crop rectification (rotated quads, vertical and curved words), reading order and result pictures."""

import cv2
import numpy as np
import pytest
from PIL import Image

from scenetext.pipelines import (
    crop_polygon,
    crop_quad,
    draw_results,
    order_quad,
    reading_order,
    rectify_region,
    score_color,
)


def word_strip(height: int = 24, width: int = 96) -> np.ndarray:
    """A smooth, asymmetric test pattern: left-right gradient in red, top-bottom gradient in green, slow
    stripes in blue; any flip, turn or shift of it shows."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    red = 255 * xs / (width - 1)
    green = 255 * ys / (height - 1)
    blue = 127.5 + 127.5 * np.sin(xs / 6.0)
    return np.stack([red, green, blue], axis=2).round().astype(np.uint8)


def mean_difference(a: np.ndarray, b: np.ndarray, margin: int = 2) -> float:
    """Mean absolute difference away from the borders (where interpolation meets the replicated edge)."""
    a, b = a[margin:-margin, margin:-margin].astype(float), b[margin:-margin, margin:-margin].astype(float)
    return float(np.abs(a - b).mean())


def test_order_quad_gives_clockwise_corners_from_top_left():
    corners = np.array([[10, 5], [50, 8], [48, 30], [8, 27]], dtype=float)
    for shuffle in ([2, 0, 3, 1], [3, 2, 1, 0], [1, 3, 0, 2]):
        np.testing.assert_array_equal(order_quad(corners[shuffle]), corners)
    with pytest.raises(ValueError, match="4 \\(x, y\\) points"):
        order_quad(corners[:3])


def test_rotated_quad_is_rectified_back_to_the_word():
    word = word_strip()
    height, width = word.shape[:2]
    # place the word rotated by 25 degrees on a larger canvas, and follow its corners
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 25, 1.0)
    matrix[:, 2] += (60, 60)
    canvas = cv2.warpAffine(word, matrix, (220, 200), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=float)
    quad = np.hstack([corners, np.ones((4, 1))]) @ matrix.T
    crop = crop_quad(canvas, quad[[2, 0, 3, 1]])
    assert crop.shape == word.shape
    assert mean_difference(crop, word) < 6
    assert mean_difference(crop, word[::-1, ::-1]) > 40  # a half turn would be caught


def test_vertical_crop_is_turned_to_read_left_to_right():
    word = word_strip()
    vertical = np.ascontiguousarray(np.rot90(word, k=-1))  # the word turned clockwise, read top to bottom
    height, width = vertical.shape[:2]
    quad = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=float)
    np.testing.assert_array_equal(rectify_region(vertical, quad), word)
    # a word that is merely short and wide stays as it is
    np.testing.assert_array_equal(rectify_region(word, [[0, 0], [96, 0], [96, 24], [0, 24]]), word)


def test_curved_polygon_is_straightened_into_a_strip():
    word = word_strip(height=20, width=120)
    # bend the word along an arc: column u goes to angle 200..340 degrees, row v to radius 90..70
    centre, outer, inner = np.array([130.0, 130.0]), 90.0, 70.0
    start, sweep = np.deg2rad(200), np.deg2rad(140)
    ys, xs = np.mgrid[0:160, 0:260].astype(np.float64)
    radius = np.hypot(xs - centre[0], ys - centre[1])
    angle = np.mod(np.arctan2(ys - centre[1], xs - centre[0]), 2 * np.pi)
    u = (angle - start) / sweep * (word.shape[1] - 1)
    v = (outer - radius) / (outer - inner) * word.shape[0] - 0.5
    canvas = cv2.remap(word, u.astype(np.float32), v.astype(np.float32), cv2.INTER_LINEAR, borderValue=0)
    angles = start + sweep * np.linspace(0, 1, 12)
    top = centre + outer * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    bottom = centre + inner * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    polygon = np.concatenate([top, bottom[::-1]])

    strip = rectify_region(canvas, polygon)
    assert strip.shape[0] < strip.shape[1]
    resized = cv2.resize(strip, (word.shape[1], word.shape[0]), interpolation=cv2.INTER_AREA)
    assert mean_difference(resized, word) < 12
    assert mean_difference(resized, word[::-1, ::-1]) > 40
    # the same polygon given from another starting vertex and the other way round reads the same
    np.testing.assert_array_equal(crop_polygon(canvas, np.roll(polygon[::-1], 5, axis=0)), strip)


def test_crop_margin_adds_the_surrounding_image_on_every_side():
    word = word_strip(height=20, width=80)
    canvas = np.zeros((100, 160, 3), np.uint8)
    canvas[40:60, 40:120] = word
    quad = np.array([[40, 40], [120, 40], [120, 60], [40, 60]], dtype=float)
    # 0.25 of the height = 5 pixels per side: the crop is the word with 5 pixels of canvas around it
    np.testing.assert_array_equal(rectify_region(canvas, quad, margin=0.25), canvas[35:65, 35:125])
    # a polygon band widens by the same share of its thickness, across and along the word
    polygon = np.array([[40, 40], [80, 40], [120, 40], [120, 60], [80, 60], [40, 60]], dtype=float)
    strip = crop_polygon(canvas, polygon, margin=0.25)
    assert strip.shape == (30, 90, 3)
    assert mean_difference(strip, canvas[35:65, 35:125]) < 12  # the sampler's own tolerance (curved test)
    assert mean_difference(strip, canvas[38:68, 35:125]) > 15  # 3 pixels off would show
    with pytest.raises(ValueError, match="margin must be >= 0"):
        rectify_region(canvas, quad, margin=-0.1)


def test_rectify_region_rejects_too_few_points():
    with pytest.raises(ValueError, match="at least 4 points"):
        rectify_region(word_strip(), [[0, 0], [5, 0], [5, 5]])


def test_reading_order_reads_lines_top_down_and_words_left_to_right():
    boxes = [
        [120, 52, 180, 70],  # line 2, right
        [10, 10, 60, 30],  # line 1, left
        [15, 50, 100, 72],  # line 2, left (taller, slightly higher)
        [70, 12, 130, 33],  # line 1, right (baseline a little lower)
        [10, 100, 50, 115],  # line 3
    ]
    assert reading_order(boxes) == [1, 3, 2, 0, 4]
    assert reading_order([]) == []


def test_draw_results_outlines_in_score_colours_and_labels_the_text():
    image = Image.new("RGB", (200, 120), "white")
    results = [
        {"polygon": [[20, 60], [90, 60], [90, 90], [20, 90]], "text": "good", "score": 1.0},
        {"box": {"xmin": 110, "ymin": 60, "xmax": 180, "ymax": 90}, "text": "bad", "score": 0.0},
    ]
    drawn = np.asarray(draw_results(image, results, font_size=14))
    assert np.asarray(image).min() == 255  # the input is left untouched
    assert score_color(1.0) == (0, 200, 0) and score_color(0.0) == (255, 0, 0)
    assert tuple(drawn[75, 20]) == score_color(1.0)  # left edge of the first outline
    assert tuple(drawn[75, 180]) == score_color(0.0)  # right edge of the second
    # each label is drawn on a band of its colour above its region, with white text on it
    label_band = drawn[40:58, 20:60]
    assert (label_band == score_color(1.0)).all(axis=2).any() and (label_band == 255).all(axis=2).any()
    with pytest.raises(ValueError, match="neither 'polygon' nor 'box'"):
        draw_results(image, [{"text": "x"}])
