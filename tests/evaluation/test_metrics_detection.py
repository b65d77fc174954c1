"""The ICDAR 2015 IoU protocol on crafted cases whose numbers are worked out by hand in the comments."""

import pytest

from scenetext.evaluation.metrics.detection import (
    MMOCR_SCORE_THRESHOLDS,
    DetectionCounts,
    TextRegions,
    match_image,
    polygon_iou,
    score_detection,
    score_end_to_end,
    sweep_score_thresholds,
)


def box(x0: float, y0: float, x1: float, y1: float, clockwise: bool = True) -> list[float]:
    """An axis-aligned quadrilateral; clockwise in image coordinates (y down) like ICDAR files."""
    points = [x0, y0, x1, y0, x1, y1, x0, y1]
    if clockwise:
        return points
    return [x0, y0, x0, y1, x1, y1, x1, y0]


def gt(*polygons, texts=None) -> TextRegions:
    return TextRegions(list(polygons), list(texts) if texts else ["word"] * len(polygons))


def det(*polygons, scores=None, texts=None) -> TextRegions:
    return TextRegions(list(polygons), texts, scores)


def counts(ground_truth: TextRegions, detections: TextRegions) -> tuple[int, int, int]:
    result = match_image(ground_truth, detections).counts
    return result.num_gt_care, result.num_det_care, result.num_matched


def test_identical_boxes_in_either_orientation_match():
    assert counts(gt(box(0, 0, 10, 4)), det(box(0, 0, 10, 4, clockwise=False))) == (1, 1, 1)
    assert counts(gt(box(0, 0, 10, 4, clockwise=False)), det(box(0, 0, 10, 4))) == (1, 1, 1)


def test_iou_of_exactly_one_half_is_not_a_match():
    # GT 2x1 inside a 4x1 detection: IoU = 2 / 4 = 0.5 exactly.
    assert polygon_iou(box(0, 0, 2, 1), box(0, 0, 4, 1)) == 0.5
    assert counts(gt(box(0, 0, 2, 1)), det(box(0, 0, 4, 1))) == (1, 1, 0)
    # Width 3.99: IoU = 2 / 3.99 = 0.5013 > 0.5.
    assert counts(gt(box(0, 0, 2, 1)), det(box(0, 0, 3.99, 1))) == (1, 1, 1)


def test_nested_detection_matches_on_its_area_ratio():
    # A detection inside the GT has IoU = its area / GT area: 60 / 100 matches, 50 / 100 does not.
    assert counts(gt(box(0, 0, 10, 10)), det(box(0, 0, 10, 6))) == (1, 1, 1)
    assert counts(gt(box(0, 0, 10, 10)), det(box(0, 0, 10, 5))) == (1, 1, 0)


def test_touching_boxes_do_not_overlap():
    assert polygon_iou(box(0, 0, 10, 4), box(10, 0, 20, 4)) == 0.0
    assert counts(gt(box(0, 0, 10, 4)), det(box(10, 0, 20, 4))) == (1, 1, 0)


def test_matching_is_greedy_in_file_order_not_optimal():
    # det [2,12] has IoU 8/12 with both GT [0,10] and GT [4,14]; det [0,10] has IoU 1 with GT [0,10] and
    # 6/14 with GT [4,14]. Listed first, det [2,12] takes GT [0,10] and GT [4,14] is left unmatched.
    ground_truth = gt(box(0, 0, 10, 1), box(4, 0, 14, 1))
    assert counts(ground_truth, det(box(2, 0, 12, 1), box(0, 0, 10, 1))) == (2, 2, 1)
    assert counts(ground_truth, det(box(0, 0, 10, 1), box(2, 0, 12, 1))) == (2, 2, 2)


def test_first_detection_above_threshold_wins_not_the_best():
    match = match_image(gt(box(0, 0, 10, 1)), det(box(0, 0, 16, 1), box(0, 0, 10, 1)))
    assert match.matches == [(0, 0)]  # IoU 10/16 with det 0 is enough; det 1 (IoU 1) stays a false positive


def test_detection_mostly_inside_a_dont_care_region_leaves_the_counts():
    ground_truth = gt(box(0, 0, 10, 10), box(20, 0, 30, 10), texts=["word", "###"])
    # 60% of the detection's area lies inside the don't-care box: removed from precision.
    match = match_image(ground_truth, det(box(0, 0, 10, 10), box(24, 0, 34, 10)))
    assert match.dont_care_gt == [1]
    assert match.discarded_detections == [1]
    assert (match.counts.num_gt_care, match.counts.num_det_care, match.counts.num_matched) == (1, 1, 1)
    # Exactly half inside is not "more than half": the detection stays, as a false positive.
    assert counts(ground_truth, det(box(0, 0, 10, 10), box(25, 0, 35, 10))) == (1, 2, 1)


def test_dont_care_overlaps_are_not_summed():
    # 40% of the detection in each of two don't-care boxes: 80% in total, but neither exceeds half.
    ground_truth = gt(box(0, 0, 4, 10), box(6, 0, 10, 10), texts=["###", "###"])
    assert counts(ground_truth, det(box(0, 0, 10, 10))) == (0, 1, 0)


def test_discarded_detection_cannot_match_a_care_region():
    # The detection equals the care GT (IoU 1) but 75% of it lies inside a larger don't-care region.
    ground_truth = gt(box(0, 0, 4, 10), box(1, 0, 20, 10), texts=["word", "###"])
    assert counts(ground_truth, det(box(0, 0, 4, 10))) == (1, 0, 0)


def test_dont_care_ground_truth_is_never_matched():
    assert counts(gt(box(0, 0, 10, 10), texts=["###"]), det(box(20, 0, 30, 10))) == (0, 1, 0)


def test_polygons_with_many_points_in_both_orientations():
    # An L-shaped GT (area 10*4 + 4*6 = 64) against its bounding box (area 100): IoU 0.64.
    l_shape = [0, 0, 10, 0, 10, 4, 4, 4, 4, 10, 0, 10]
    points = list(zip(l_shape[::2], l_shape[1::2], strict=True))
    reversed_l_shape = [value for point in reversed(points) for value in point]
    assert polygon_iou(l_shape, box(0, 0, 10, 10)) == pytest.approx(0.64)
    assert polygon_iou(reversed_l_shape, box(0, 0, 10, 10)) == pytest.approx(0.64)
    assert counts(gt(reversed_l_shape), det(box(0, 0, 10, 10))) == (1, 1, 1)
    # Point pairs are accepted as well as flat lists.
    assert counts(gt([[0, 0], [10, 0], [10, 4], [0, 4]]), det(box(0, 0, 10, 4))) == (1, 1, 1)


def test_empty_images():
    assert counts(gt(), det()) == (0, 0, 0)
    assert counts(gt(), det(box(0, 0, 1, 1))) == (0, 1, 0)
    assert counts(gt(box(0, 0, 1, 1)), det()) == (1, 0, 0)


def test_dataset_rates_come_from_summed_counts():
    # Image 1: 1 GT found by 1 detection. Image 2: 3 GT, nothing detected.
    # Summed: R = 1/4, P = 1/1, H = 2 * 0.25 / 1.25 = 0.4 (averaging images would give R = 0.5).
    images = [
        (gt(box(0, 0, 5, 5)), det(box(0, 0, 5, 5))),
        (gt(box(0, 0, 5, 5), box(10, 0, 15, 5), box(20, 0, 25, 5)), det()),
    ]
    total = score_detection(images)
    assert (total.num_gt_care, total.num_det_care, total.num_matched) == (4, 1, 1)
    assert (total.recall, total.precision, total.hmean) == (0.25, 1.0, pytest.approx(0.4))


def test_zero_denominators_give_zero_rates_as_the_official_method_numbers():
    assert (DetectionCounts(0, 0, 0).precision, DetectionCounts(0, 0, 0).recall) == (0.0, 0.0)
    assert DetectionCounts(0, 0, 0).hmean == 0.0


def test_degenerate_detection_is_kept_as_a_false_positive_with_a_warning():
    with pytest.warns(UserWarning, match="invalid polygon"):
        result = counts(gt(box(0, 0, 10, 4)), det(box(0, 0, 10, 4), [0, 0, 5, 0, 10, 0, 2, 0]))
    assert result == (1, 2, 1)


def test_self_intersecting_polygon_is_repaired_not_dropped():
    # The bow-tie 0,0 10,0 0,10 10,10 is two triangles of area 25 each; against the 10x10 box: IoU 0.5.
    bow_tie = [0, 0, 10, 0, 0, 10, 10, 10]
    with pytest.warns(UserWarning, match="Self-intersection"):
        assert polygon_iou(bow_tie, box(0, 0, 10, 10)) == pytest.approx(0.5)


def test_malformed_polygons_are_rejected():
    with pytest.raises(ValueError, match="even number"):
        polygon_iou([0, 0, 1, 0, 1], box(0, 0, 1, 1))
    with pytest.raises(ValueError, match="at least 3"):
        polygon_iou([0, 0, 1, 1], box(0, 0, 1, 1))
    with pytest.raises(ValueError, match="2 scores for 1 polygons"):
        TextRegions([box(0, 0, 1, 1)], scores=[0.5, 0.7])


def test_score_threshold_sweep_follows_mmocr():
    # Three GT; detections: two correct (scores 0.95 and 0.45) and one false positive (0.55); a fourth
    # correct detection has score exactly 0.3, which the strict pre-filter (> 0.3) removes everywhere.
    ground_truth = gt(box(0, 0, 5, 5), box(10, 0, 15, 5), box(20, 0, 25, 5))
    detections = det(
        box(0, 0, 5, 5),
        box(10, 0, 15, 5),
        box(40, 0, 45, 5),
        box(20, 0, 25, 5),
        scores=[0.95, 0.45, 0.55, 0.3],
    )
    sweep = sweep_score_thresholds([(ground_truth, detections)])
    assert list(sweep.per_threshold) == list(MMOCR_SCORE_THRESHOLDS)
    # thr 0.3/0.4: 3 dets, 2 matched: P 2/3, R 2/3. thr 0.5: 2 dets, 1 matched: P 1/2, R 1/3.
    # thr >= 0.6: 1 det, 1 matched: P 1, R 1/3 -> H 0.5. Best: the first threshold with H 2/3.
    assert sweep.best_threshold == MMOCR_SCORE_THRESHOLDS[0]
    assert sweep.best.hmean == pytest.approx(2 / 3)
    assert sweep.per_threshold[MMOCR_SCORE_THRESHOLDS[2]].hmean == pytest.approx(2 * 0.5 / 3 / (0.5 + 1 / 3))
    assert sweep.per_threshold[MMOCR_SCORE_THRESHOLDS[-1]].hmean == pytest.approx(0.5)


def test_sweep_needs_scores():
    with pytest.raises(ValueError, match="scores"):
        sweep_score_thresholds([(gt(box(0, 0, 1, 1)), det(box(0, 0, 1, 1)))])


def test_end_to_end_counts_matched_and_correctly_read_regions():
    ground_truth = gt(box(0, 0, 10, 4), box(20, 0, 30, 4), box(40, 0, 50, 4), texts=["Hello", "World!", "!!"])
    detections = det(box(0, 0, 10, 4), box(20, 0, 30, 4), box(40, 0, 50, 4), texts=["HELLO", "w0rld", "!!"])
    # "!!" is empty under the 36-char protocol, so that GT is don't care and its detection is discarded.
    total = score_end_to_end([(ground_truth, detections)], protocol=36)
    assert (total.num_gt_care, total.num_det_care, total.num_matched) == (2, 2, 1)
    # Under 94 characters case counts: "HELLO" != "Hello"; "!!" is a care word read correctly.
    total = score_end_to_end([(ground_truth, detections)], protocol=94)
    assert (total.num_gt_care, total.num_det_care, total.num_matched) == (3, 3, 1)
