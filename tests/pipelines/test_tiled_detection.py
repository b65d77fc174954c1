"""Tiling of images far longer than high: the windows, the merge of their regions, and a strip of text that the
embedded detector reads only in tiles."""

import math

import numpy as np
import pytest
import torch

from scenetext.assets import DEFAULTS_DIR
from scenetext.cli.ocr import load_ocr_pipeline
from scenetext.data.text_rendering import Font, render_text_mask
from scenetext.evaluation.metrics.detection import TextRegions, score_detection
from scenetext.modeling.tcm import TcmForSceneTextDetection
from scenetext.pipelines.pipeline_tcm import SceneTextDetectionPipeline
from scenetext.pipelines.tiled_detection import Window, merge_tile_regions, tile_windows
from scenetext.processors.tcm import TcmImageProcessor

pytestmark = pytest.mark.usefixtures("single_thread")


def test_an_image_within_the_bound_is_one_window():
    assert tile_windows(720, 1280, 8) == [Window(0, 0, 720, 1280)]
    assert tile_windows(50, 400, 8) == [Window(0, 0, 50, 400)]


def test_a_strip_is_cut_into_half_overlapping_tiles_ending_at_its_end():
    windows = tile_windows(50, 1000, 8)
    # tiles 400 long (8 x 50), every 200 pixels; the last one is moved back to end at column 1000
    assert windows == [Window(0, left, 50, left + 400) for left in (0, 200, 400, 600)]
    windows = tile_windows(1100, 60, 4)
    assert [(w.top, w.bottom) for w in windows] == [
        (0, 240),
        (120, 360),
        (240, 480),
        (360, 600),
        (480, 720),
        (600, 840),
        (720, 960),
        (840, 1080),
        (860, 1100),
    ]
    assert all((w.left, w.right) == (0, 60) for w in windows)
    assert tile_windows(50, 10000, math.inf) == [Window(0, 0, 50, 10000)]
    with pytest.raises(ValueError, match=r"max_aspect_ratio must be >= 1, got 0\.5"):
        tile_windows(50, 100, 0.5)


def _regions(*boxes_and_scores):
    polygons = [
        torch.tensor([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=torch.float32)
        for (x0, y0, x1, y1), _ in boxes_and_scores
    ]
    return {
        "scores": torch.tensor([score for _, score in boxes_and_scores]),
        "polygons": polygons,
        "boxes": torch.tensor([box for box, _ in boxes_and_scores], dtype=torch.float32),
    }


def test_merge_keeps_each_word_once():
    first = _regions(((10, 5, 60, 40), 0.9), ((180, 5, 200, 40), 0.8))  # a word and the cut start of the next
    second = _regions(((12, 6, 61, 40), 0.7), ((180, 5, 260, 40), 0.95), ((300, 5, 340, 40), 0.6))
    merged = merge_tile_regions([first, second])
    # the duplicate (IoU 0.94) and the cut fragment (inside the whole word) are gone; tile order is kept
    assert merged["boxes"].tolist() == [[10, 5, 60, 40], [180, 5, 260, 40], [300, 5, 340, 40]]
    torch.testing.assert_close(merged["scores"], torch.tensor([0.9, 0.95, 0.6]))
    assert [polygon.tolist() for polygon in merged["polygons"]] == [
        polygon.tolist() for polygon in (first["polygons"][0], second["polygons"][1], second["polygons"][2])
    ]
    # neighbours that merely touch stay apart
    touching = merge_tile_regions([_regions(((0, 0, 50, 20), 0.5)), _regions(((45, 0, 95, 20), 0.5))])
    assert len(touching["polygons"]) == 2
    empty = merge_tile_regions([_regions(), _regions()])
    assert empty["polygons"] == [] and empty["boxes"].shape == (0, 4)


WORDS = ["OPEN", "station", "Market", "42", "hello", "WORLD", "coffee", "Exit"]


def _text_strip(width: int, height: int, font_size: int) -> tuple[np.ndarray, list[list[float]]]:
    """Black words on white in one line, with their exact boxes as ground truth."""
    image = np.full((height, width, 3), 255, np.uint8)
    boxes, left = [], 20
    for index in range(width):
        mask = render_text_mask(WORDS[index % len(WORDS)], Font(), font_size)
        mask_height, mask_width = mask.shape
        if left + mask_width > width - 20:
            break
        top = (height - mask_height) // 2
        image[top : top + mask_height, left : left + mask_width][mask > 127] = 0
        boxes.append(
            [left, top, left + mask_width, top, left + mask_width, top + mask_height, left, top + mask_height]
        )
        left += mask_width + font_size
    return image, boxes


def test_the_embedded_detector_reads_a_long_strip_only_in_tiles():
    folder = DEFAULTS_DIR / "detector"
    model = TcmForSceneTextDetection.from_pretrained(folder).eval()
    image_processor = TcmImageProcessor.from_pretrained(folder)
    # settings given at creation hold for every call that does not give its own
    detector = SceneTextDetectionPipeline(
        model=model, image_processor=image_processor, device="cpu", max_aspect_ratio=math.inf
    )
    strip, boxes = _text_strip(10000, 50, 30)
    ground_truth = TextRegions(boxes, ["word"] * len(boxes))

    def counts(pipeline, **settings):
        found = pipeline(strip, **settings)
        regions = TextRegions([region["polygon"] for region in found], scores=[r["score"] for r in found])
        return score_detection([(ground_truth, regions)])

    # whole, the 10000x50 strip shrinks to 512x3 pixels: no word is found
    assert counts(detector).num_matched == 0
    tiled = counts(detector, max_aspect_ratio=8)
    assert len(boxes) > 80
    assert tiled.recall >= 0.95 and tiled.precision >= 0.95, tiled
    strict = SceneTextDetectionPipeline(
        model=model, image_processor=image_processor, device="cpu", min_score=1.0
    )
    assert counts(strict).num_det_care == 0 and counts(strict, min_score=0.4) == tiled


def test_the_ocr_pipeline_reads_a_strip_in_tiles():
    ocr = load_ocr_pipeline(
        DEFAULTS_DIR / "detector", DEFAULTS_DIR / "recognizer", "cpu", max_aspect_ratio=math.inf
    )
    strip, boxes = _text_strip(6000, 50, 30)
    words = [WORDS[index % len(WORDS)] for index in range(len(boxes))]
    # the creation-time bound holds: read whole (the shipped long side of 1280 makes it 1280x11 pixels) the strip
    # gives no word
    assert not {region["text"] for region in ocr(strip)} & set(WORDS)
    read = [region["text"] for region in ocr(strip, max_aspect_ratio=8)]
    # in tiles: one region per word, in reading order; the embedded recognizer misreads a few (WORRD)
    assert len(read) == len(words) and sum(map(str.__eq__, read, words)) >= 0.7 * len(words), read
