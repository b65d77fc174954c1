"""TcmImageProcessor: DB targets and post-processing against the official outputs, pre-processing, Hub loading."""

import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.numpy import load_file

from scenetext.processors.tcm import (
    POST_PROCESSING_PRESETS,
    TEST_SIZES,
    TcmImageProcessor,
    extract_text_boundaries,
    extract_text_boundaries_per_contour,
    make_db_targets,
    parse_size,
)

TARGET_KEYS = {
    "gt_shrink": "shrink_map",
    "gt_shrink_mask": "shrink_mask",
    "gt_thr": "threshold_map",
    "gt_thr_mask": "threshold_mask",
}
# fixture setting name -> our preset
FIXTURE_SETTINGS = {
    "a_mmocr_default_quad": "mmocr",
    "b_tcm_ic15_quad": "icdar2015",
    "c_tcm_tt_poly": "totaltext",
}


@pytest.fixture(scope="module")
def processor() -> TcmImageProcessor:
    return TcmImageProcessor()


def _cases(fixtures_dir, name):
    return json.loads((fixtures_dir / "tcm" / f"{name}.json").read_text())


def _same_outline(ours: np.ndarray, official: np.ndarray, is_quad: bool) -> bool:
    """Identical up to 1 px; OpenCV versions may start a box at another corner, so quads may be rotated."""
    if ours.shape != official.shape:
        return False
    rotations = range(4) if is_quad else range(1)
    return any(np.abs(np.roll(ours, shift, axis=0) - official).max() <= 1 for shift in rotations)


# ---------------------------------------------------------------------------------------------------------------
# Parity with the official DBNetTargets / DB post-processors
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case_index", range(10))
def test_db_targets_match_official(processor, fixtures_dir, case_index):
    case = _cases(fixtures_dir, "db_targets")["cases"][case_index]
    official = load_file(fixtures_dir / "tcm" / "db_targets.safetensors")
    polygons = case["polygons"] + case["polygons_ignore"]
    ignore = [False] * len(case["polygons"]) + [True] * len(case["polygons_ignore"])

    targets = processor.prepare_targets(polygons, (case["h"], case["w"]), ignore=ignore)

    for official_key, key in TARGET_KEYS.items():
        expected = torch.from_numpy(official[f"{case_index:02d}_{official_key}"].astype(np.float32))
        if official_key == "gt_shrink":  # official: instance labels 1..n
            expected = (expected > 0).float()
        assert targets[key].dtype == torch.float32
        torch.testing.assert_close(targets[key], expected, atol=1e-4, rtol=0, msg=f"{case['name']}: {key}")


@pytest.mark.parametrize("map_index", range(10))
@pytest.mark.parametrize("setting", sorted(FIXTURE_SETTINGS))
def test_post_processing_matches_official(processor, fixtures_dir, map_index, setting):
    case = _cases(fixtures_dir, "db_post")["maps"][map_index]
    prob = load_file(fixtures_dir / "tcm" / "db_post.safetensors")[f"{map_index:02d}_prob"]
    official = case["results"][setting]

    (result,) = processor.post_process_text_detection(
        torch.from_numpy(prob)[None, None], preset=FIXTURE_SETTINGS[setting]
    )

    assert len(result["polygons"]) == len(official), case["name"]
    for polygon, score, boundary in zip(result["polygons"], result["scores"], official, strict=True):
        expected = np.asarray(boundary[:-1]).reshape(-1, 2)
        assert _same_outline(polygon.numpy(), expected, is_quad=setting.endswith("quad")), case["name"]
        assert score.item() == pytest.approx(boundary[-1], abs=1e-6)


def _text_like_map(seed: int, height: int = 240, width: int = 320) -> np.ndarray:
    """Blurred rotated word boxes, one ring with a hole, and speckle: contours of every kind, holes included."""
    rng = np.random.default_rng(seed)
    prob = np.zeros((height, width), dtype=np.float32)
    for _ in range(12):
        center = (float(rng.uniform(0, width)), float(rng.uniform(0, height)))
        size = (float(rng.uniform(6, 90)), float(rng.uniform(3, 25)))
        box = cv2.boxPoints((center, size, float(rng.uniform(-40, 40)))).astype(np.int32)
        cv2.fillPoly(prob, [box], float(rng.uniform(0.3, 1.0)))
    cv2.circle(prob, (width // 2, height // 2), 30, 0.9, thickness=8)
    prob = cv2.GaussianBlur(prob, (5, 5), 1.5)
    speckle = rng.random(prob.shape) < 0.01
    prob[speckle] = rng.uniform(0, 1, int(speckle.sum()))
    return prob


def _random_map(seed: int, height: int = 160, width: int = 200) -> np.ndarray:
    """Smoothed noise: hundreds of contours, nested ones included, many touching the border."""
    noise = np.random.default_rng(seed).random((height, width), dtype=np.float32)
    return cv2.GaussianBlur(noise, (0, 0), 1.2)


@pytest.mark.parametrize("setting", sorted(POST_PROCESSING_PRESETS))
@pytest.mark.parametrize("kind", ["text_like", "random"])
def test_one_pass_scoring_gives_the_per_contour_boundaries(setting, kind):
    settings = dict(POST_PROCESSING_PRESETS[setting])
    for seed in range(3):
        prob = _text_like_map(seed) if kind == "text_like" else _random_map(seed)
        if kind == "random":
            settings["threshold"] = 0.5  # the noise sits around 0.5: contours everywhere

        ours = extract_text_boundaries(prob, **settings)
        reference = extract_text_boundaries_per_contour(prob, **settings)

        assert len(reference) > 0
        assert len(ours) == len(reference)
        for (points, score), (expected_points, expected_score) in zip(ours, reference, strict=True):
            np.testing.assert_array_equal(points, expected_points)
            assert score == pytest.approx(expected_score, abs=1e-6)


def test_max_candidates_cuts_both_ways_alike():
    prob = _random_map(0)
    ours = extract_text_boundaries(prob, threshold=0.5, min_score=0, max_candidates=20)
    reference = extract_text_boundaries_per_contour(prob, threshold=0.5, min_score=0, max_candidates=20)
    assert 0 < len(ours) == len(reference) <= 21


@pytest.mark.parametrize("num_workers", [None, 1, 3])
def test_batch_post_processing_in_threads_equals_image_by_image(num_workers):
    processor = TcmImageProcessor(
        size={"shortest_edge": 240, "longest_edge": 1000}, post_processing="icdar2015"
    )
    maps = [_text_like_map(seed) for seed in range(4)] + [_random_map(9, 240, 320)]
    sizes = [(480, 640), (240, 320), (120, 160), (240, 320), (240, 320)]

    batched = processor.post_process_text_detection(
        torch.from_numpy(np.stack(maps))[:, None], target_sizes=sizes, num_workers=num_workers
    )

    assert len(batched) == len(maps)
    for prob, size, result in zip(maps, sizes, batched, strict=True):
        (alone,) = processor.post_process_text_detection(torch.from_numpy(prob)[None], target_sizes=[size])
        scale = np.array([size[1] / prob.shape[1], size[0] / prob.shape[0]])
        expected = extract_text_boundaries_per_contour(prob, **POST_PROCESSING_PRESETS["icdar2015"])
        assert len(result["polygons"]) == len(alone["polygons"]) == len(expected)
        for polygon, (points, _) in zip(result["polygons"], expected, strict=True):
            np.testing.assert_allclose(polygon.numpy(), points * scale, rtol=0, atol=1e-4)
        torch.testing.assert_close(result["scores"], alone["scores"], rtol=0, atol=0)
        torch.testing.assert_close(result["boxes"], alone["boxes"], rtol=0, atol=0)


def test_num_workers_must_be_positive(processor):
    with pytest.raises(ValueError, match="num_workers"):
        processor.post_process_text_detection(torch.zeros(1, 32, 32), num_workers=0)


# ---------------------------------------------------------------------------------------------------------------
# DB targets on crafted cases and bad polygons
# ---------------------------------------------------------------------------------------------------------------


def test_targets_of_a_rectangle_have_known_shrink_and_border():
    # 60 x 20 box: D = int(1200 * 0.84 / 160 + 0.5) = 6, so the kernel is x 16..64, y 16..24 (inclusive).
    targets = make_db_targets([[10, 10, 70, 10, 70, 30, 10, 30]], 40, 80)
    rows, cols = np.nonzero(targets.shrink_map)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (16, 24, 16, 64)
    assert targets.shrink_mask.min() == 1
    # the threshold map peaks (thr_max) on the outline and falls back to thr_min away from it
    assert targets.threshold_map[10, 40] == pytest.approx(0.7, abs=1e-4)
    assert targets.threshold_map[20, 40] == pytest.approx(0.3)
    assert targets.threshold_map[0, 0] == pytest.approx(0.3)


@pytest.mark.parametrize(
    "polygon",
    [
        [[10, 10], [50, 10]],  # fewer than 3 points
        [[10, 10], [50, 40], [50, 10], [10, 40]],  # self-intersecting bow tie
        [[10, 10], [30, 10], [50, 10]],  # zero area
        [[10, 10], [50, 10], [50, 17], [10, 17]],  # short side 7 < 8
    ],
    ids=["two_points", "bow_tie", "zero_area", "short_side_7"],
)
def test_unusable_polygons_are_ignored_not_crashing(polygon):
    targets = make_db_targets([polygon, [[5, 50], [60, 50], [60, 70], [5, 70]]], 80, 80)
    assert targets.ignored == (True, False)
    assert targets.shrink_map[:45].max() == 0  # nothing learned from the bad polygon ...
    assert targets.shrink_mask[10, 10] == 0  # ... and its pixels are masked out
    assert targets.threshold_mask[:40].max() == 0
    assert targets.shrink_map[60, 30] == 1  # the good one is unaffected


def test_polygons_outside_the_image_are_clipped_or_contribute_nothing():
    targets = make_db_targets([[[200, 200], [260, 200], [260, 240], [200, 240]]], 50, 50)
    assert targets.shrink_map.max() == 0 and targets.threshold_mask.max() == 0
    assert targets.shrink_mask.min() == 1
    partial = make_db_targets([[[-30, 10], [30, 10], [30, 40], [-30, 40]]], 50, 50)
    assert partial.shrink_map[25, :20].min() == 1 and partial.shrink_map[:, 30:].max() == 0


def test_hash_transcriptions_are_dont_care(processor):
    box = [[10, 10], [70, 10], [70, 30], [10, 30]]
    targets = processor.prepare_targets([box], (40, 80), texts=["###"])
    assert targets["shrink_map"].max() == 0
    assert targets["shrink_mask"][20, 40] == 0


@pytest.mark.parametrize(
    ("polygon", "message"),
    [
        ([10, 10, 50, 10, 50], "even number"),
        ([[10, 10, 1], [50, 10, 1], [50, 40, 1]], r"\(N, 2\)"),
        ([[10, float("nan")], [50, 10], [50, 40]], "finite"),
        ([[10, 10], [5e9, 10], [50, 40]], "beyond"),
        ([["a", "b"], [1, 2], [3, 4]], "numeric"),
    ],
)
def test_malformed_polygons_raise_naming_the_polygon(processor, polygon, message):
    good = [[0, 0], [20, 0], [20, 20], [0, 20]]
    with pytest.raises(ValueError, match=f"polygon 1.*{message}"):
        processor.prepare_targets([good, polygon], (40, 80))


def test_ignore_flags_must_match_polygons(processor):
    with pytest.raises(ValueError, match="ignore has 1 flags for 2 polygons"):
        processor.prepare_targets([[0, 0, 9, 0, 9, 9], [0, 0, 9, 0, 9, 9]], (20, 20), ignore=[True])


# ---------------------------------------------------------------------------------------------------------------
# Pre-processing
# ---------------------------------------------------------------------------------------------------------------


def _normalized(processor, rgb):
    return (torch.tensor(rgb, dtype=torch.float32) - torch.tensor(processor.image_mean)) / torch.tensor(
        processor.image_std
    )


def test_icdar2015_scale_and_padding(processor):
    image = Image.new("RGB", (1280, 720), (200, 100, 50))
    batch = processor(image)
    # official: 1280x720 -> 1820x1024 (short side 1024), padded to 1824 wide
    assert batch["resized_sizes"].tolist() == [[1024, 1820]]
    assert batch["original_sizes"].tolist() == [[720, 1280]]
    assert batch["pixel_values"].shape == (1, 3, 1024, 1824)
    torch.testing.assert_close(batch["pixel_values"][0, :, 500, 1000], _normalized(processor, [200, 100, 50]))
    assert batch["pixel_values"][0, :, :, 1820:].abs().max() == 0  # zero padding after normalisation


def test_long_side_cap_and_tiny_images():
    processor = TcmImageProcessor(size={"shortest_edge": 100, "longest_edge": 300})
    assert processor.get_resized_size(10, 1000) == (3, 300)  # the cap wins over the short side
    assert processor.get_resized_size(1, 10_000) == (1, 300)  # never below one pixel
    batch = processor(Image.new("L", (1, 1), 77))
    assert batch["pixel_values"].shape == (1, 3, 128, 128)
    torch.testing.assert_close(batch["pixel_values"][0, :, 50, 50], _normalized(processor, [77, 77, 77]))


def test_size_forms_resize_a_photo_and_a_strip():
    keep_ratio_long_side = TcmImageProcessor(size={"longest_edge": 1280})
    assert keep_ratio_long_side.get_resized_size(720, 1280) == (720, 1280)
    assert keep_ratio_long_side.get_resized_size(3000, 4000) == (960, 1280)
    assert keep_ratio_long_side.get_resized_size(50, 10000) == (6, 1280)
    fixed = TcmImageProcessor(size={"height": 736, "width": 1280})  # MhLiao/DB's ICDAR 2015 test resize
    assert fixed.get_resized_size(720, 1280) == (736, 1280)
    assert fixed.get_resized_size(100, 40) == (736, 1280)
    batch = fixed(np.zeros((100, 40, 3), np.uint8))
    assert batch["pixel_values"].shape == (1, 3, 736, 1280) and batch["resized_sizes"].tolist() == [
        [736, 1280]
    ]
    # a call-time size overrides the processor's and is saved with neither
    official = TcmImageProcessor()
    batch = official(np.zeros((720, 1280, 3), np.uint8), size={"longest_edge": 640})
    assert batch["resized_sizes"].tolist() == [[360, 640]] and official.size == TEST_SIZES["icdar2015"]


def test_size_round_trips_through_the_saved_config(tmp_path):
    TcmImageProcessor(size={"longest_edge": 1536}).save_pretrained(tmp_path)
    loaded = TcmImageProcessor.from_pretrained(tmp_path)
    assert loaded.size == {"longest_edge": 1536} and loaded.get_resized_size(768, 1024) == (1152, 1536)


@pytest.mark.parametrize(
    ("spec", "size"),
    [
        ("icdar2015", {"shortest_edge": 1024, "longest_edge": 4068}),
        ("TotalText", {"shortest_edge": 800, "longest_edge": 2944}),
        ("1280", {"longest_edge": 1280}),
        ("1024:4068", {"shortest_edge": 1024, "longest_edge": 4068}),
        ("736x1280", {"height": 736, "width": 1280}),
    ],
)
def test_parse_size_reads_the_text_forms(spec, size):
    assert parse_size(spec) == size


@pytest.mark.parametrize("spec", ["big", "1280x", "1:2:3", "0", "-5", "12.5"])
def test_parse_size_names_the_forms_it_accepts(spec):
    with pytest.raises(ValueError, match=r"(unknown detector size|>= 1).*"):
        parse_size(spec)


@pytest.mark.parametrize(
    "size",
    [
        {"shortest_edge": 100},
        {"height": 10},
        {"longest_edge": 0},
        {"longest_edge": 2.5},
        {"width": 5, "x": 1},
    ],
)
def test_malformed_sizes_are_refused(size):
    with pytest.raises(ValueError, match="size"):
        TcmImageProcessor(size=size)
    with pytest.raises(ValueError, match="size"):
        TcmImageProcessor()(np.zeros((8, 8, 3), np.uint8), size=size)


def test_batch_of_different_sizes_pads_to_a_common_multiple_of_32():
    processor = TcmImageProcessor(do_resize=False)
    batch = processor([np.zeros((40, 70, 3), np.uint8), np.zeros((65, 20, 3), np.uint8)])
    assert batch["pixel_values"].shape == (2, 3, 96, 96)
    assert batch["resized_sizes"].tolist() == [[40, 70], [65, 20]]


def _palette_image(color):
    image = Image.new("P", (4, 3), 1)
    image.putpalette([0, 0, 0, *color])
    return image


def test_batch_tensor_equals_list_of_images():
    processor = TcmImageProcessor(size={"shortest_edge": 40, "longest_edge": 100})
    images = torch.randint(0, 256, (2, 3, 20, 30), dtype=torch.uint8)
    from_batch = processor.preprocess(images)["pixel_values"]
    torch.testing.assert_close(from_batch, processor(list(images))["pixel_values"])
    torch.testing.assert_close(from_batch[1:], processor(images[1].permute(1, 2, 0).numpy())["pixel_values"])


@pytest.mark.parametrize(
    ("image", "rgb"),
    [
        (Image.new("L", (4, 3), 90), [90, 90, 90]),
        (Image.new("LA", (4, 3), (90, 0)), [90, 90, 90]),
        (Image.new("RGBA", (4, 3), (10, 20, 30, 0)), [10, 20, 30]),  # alpha dropped, as cv2.imread does
        (Image.new("CMYK", (4, 3), (0, 255, 255, 0)), [255, 0, 0]),
        (Image.new("1", (4, 3), 1), [255, 255, 255]),
        (Image.fromarray(np.full((3, 4), 65535, np.uint16)), [255, 255, 255]),  # I;16, not clipped at 255
        (Image.fromarray(np.full((3, 4), 257 * 40, np.uint16)), [40, 40, 40]),
        (_palette_image((10, 20, 30)), [10, 20, 30]),
        (np.full((3, 4, 3), (10, 20, 30), np.uint8), [10, 20, 30]),
        (np.full((3, 4), 128, np.uint16), [0, 0, 0]),  # 16-bit range
        (np.full((3, 4, 4), (10, 20, 30, 255), np.uint8), [10, 20, 30]),
        (torch.tensor([10, 20, 30], dtype=torch.uint8).view(3, 1, 1).expand(3, 3, 4), [10, 20, 30]),
        (torch.full((1, 3, 4), 0.2), [51, 51, 51]),
    ],
    ids=[
        "L",
        "LA",
        "RGBA",
        "CMYK",
        "1",
        "I16_max",
        "I16_40",
        "P",
        "np_hwc",
        "np_u16",
        "np_rgba",
        "pt_chw",
        "pt_float",
    ],
)
def test_any_input_mode_becomes_rgb(image, rgb):
    processor = TcmImageProcessor(do_resize=False)
    pixel_values = processor(image)["pixel_values"]
    assert pixel_values.shape == (1, 3, 32, 32)
    torch.testing.assert_close(pixel_values[0, :, 1, 2], _normalized(processor, rgb))


def test_exif_orientation_is_honoured_unless_turned_off():
    image = Image.new("RGB", (40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    image.info["exif"] = exif.tobytes()
    image = Image.open(_roundtrip_jpeg(image, exif))
    assert TcmImageProcessor(do_resize=False)(image)["original_sizes"].tolist() == [[40, 20]]
    as_stored = TcmImageProcessor(do_resize=False, apply_exif_orientation=False)(image)
    assert as_stored["original_sizes"].tolist() == [[20, 40]]


def _roundtrip_jpeg(image, exif):
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    buffer.seek(0)
    return buffer


def test_oversized_images_are_rejected_with_a_clear_message(processor):
    huge = np.zeros((10_000, 10_000, 3), np.uint8)  # calloc'd: no memory is touched
    with pytest.raises(
        ValueError, match=r"image 0 has 10000x10000 = 100,000,000 pixels, above max_image_pixels"
    ):
        processor(huge)


@pytest.mark.parametrize(
    ("image", "error", "message"),
    [
        (np.zeros((0, 5, 3), np.uint8), ValueError, "empty"),
        (np.full((4, 4, 3), 2.0), ValueError, r"\[0, 1\]"),
        (np.zeros((5, 5, 2), np.uint8), ValueError, "C in 1, 3, 4"),
        ("picture.png", TypeError, "expected a PIL image"),
    ],
)
def test_bad_images_raise(processor, image, error, message):
    with pytest.raises(error, match=message):
        processor([image])


def test_labels_are_targets_of_the_rescaled_polygons():
    processor = TcmImageProcessor(size={"shortest_edge": 40, "longest_edge": 1000})
    polygon = [[20, 20], [140, 20], [140, 60], [20, 60]]  # original pixels of a 80 x 160 image
    batch = processor(
        [np.zeros((80, 160, 3), np.uint8), np.zeros((40, 40, 3), np.uint8)],
        polygons=[[polygon], []],
    )
    expected = processor.prepare_targets([np.array(polygon) / 2], (40, 80))
    assert set(batch["labels"]) == {"shrink_map", "shrink_mask", "threshold_map", "threshold_mask"}
    assert batch["labels"]["shrink_map"].shape == (2, 64, 96)
    for key, value in expected.items():
        torch.testing.assert_close(batch["labels"][key][0, :40, :80], value)
    assert batch["labels"]["shrink_mask"][0, 40:].max() == 0  # padding is masked out
    assert batch["labels"]["shrink_mask"][1, :40, :40].min() == 1


# ---------------------------------------------------------------------------------------------------------------
# Post-processing in original-image pixels
# ---------------------------------------------------------------------------------------------------------------


def _rectangle_map(height, width, top, bottom, left, right):
    prob = torch.zeros(height, width)
    prob[top:bottom, left:right] = 0.9
    return prob


def test_results_are_mapped_back_to_original_pixels():
    processor = TcmImageProcessor(size={"shortest_edge": 50, "longest_edge": 1000}, post_processing="mmocr")
    assert processor.get_resized_size(100, 200) == (50, 100)
    prob = _rectangle_map(64, 128, 10, 30, 20, 80)[None, None]  # padded map of the 50 x 100 resized image

    (result,) = processor.post_process_text_detection(prob, target_sizes=[(100, 200)])

    (polygon,) = result["polygons"]
    assert result["scores"].tolist() == pytest.approx([0.9])
    # kernel x 20..79, y 10..29 unclipped by A * 1.5 / L = 59 * 19 * 1.5 / 156 = 10.8 px, then x2 to the original
    center = polygon.mean(0)
    assert center.tolist() == pytest.approx([99.0, 39.0], abs=1.0)
    width, height = (polygon.max(0).values - polygon.min(0).values).tolist()
    assert width == pytest.approx(2 * (59 + 2 * 10.8), abs=2.5)
    assert height == pytest.approx(2 * (19 + 2 * 10.8), abs=2.5)
    x_min, y_min, x_max, y_max = result["boxes"][0].tolist()
    assert y_min == 0  # the unclipped box reaches above the image: boxes are clipped, polygons are not
    assert polygon[:, 1].min() < 0
    assert (x_min, x_max, y_max) == pytest.approx(
        (polygon[:, 0].min().item(), polygon[:, 0].max().item(), polygon[:, 1].max().item())
    )


def test_batching_does_not_change_results():
    processor = TcmImageProcessor(size={"shortest_edge": 64, "longest_edge": 1000})
    small = _rectangle_map(64, 64, 10, 30, 10, 50)
    # in a batch with a larger image, the small image's map is padded; a blob there must not count
    padded = torch.zeros(128, 128)
    padded[:64, :64] = small
    padded[90:120, 10:100] = 0.95
    alone = processor.post_process_text_detection(small[None, None], target_sizes=[(64, 64)])
    batched = processor.post_process_text_detection(
        torch.stack([padded, _rectangle_map(128, 128, 0, 0, 0, 0)])[:, None],
        target_sizes=[(64, 64), (128, 128)],
    )
    assert len(batched[0]["polygons"]) == len(alone[0]["polygons"]) == 1
    torch.testing.assert_close(batched[0]["polygons"][0], alone[0]["polygons"][0])
    assert batched[1]["scores"].numel() == 0 and batched[1]["boxes"].shape == (0, 4)


def test_call_time_settings_override_the_preset(processor):
    prob = _rectangle_map(64, 64, 10, 30, 10, 50)[None]
    assert len(processor.post_process_text_detection(prob)[0]["polygons"]) == 1
    assert processor.post_process_text_detection(prob, min_score=0.95)[0]["scores"].numel() == 0
    poly = processor.post_process_text_detection({"prob_map": prob[:, None]}, box_type="poly")[0]
    assert poly["polygons"][0].shape[0] > 4


def test_presets():
    totaltext = TcmImageProcessor.from_preset("totaltext")
    assert totaltext.size == {"shortest_edge": 800, "longest_edge": 2944}
    assert totaltext.post_processing == POST_PROCESSING_PRESETS["totaltext"]
    assert TcmImageProcessor.from_preset("td500").post_processing["approx_ratio"] == 0
    with pytest.raises(ValueError, match="unknown preset 'ic15'"):
        TcmImageProcessor.from_preset("ic15")
    with pytest.raises(ValueError, match="unknown post-processing settings"):
        TcmImageProcessor(post_processing={"box_thresh": 0.5})


def test_post_processing_input_errors(processor):
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        processor.post_process_text_detection(torch.zeros(4, 4))
    with pytest.raises(ValueError, match="target_sizes must hold one positive"):
        processor.post_process_text_detection(torch.zeros(2, 1, 4, 4), target_sizes=[(4, 4)])
    with pytest.raises(ValueError, match="box_type must be 'quad' or 'poly'"):
        processor.post_process_text_detection(torch.zeros(1, 1, 4, 4), box_type="rbox")


# ---------------------------------------------------------------------------------------------------------------
# Saving and Hub loading
# ---------------------------------------------------------------------------------------------------------------


def test_save_and_load_round_trip(tmp_path):
    processor = TcmImageProcessor.from_preset("td500", apply_exif_orientation=False, min_text_size=6)
    processor.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert config["auto_map"] == {"AutoImageProcessor": "image_processing_tcm.TcmImageProcessor"}
    assert (tmp_path / "image_processing_tcm.py").exists() and (tmp_path / "db_geometry_tcm.py").exists()
    loaded = TcmImageProcessor.from_pretrained(tmp_path)
    assert loaded.to_dict() == processor.to_dict()
    assert loaded.post_processing["threshold"] == 0.08 and loaded.size["shortest_edge"] == 736


@pytest.mark.slow
def test_auto_image_processor_loads_remote_code_in_isolation(tmp_path, run_isolated):
    processor = TcmImageProcessor(
        size={"shortest_edge": 64, "longest_edge": 256}, post_processing="totaltext"
    )
    processor.save_pretrained(tmp_path)
    image = np.random.default_rng(0).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    np.save(tmp_path / "image.npy", image)
    prob = _rectangle_map(64, 128, 10, 30, 20, 80)
    np.save(tmp_path / "prob.npy", prob.numpy())
    expected_pixels = processor(image)["pixel_values"]
    expected = processor.post_process_text_detection(prob[None, None], target_sizes=[(48, 80)])[0]

    stdout = run_isolated(
        f"""
        import json, numpy as np, torch
        from transformers import AutoImageProcessor
        processor = AutoImageProcessor.from_pretrained({str(tmp_path)!r}, trust_remote_code=True)
        assert type(processor).__module__.startswith("transformers_modules"), type(processor).__module__
        pixels = processor(np.load({str(tmp_path / "image.npy")!r}))["pixel_values"]
        prob = torch.from_numpy(np.load({str(tmp_path / "prob.npy")!r}))[None, None]
        result = processor.post_process_text_detection(prob, target_sizes=[(48, 80)])[0]
        print(json.dumps({{
            "pixels": pixels.flatten()[::97].tolist(),
            "shape": list(pixels.shape),
            "polygon": result["polygons"][0].flatten().tolist(),
            "score": result["scores"].tolist(),
        }}))
        """
    )
    loaded = json.loads(stdout.strip().splitlines()[-1])
    assert loaded["shape"] == list(expected_pixels.shape)
    assert loaded["pixels"] == pytest.approx(expected_pixels.flatten()[::97].tolist(), abs=1e-6)
    assert loaded["polygon"] == pytest.approx(expected["polygons"][0].flatten().tolist())
    assert loaded["score"] == pytest.approx(expected["scores"].tolist())


@pytest.mark.slow
def test_remote_files_import_without_opencv_and_fail_clearly_on_use(tmp_path, run_isolated):
    TcmImageProcessor().save_pretrained(tmp_path)
    stdout = run_isolated(
        f"""
        import sys
        class _BlockGeometry:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("cv2", "pyclipper", "shapely"):
                    raise ImportError(name + " is not installed here")
        sys.meta_path.insert(0, _BlockGeometry())
        import numpy as np
        from transformers import AutoImageProcessor
        processor = AutoImageProcessor.from_pretrained({str(tmp_path)!r}, trust_remote_code=True)
        for call in (lambda: processor(np.zeros((8, 8, 3), np.uint8)),
                     lambda: processor.prepare_targets([], (8, 8))):
            try:
                call()
            except ImportError as error:
                print(error)
        """
    )
    lines = stdout.strip().splitlines()
    assert "pip install opencv-python-headless" in lines[0]
    assert "pip install opencv-python-headless pyclipper shapely" in lines[1]


def test_pan_and_fcenet_processors_default_to_their_official_mean_and_test_scales():
    from scenetext.processors.tcm.image_processing_tcm import DB_MEAN, IMAGENET_MEAN

    assert TcmImageProcessor().image_mean == list(DB_MEAN)
    assert TcmImageProcessor(head_type="pan").image_mean == list(IMAGENET_MEAN)
    assert TcmImageProcessor(head_type="fcenet", image_mean=DB_MEAN).image_mean == list(DB_MEAN)
    assert TcmImageProcessor.from_preset("ctw1500", head_type="pan").size == {
        "shortest_edge": 640,
        "longest_edge": 3000,
    }
    fcenet = TcmImageProcessor.from_preset("icdar2015", head_type="fcenet")
    assert fcenet.get_resized_size(720, 1280) == (1271, 2260)  # FCENet's (2260, 2260) keep-ratio scale
    # datasets the head's configs give no scale for keep DBNet's
    assert (
        TcmImageProcessor.from_preset("td500", head_type="pan").size
        == TcmImageProcessor.from_preset("td500").size
    )
    with pytest.raises(ValueError, match="head_type"):
        TcmImageProcessor(head_type="east")


def test_without_upscaling_small_images_keep_their_size_and_large_ones_shrink(tmp_path):
    processor = TcmImageProcessor(size={"longest_edge": 1280}, do_upscale=False)
    assert processor.get_resized_size(380, 360) == (380, 360)
    assert processor.get_resized_size(1440, 2560) == (720, 1280)
    batch = processor(np.zeros((300, 400, 3), np.uint8))
    assert batch["resized_sizes"].tolist() == [[300, 400]]
    # The official keep-ratio rule still enlarges by default, and a fixed size is a fixed size either way.
    assert TcmImageProcessor(size={"longest_edge": 1280}).get_resized_size(380, 360) == (1280, 1213)
    assert TcmImageProcessor(size={"height": 64, "width": 96}, do_upscale=False).get_resized_size(8, 8) == (
        64,
        96,
    )
    processor.save_pretrained(tmp_path)
    assert TcmImageProcessor.from_pretrained(tmp_path).do_upscale is False
