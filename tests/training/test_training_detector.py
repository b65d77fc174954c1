"""Detector training: the official scene augmentation, parameter groups, learning, exact resumption."""

import cv2
import numpy as np
import pytest
import torch

from scenetext.data.augment_detection import SceneAugment
from scenetext.modeling.tcm import TcmForSceneTextDetection
from scenetext.processors.tcm.image_processing_tcm import IMAGENET_MEAN
from scenetext.training.config import load_config
from scenetext.training.detection import DetectionTask, tcm_parameter_groups

from .runs import check_killed_run_resumes_to_identical_losses, check_loss_falls

pytestmark = pytest.mark.usefixtures("single_thread")


# Few small scenes and a constant rate, so the loss visibly falls in a few dozen steps on 2 CPU cores.
QUICK = [
    "batch_size=2",
    "data.train.num_samples=4",
    "data.train.samples_per_shard=2",
    "data.eval.num_samples=2",
    "data.augment.crop_size=[64,64]",
    "log_with=null",
    "eval_every=1000",
    "optimizer.learning_rate=3e-3",
    "optimizer.schedule=constant",
]


def _rectangle_scene() -> tuple[np.ndarray, list[list[float]]]:
    image = np.zeros((150, 300, 3), dtype=np.uint8)
    image[40:70, 100:220] = 255  # pixels 100..219 x 40..69: the corners of the region are (100, 40)-(220, 70)
    return image, [[100, 40, 220, 40, 220, 70, 100, 70]]


@pytest.mark.parametrize("seed", range(8))
def test_polygon_stays_on_the_drawn_rectangle(seed):
    image, polygons = _rectangle_scene()
    scene = SceneAugment(crop_size=(160, 160))(image, polygons, None, seed=seed)
    assert scene.image.shape == (160, 160, 3) and scene.ignore == [False]
    (polygon,) = scene.polygons
    under_polygon = np.zeros(scene.image.shape[:2], dtype=np.uint8)
    cv2.fillPoly(under_polygon, [np.round(polygon - 0.5).astype(np.int32)], 1)
    bright = scene.image.max(axis=2) > 128
    overlap = (bright & (under_polygon > 0)).sum()
    assert overlap / bright.sum() > 0.93  # the rectangle's pixels are under its polygon ...
    assert overlap / under_polygon.sum() > 0.85  # ... and the polygon covers little else
    assert np.all(polygon.min(axis=0) >= -1) and np.all(polygon.max(axis=0) <= 161)


def test_augmentation_is_a_function_of_the_seed():
    image, polygons = _rectangle_scene()
    augment = SceneAugment(crop_size=(96, 128))
    first, again = augment(image, polygons, [False], seed=3), augment(image, polygons, [False], seed=3)
    other = augment(image, polygons, [False], seed=4)
    assert np.array_equal(first.image, again.image) and first.ignore == [False]
    assert np.array_equal(first.polygons[0], again.polygons[0])
    assert not np.array_equal(first.image, other.image)


def test_crop_keeps_words_whole_or_leaves_them_out():
    image = np.zeros((200, 600, 3), dtype=np.uint8)
    boxes = [(20, 20, 120, 60), (250, 100, 400, 150), (450, 30, 580, 90)]
    for left, top, right, bottom in boxes:
        image[top:bottom, left:right] = 255
    polygons = [[x0, y0, x1, y0, x1, y1, x0, y1] for x0, y0, x1, y1 in boxes]
    augment = SceneAugment(crop_size=(128, 128), max_rotation=0, scale_range=(1, 1), flip_probability=0)
    sizes = set()
    for seed in range(20):
        scene = augment(image, polygons, None, seed=seed)
        assert 1 <= len(scene.polygons) <= 3  # a cared-for word is always kept
        sizes.add(len(scene.polygons))
        bright = scene.image.max(axis=2) > 128
        covered = np.zeros_like(bright)
        for polygon in scene.polygons:
            (x0, y0), (x1, y1) = polygon.min(axis=0), polygon.max(axis=0)
            covered[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))] = True
        # no piece of a dropped (cut) word is visible: every bright pixel belongs to a kept word
        assert not (bright & ~covered).any()
    assert len(sizes) > 1


def test_augmentation_rejects_bad_input():
    with pytest.raises(ValueError, match="crop_size"):
        SceneAugment(crop_size=(0, 10))
    with pytest.raises(ValueError, match="scale_range"):
        SceneAugment(scale_range=(2.0, 1.0))
    image, polygons = _rectangle_scene()
    with pytest.raises(ValueError, match="ignore has 2 flags for 1 polygons"):
        SceneAugment()(image, polygons, [False, True], seed=0)
    with pytest.raises(ValueError, match=r"expected \(H, W\) or \(H, W, C\) with C in 1, 2, 3, 4"):
        SceneAugment()(np.repeat(image, 2, axis=2), polygons, None, seed=0)


def test_official_parameter_groups():
    config = load_config("tiny-detector", ["output_dir=/unused"])
    model = DetectionTask(config).build_model()
    groups = tcm_parameter_groups(model, learning_rate=1e-5, weight_decay=1e-4, head_lr_multiplier=10.0)
    by_name = {id(p): n for n, p in model.named_parameters()}
    summary = {
        (group["lr"], group["weight_decay"]): {by_name[id(p)] for p in group["params"]} for group in groups
    }
    assert set(summary) == {(1e-5, 1e-4), (1e-5, 0.0), (1e-4, 1e-4), (1e-4, 0.0)}
    assert all(name.startswith("image_encoder.") for name in summary[(1e-5, 1e-4)] | summary[(1e-5, 0.0)])
    assert "contexts" in summary[(1e-4, 1e-4)] and "visual_gamma" in summary[(1e-4, 0.0)]
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(name.startswith("text_encoder.") for name in frozen)
    assert not frozen & set().union(*summary.values())


@pytest.mark.slow
def test_loss_falls_and_checkpoints_load(tmp_path):
    overrides = [*QUICK, "save_every=30", "eval_every=30"]
    check_loss_falls(tmp_path, "tiny-detector", DetectionTask, overrides, ratio=0.8)
    for name in ("best", "last"):
        model = TcmForSceneTextDetection.from_pretrained(tmp_path / name)
        assert model.config.width == 8
        assert (tmp_path / name / "preprocessor_config.json").exists()


@pytest.mark.slow
def test_run_killed_with_sigkill_resumes_to_identical_losses(tmp_path):
    overrides = [*QUICK, "max_steps=6", "save_every=3", "data.train.num_samples=10"]
    # This module runs on one thread (`single_thread`): the killed and resumed runs do too.
    check_killed_run_resumes_to_identical_losses(
        tmp_path, "tiny-detector", DetectionTask, overrides, env={"OMP_NUM_THREADS": "1"}
    )


def test_config_errors_are_specific(tmp_path):
    with pytest.raises(
        ValueError, match=r"data\.train\.source: expected one of synthetic, icdar, jsonl, hub"
    ):
        load_config("tiny-detector", [f"output_dir={tmp_path}", "data.train.source=nowhere"])
    with pytest.raises(
        ValueError, match=r"unknown option data\.augment\.crop: did you mean data\.augment\.crop_size"
    ):
        load_config("tiny-detector", [f"output_dir={tmp_path}", "data.augment.crop=[1,2]"])
    config = load_config("tiny-detector", [f"output_dir={tmp_path}", "model.preset=huge"])
    with pytest.raises(ValueError, match=r"model\.preset must be one of"):
        DetectionTask(config).build_model()


def test_icdar2015_recipe_is_the_official_one(tmp_path):
    config = load_config("tcm-rn50-icdar2015", [f"output_dir={tmp_path}"])
    task = DetectionTask(config)
    assert task.augment == SceneAugment(crop_size=(640, 640))  # jitter 32/255 + 0.5, flip, +-10 deg, 0.5-3x
    assert (config.optimizer.learning_rate, config.optimizer.decoder_lr_multiplier) == (1e-5, 10.0)
    assert (config.optimizer.schedule, config.optimizer.poly_power, config.batch_size) == ("poly", 0.9, 16)
    assert task.processor.size == {"shortest_edge": 1024, "longest_edge": 4068}
    with pytest.raises(FileNotFoundError, match=r"no CLIP checkpoint at RN50\.pt"):
        task.build_model()


@pytest.mark.parametrize(
    ("config_name", "label_keys"),
    [
        ("tiny-detector-pan", {"text_kernel", "shrunk_kernel", "effective_mask"}),
        ("tiny-detector-fcenet", {"fce_maps_8", "fce_maps_16", "fce_maps_32", "matching_region"}),
    ],
)
def test_head_configs_build_their_head_and_its_targets(config_name, label_keys, tmp_path):
    config = load_config(config_name, [f"output_dir={tmp_path}", *QUICK])
    task = DetectionTask(config)
    model = task.build_model()
    assert model.config.head_type == task.processor.head_type == config_name.rsplit("-", 1)[1]
    assert task.processor.image_mean == list(IMAGENET_MEAN)  # the PAN and FCENet configs' normalisation
    assert task.processor.size == {"shortest_edge": 128, "longest_edge": 192}  # the YAML's own settings stay
    batch = task.collate(list(task.train_dataset().take(2)), seed=0)
    assert set(batch["labels"]) == label_keys
    loss = model(**batch).loss
    assert torch.isfinite(loss) and loss.item() > 0


@pytest.mark.slow
# PAN's dice and embedding losses move slowly at QUICK's rate: in 30 steps they fall by ~20 % at 3e-3, by ~35 % at
# 1e-2.
@pytest.mark.parametrize(
    ("config_name", "learning_rate"), [("tiny-detector-pan", "1e-2"), ("tiny-detector-fcenet", "3e-3")]
)
def test_head_loss_falls_and_checkpoints_load(config_name, learning_rate, tmp_path):
    overrides = [*QUICK, "save_every=30", "eval_every=30", f"optimizer.learning_rate={learning_rate}"]
    check_loss_falls(tmp_path, config_name, DetectionTask, overrides, ratio=0.8)
    model = TcmForSceneTextDetection.from_pretrained(tmp_path / "last")
    assert model.config.head_type == config_name.rsplit("-", 1)[1]
