"""PAN targets and post-processing (pixel aggregation) on hand-made polygons and maps with known answers."""

import numpy as np
import pytest
import torch

from scenetext.processors.tcm import TcmImageProcessor
from scenetext.processors.tcm.pan_geometry_tcm import extract_pan_boundaries, group_pixels, make_pan_targets


def _rectangle(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def test_targets_number_the_cared_texts_and_shrink_the_kernels():
    polygons = [_rectangle(10, 10, 50, 30), _rectangle(60, 5, 70, 15), _rectangle(0, 40, 200, 140)]
    targets = make_pan_targets(polygons, 150, 210, ignore=[False, True, False])
    # 40 x 20: the text region is the filled rectangle (41 x 21 pixels, both ends included); the kernel offset
    # is int(800 * (1 - 0.5^2) / 120 + 0.5) = 5 pixels.
    assert (targets.text_kernel == 1).sum() == 41 * 21
    assert (targets.shrunk_kernel == 1).sum() == 31 * 11
    assert targets.shrunk_kernel[15, 15] == 1 and targets.shrunk_kernel[14, 15] == 0
    # The ignored rectangle takes no number: the next cared one is 2; its offset int(25.5) is capped at 20.
    assert (targets.text_kernel == 2).sum() == 201 * 101
    assert (targets.shrunk_kernel == 2).sum() == 161 * 61
    assert targets.shrunk_kernel[60, 20] == 2 and targets.shrunk_kernel[60, 19] == 0
    assert set(np.unique(targets.text_kernel)) == {0, 1, 2}
    assert targets.effective_mask.sum() == 150 * 210 - 11 * 11
    assert targets.effective_mask[10, 65] == 0 and targets.text_kernel[10, 65] == 0


def test_processor_batches_pan_targets_with_zero_padding():
    processor = TcmImageProcessor(do_resize=False, head_type="pan")
    images = [np.zeros((40, 60, 3), np.uint8), np.zeros((64, 64, 3), np.uint8)]
    batch = processor(images, polygons=[[_rectangle(4, 4, 30, 20)], []])
    labels = batch["labels"]
    assert set(labels) == {"text_kernel", "shrunk_kernel", "effective_mask"}
    assert labels["text_kernel"].shape == (2, 64, 64)
    assert labels["text_kernel"][0].sum() == 27 * 17 and labels["text_kernel"][1].sum() == 0
    # padding carries no loss: the effective mask is zero outside each image
    assert labels["effective_mask"][0].sum() == 40 * 60 and labels["effective_mask"][1].sum() == 64 * 64


def test_pixels_join_the_kernel_whose_mean_vector_is_near_first_in_queue_order():
    # One row of text: kernels at both ends, similarity 0 on the left, 1 on the right, 0.5 in the middle.
    text = np.ones((1, 8), bool)
    text[0, 7] = False
    kernels = np.array([[1, 0, 0, 0, 0, 0, 2, 0]], np.int32)
    similarity = np.zeros((1, 8, 4), np.float32)
    similarity[0, 4:7, 0] = 1.0
    similarity[0, 3, 0] = 0.5
    labels = group_pixels(text, similarity, kernels, kernels > 0, 3, 0.85)
    # Both kernels reach pixel 3 in the same breadth-first step; kernel 1's claim is first in the queue.
    assert labels.tolist() == [[1, 1, 1, 1, 2, 2, 2, 0]]
    # A text pixel whose vector is 0.85 or more from every kernel's mean stays unassigned.
    similarity[0, 2, 0] = 2.0
    labels = group_pixels(text, similarity, kernels, kernels > 0, 3, 0.85)
    assert labels.tolist() == [[1, 1, 0, 2, 2, 2, 2, 0]]


def _pan_maps() -> np.ndarray:
    maps = np.full((6, 20, 30), -10.0, np.float32)
    maps[2:] = 0
    maps[0, 5:13, 4:25] = 10.0  # a text of 8 x 21 pixels ...
    maps[1, 7:11, 8:21] = 10.0  # ... with its kernel
    maps[0, 15:18, 2:5] = 10.0  # a 3 x 3 text (9 pixels < min_text_area 16)
    maps[1, 16, 3] = 10.0
    maps[0, 14:20, 10:20] = np.log(0.8 / 0.2)  # mean text probability 0.8 <= 0.85
    maps[1, 16:18, 12:18] = 10.0
    return maps


def test_boundaries_of_hand_made_maps():
    (quad, score), *others = extract_pan_boundaries(_pan_maps(), box_type="quad")
    assert not others and score == pytest.approx(1 / (1 + np.exp(-10.0)), abs=1e-6)
    assert sorted(map(tuple, quad.tolist())) == [(4, 5), (4, 12), (24, 5), (24, 12)]
    ((polygon, _),) = extract_pan_boundaries(_pan_maps(), box_type="poly")
    assert polygon.tolist() == [[4, 5], [4, 12], [24, 12], [24, 5]]


def test_processor_scales_pan_boundaries_from_map_to_original_pixels():
    processor = TcmImageProcessor()
    outputs = {"pan_maps": torch.from_numpy(_pan_maps())[None]}
    # map pixels x 4 (stride) = resized pixels; resized 80 x 120 -> original 40 x 60: x 0.5
    (result,) = processor.post_process_text_detection(
        outputs, target_sizes=[(40, 60)], resized_sizes=[(80, 120)], box_type="poly"
    )
    assert result["polygons"][0].tolist() == [[8, 10], [8, 24], [48, 24], [48, 10]]
    assert result["boxes"].tolist() == [[8, 10, 48, 24]]
    # the preset chooses PAN's box type: ICDAR2015 quads (a 4-point outline either way here)
    (result,) = processor.post_process_text_detection(outputs, preset="icdar2015")
    assert sorted(map(tuple, result["polygons"][0].tolist())) == [(16, 20), (16, 48), (96, 20), (96, 48)]
