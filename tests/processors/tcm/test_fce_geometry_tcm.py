"""FCENet targets and post-processing on hand-made polygons and maps with known answers."""

import numpy as np
import pytest
import torch

from scenetext.processors.tcm import TcmImageProcessor
from scenetext.processors.tcm.fce_geometry_tcm import (
    extract_fce_boundaries,
    find_head_tail,
    fourier_signature,
    fourier_to_polygons,
    make_fce_targets,
    polygon_nms,
)


def _rectangle(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def _circle(center, radius, count=64):
    angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
    return np.stack([center[0] + radius * np.cos(angles), center[1] + radius * np.sin(angles)], axis=1)


def test_head_and_tail_of_a_horizontal_quad_are_its_short_sides():
    assert find_head_tail(np.array(_rectangle(0, 0, 40, 10), float)) == ([3, 0], [1, 2])
    assert find_head_tail(np.array(_rectangle(0, 0, 10, 40), float)) == ([0, 1], [2, 3])


def test_fourier_signature_of_a_circle_is_its_center_and_radius():
    coefficients = fourier_signature(_circle((30, 20), 10), degree=5)
    # c_0 is the center, the contour runs clockwise in image coordinates: all the energy in c_1
    assert coefficients[5] == pytest.approx(30 + 20j, abs=0.05)
    assert abs(coefficients[6]) == pytest.approx(10, abs=0.05)
    assert np.abs(np.delete(coefficients, [5, 6])).max() < 0.05
    (contour,) = fourier_to_polygons(coefficients[None], 50)
    radii = np.hypot(contour[:, 0] - 30, contour[:, 1] - 20)
    assert np.all(np.abs(radii - 10) <= 1.5)  # int-truncated points of the circle


def test_targets_go_to_the_level_of_the_text_size():
    # 64 px high image: a 32 px wide text has proportion 0.5, inside only the stride-16 range (0.3, 0.7).
    targets = make_fce_targets([_rectangle(8, 8, 40, 24)], 64, 96)
    assert targets["fce_maps_8"].shape == (25, 8, 12) and targets["fce_maps_32"].shape == (25, 2, 3)
    assert targets["fce_maps_8"][0].sum() == 0 and targets["fce_maps_32"][0].sum() == 0
    level = targets["fce_maps_16"]
    # the rectangle / 16 = (0.5, 0.5)-(2.5, 1.5), filled on int-truncated points: x 0..2, y 0..1
    assert level[0].tolist() == [[1, 1, 1, 0, 0, 0], [1, 1, 1, 0, 0, 0], [0] * 6, [0] * 6]
    assert level[2].sum() == 24  # nothing ignored
    # c_0 relative to each pixel: the center (1.5, 1.0) minus the pixel
    assert level[3 + 5, 0, 0] == pytest.approx(1.5, abs=0.05) and level[3 + 5, 1, 2] == pytest.approx(
        -0.5, abs=0.05
    )
    assert level[3 + 11 + 5, 1, 2] == pytest.approx(0.0, abs=0.05)
    # TCM's matching target: every text at stride 32 (0.25, 0.25)-(1.25, 0.75) -> x 0..1, y 0
    assert targets["matching_region"].tolist() == [[[1, 1, 0], [0, 0, 0]], [[1, 1, 1], [1, 1, 1]]]


def test_center_region_is_the_middle_strip_of_the_text():
    # proportion 80 / 256 -> stride 8 only; / 8 the text spans x 2..12, y 5..8 (half-height 1.5)
    targets = make_fce_targets([_rectangle(16, 40, 96, 64)], 256, 512, ignore=None)
    center = targets["fce_maps_8"][1]
    rows, cols = np.nonzero(center)
    # 0.3 x the half height around the center line y = 6.5 -> int rows 6; no end cut below 4 px of height
    assert set(rows.tolist()) == {6} and (cols.min(), cols.max()) == (2, 12)
    assert np.all(targets["fce_maps_8"][0][center > 0] == 1)


def test_ignored_text_is_masked_out_of_its_level():
    targets = make_fce_targets(
        [_rectangle(8, 8, 40, 24), _rectangle(50, 8, 82, 24)], 64, 96, ignore=[False, True]
    )
    level = targets["fce_maps_16"]
    assert level[2, 0, 3:6].tolist() == [0, 0, 0] and level[0, 0, 3:6].tolist() == [0, 0, 0]
    assert targets["matching_region"][1, 0].tolist() == [1, 0, 0]


def test_polygon_nms_keeps_the_best_of_overlapping_contours():
    squares = np.array([_rectangle(0, 0, 10, 10), _rectangle(1, 0, 11, 10), _rectangle(20, 0, 30, 10)])
    assert polygon_nms(squares, np.array([0.9, 0.8, 0.5]), 0.1) == [0, 2]
    # equal scores: mmocr's stable ascending sort keeps the later one
    assert polygon_nms(squares[:2], np.array([0.7, 0.7]), 0.1) == [1]


def _circle_maps(stride: int, center: tuple[float, float], radius: float):
    """Maps of one level where a 3 x 3 block of pixels predicts the same circle (in level pixels)."""
    classification = np.full((4, 8, 12), 0.0, np.float32)
    classification[[0, 2]] = 10.0  # background everywhere ...
    classification[[0, 2], 3:6, 4:7] = -10.0  # ... but text and center in the block
    regression = np.zeros((22, 8, 12), np.float32)
    ys, xs = np.mgrid[0:8, 0:12]
    regression[5] = center[0] - xs  # c_0 real, relative to the pixel
    regression[11 + 5] = center[1] - ys
    regression[6] = radius  # c_1
    return classification, regression


def test_fce_boundaries_of_hand_made_maps():
    maps = [_circle_maps(8, (5.0, 4.0), 2.0)]
    for size in ((4, 6), (2, 3)):  # no text on the other levels
        maps.append(
            (np.full((4, *size), -10.0, np.float32) * [[[-1]], [[1]], [[-1]], [[1]]], np.zeros((22, *size)))
        )
    ((contour, score),) = extract_fce_boundaries([m[0] for m in maps], [m[1] for m in maps])
    text_probability = 1 / (1 + np.exp(-10.0))  # of the logits (-10, 0) for text and center alike
    assert contour.shape == (50, 2) and score == pytest.approx(
        text_probability**1.2 * text_probability, abs=1e-6
    )
    # one circle of radius 2 x 8 around (5, 4) x 8 in input pixels (points truncated to integers)
    radii = np.hypot(contour[:, 0] - 40, contour[:, 1] - 32)
    assert np.all(np.abs(radii - 16) <= 1.5)


def test_processor_rescales_fce_contours_to_the_original_image():
    maps = [_circle_maps(8, (5.0, 4.0), 2.0)]
    for size in ((4, 6), (2, 3)):
        maps.append(
            (np.full((4, *size), -10.0, np.float32) * [[[-1]], [[1]], [[-1]], [[1]]], np.zeros((22, *size)))
        )
    outputs = {
        "fce_classification": tuple(torch.from_numpy(m[0])[None] for m in maps),
        "fce_regression": tuple(torch.from_numpy(np.asarray(m[1], np.float32))[None] for m in maps),
    }
    (result,) = TcmImageProcessor().post_process_text_detection(
        outputs, target_sizes=[(32, 48)], resized_sizes=[(64, 96)]
    )
    polygon = result["polygons"][0].numpy()
    assert len(result["polygons"]) == 1
    radii = np.hypot(polygon[:, 0] - 20, polygon[:, 1] - 16)
    assert np.all(np.abs(radii - 8) <= 1)
    assert result["boxes"][0].tolist() == pytest.approx([12, 8, 28, 24], abs=1)


def test_processor_level_ranges_move_a_text_between_levels():
    polygon = [_rectangle(8, 8, 40, 24)]  # proportion 32 / 64 = 0.5
    icdar = TcmImageProcessor(head_type="fcenet").prepare_targets(polygon, (64, 96))
    ctw = TcmImageProcessor(
        head_type="fcenet", fce_level_ranges=((0, 0.25), (0.2, 0.65), (0.55, 1))
    ).prepare_targets(polygon, (64, 96))
    assert icdar["fce_maps_16"][0].sum() > 0 and icdar["fce_maps_32"][0].sum() == 0
    assert ctw["fce_maps_16"][0].sum() > 0 and ctw["fce_maps_8"][0].sum() == 0
    only_32 = TcmImageProcessor(
        head_type="fcenet", fce_level_ranges=((0, 0.1), (0.1, 0.2), (0.2, 1))
    ).prepare_targets(polygon, (64, 96))
    assert only_32["fce_maps_16"][0].sum() == 0 and only_32["fce_maps_32"][0].sum() > 0
    with pytest.raises(ValueError, match="fce_level_ranges"):
        TcmImageProcessor(fce_level_ranges=((0, 1),))
