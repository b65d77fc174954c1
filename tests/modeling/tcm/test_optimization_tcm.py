"""optimize_for_inference: the fused eval-only detector gives the plain model's maps and detections, leaves the
plain model alone unless asked, and refuses to train."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from scenetext.assets import DEFAULTS_DIR, SAMPLES_DIR
from scenetext.modeling.tcm import TcmForSceneTextDetection
from scenetext.modeling.tcm.modeling_tcm import TcmFpnc
from scenetext.modeling.tcm.optimization_tcm import (
    FusedDbBranch,
    FusedFpnc,
    nearest_upsampling_grid,
    optimize_for_inference,
)
from scenetext.processors.tcm import TcmImageProcessor
from tests.tiny_models import tiny_detector

MAP_KEYS = ("prob_map", "thresh_map", "matching_map", "text_embeddings")


def model_with_trained_batch_norms(**overrides) -> TcmForSceneTextDetection:
    """The tiny model with batch-norm statistics away from their identity initialisation, so that folding
    them into the convolutions is not a no-op."""
    model = tiny_detector(**overrides)
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            channels = module.num_features
            module.running_mean.copy_(torch.rand(channels, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(channels, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(channels, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(channels, generator=generator) * 0.4 - 0.2)
    return model.eval()


@pytest.mark.parametrize(
    "overrides",
    [{}, {"layers": (2, 2, 2, 2)}, {"layers": (1, 2, 1, 1), "matching_stage_index": 2}],
    ids=["one-block-stages", "identity-shortcuts", "matching-at-stage-3"],
)
def test_optimized_model_gives_the_plain_maps(overrides):
    model = model_with_trained_batch_norms(**overrides)
    optimized = model.optimize_for_inference()
    pixels = torch.randn(2, 3, 96, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        plain, fused = model(pixels), optimized(pixels)
    assert fused.prob_map.shape == (2, 1, 96, 128)
    for key in MAP_KEYS:
        torch.testing.assert_close(fused[key], plain[key], atol=1e-4, rtol=0, msg=key)
    # k = 50 in the binarization multiplies the rounding of prob - thresh by up to 12.5
    torch.testing.assert_close(fused.binary_map, plain.binary_map, atol=1e-3, rtol=0)


def test_optimized_model_under_bf16_autocast_is_as_close_to_fp32_as_the_plain_model():
    model = model_with_trained_batch_norms(layers=(2, 2, 2, 2))
    optimized = model.optimize_for_inference()
    pixels = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        reference = model(pixels).prob_map
        with torch.autocast("cpu", dtype=torch.bfloat16):
            plain = model(pixels).prob_map
            fused = optimized(pixels, output_threshold_maps=False).prob_map
    assert fused.dtype == plain.dtype == torch.bfloat16
    fused_error = (fused.float() - reference).abs().max()
    plain_error = (plain.float() - reference).abs().max()
    assert fused_error <= 1.5 * plain_error


@pytest.fixture(scope="module")
def embedded_detector():
    folder = DEFAULTS_DIR / "detector"
    model = TcmForSceneTextDetection.from_pretrained(folder).eval()
    processor = TcmImageProcessor.from_pretrained(folder)
    scenes = [np.asarray(Image.open(path).convert("RGB")) for path in sorted(SAMPLES_DIR.glob("scene-*.png"))]
    return model, processor, scenes


def detect(processor, batch, prob_map):
    return processor.post_process_text_detection(
        prob_map, target_sizes=batch["original_sizes"], resized_sizes=batch["resized_sizes"]
    )


def test_trained_detector_finds_the_same_words_on_the_sample_scenes(embedded_detector):
    model, processor, scenes = embedded_detector
    optimized = model.optimize_for_inference()
    batch = processor(scenes)
    with torch.no_grad():
        plain = model(batch["pixel_values"]).prob_map
        fused = optimized(batch["pixel_values"], output_threshold_maps=False).prob_map
        with torch.autocast("cpu", dtype=torch.bfloat16):
            plain_bf16 = model(batch["pixel_values"]).prob_map.float()
            fused_bf16 = optimized(batch["pixel_values"], output_threshold_maps=False).prob_map.float()

    torch.testing.assert_close(fused, plain, atol=1e-4, rtol=0)
    # bf16 rounding moves the plain model's map by ~0.015 here; the fused model's must move no further
    assert (fused_bf16 - plain).abs().max() <= 1.5 * (plain_bf16 - plain).abs().max()
    reference = detect(processor, batch, plain)
    assert [len(words["polygons"]) for words in reference] == [3, 4, 3, 3]  # the words of labels.json
    for prob_map, pixels in ((fused, 0.01), (fused_bf16, 3)):
        for ours, theirs in zip(detect(processor, batch, prob_map), reference, strict=True):
            assert len(ours["polygons"]) == len(theirs["polygons"])
            # bf16 can move a boundary by a pixel of the map, two of these ~380-pixel scenes
            torch.testing.assert_close(ours["boxes"], theirs["boxes"], atol=pixels, rtol=0)


def test_optimizing_leaves_the_plain_model_untouched_unless_inplace(tmp_path):
    model = model_with_trained_batch_norms()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    pixels = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = model(pixels).prob_map

    optimized = model.optimize_for_inference()

    assert optimized is not model and type(model.neck) is TcmFpnc and type(optimized.neck) is FusedFpnc
    assert model.state_dict().keys() == before.keys()
    assert all(torch.equal(model.state_dict()[key], value) for key, value in before.items())
    # what is not fused is shared, not copied
    assert optimized.text_encoder.text_projection.weight is model.text_encoder.text_projection.weight
    with torch.no_grad():
        torch.testing.assert_close(model(pixels).prob_map, expected, atol=0, rtol=0)
    # the plain model still trains, saves and reloads as before
    model.train()
    model.eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "optimization_tcm.py").is_file()  # travels with the model: the method imports it
    reloaded = TcmForSceneTextDetection.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(pixels).prob_map, expected, atol=1e-5, rtol=0)

    same = optimize_for_inference(model, inplace=True)
    assert same is model and type(model.head.binarize) is FusedDbBranch


def test_optimized_model_refuses_training_and_gradients():
    optimized = model_with_trained_batch_norms().optimize_for_inference()
    with pytest.raises(ValueError, match="cannot train"):
        optimized.train()
    optimized.eval()
    with pytest.raises(ValueError, match=r"no gradients.*inference_mode"):
        optimized(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="already optimized"):
        optimize_for_inference(optimized)
    with pytest.raises(TypeError, match="TcmForSceneTextDetection"):
        optimize_for_inference(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("channels_last", [True, False])
def test_fused_neck_equals_the_plain_neck_with_and_without_power_of_two_levels(channels_last):
    torch.manual_seed(0)
    neck = TcmFpnc([8, 16, 32, 33], lateral_channels=12, out_channels=4).eval()
    features = [torch.randn(2, c, 48 // 2**i, 80 // 2**i) for i, c in enumerate([8, 16, 32, 33])]
    features[3] = torch.randn(2, 33, 5, 8)  # not half of 6x10: the nearest-interpolation fallback
    if channels_last:
        features = [feature.contiguous(memory_format=torch.channels_last) for feature in features]
    with torch.no_grad():
        torch.testing.assert_close(FusedFpnc(neck)(features), neck(features), atol=1e-5, rtol=1e-5)


def test_nearest_upsampling_grid_writes_what_interpolation_makes():
    source = torch.randn(1, 3, 4, 5)
    for size in [(8, 10), (16, 40), (4, 5)]:
        target = torch.zeros(1, 3, *size)
        nearest_upsampling_grid(target, source).copy_(source[:, :, :, None, :, None])
        torch.testing.assert_close(target, F.interpolate(source, size=size), atol=0, rtol=0)
    for size in [(12, 15), (9, 10)]:  # factor 3 (inexact in floats) and non-integer factors are left alone
        assert nearest_upsampling_grid(torch.zeros(1, 3, *size), source) is None


@pytest.mark.parametrize("rows_per_chunk", [2, 8])
def test_fused_db_branch_equals_the_plain_branch(rows_per_chunk):
    branch = model_with_trained_batch_norms().head.binarize
    fused = FusedDbBranch(branch)
    fused.rows_per_chunk = rows_per_chunk
    features = torch.randn(2, branch[0].in_channels, 5, 7)  # 5 rows: the last chunk is a partial one
    with torch.no_grad():
        torch.testing.assert_close(fused(features), branch(features), atol=1e-5, rtol=1e-5)
        channels_last = features.contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(fused(channels_last), branch(features), atol=1e-5, rtol=1e-5)
