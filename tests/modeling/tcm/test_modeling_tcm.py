"""TcmForSceneTextDetection: DB loss parity, training behaviour, save/load, CLIP initialisation, bad input."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import CLIPTextConfig, CLIPTextModelWithProjection

from scenetext.modeling.tcm import TcmConfig, TcmForSceneTextDetection
from scenetext.modeling.tcm.convert_tcm import load_tcm_state_dict
from scenetext.modeling.tcm.modeling_tcm import (
    TcmFpnc,
    balanced_bce_loss,
    clip_resnet_model_config,
    dice_loss,
    masked_l1_loss,
    nearest_upsampling_grid,
    resize_position_embedding,
    upsample_twice_per_pixel,
)

LABEL_KEYS = ("shrink_map", "shrink_mask", "threshold_map", "threshold_mask")


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Tiny tensors: OpenMP threads cost more than they save, and spin badly on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(**overrides) -> TcmForSceneTextDetection:
    torch.manual_seed(0)
    return TcmForSceneTextDetection(TcmConfig.from_preset("tiny", **overrides))


def rectangle_labels(batch: int, height: int, width: int) -> dict[str, torch.Tensor]:
    """DB targets of one axis-aligned text rectangle per image (rows 24-39, 16 pixels in from the sides)."""
    shrink = torch.zeros(batch, height, width)
    shrink[:, 24:40, 16 : width - 16] = 1
    threshold_mask = torch.zeros(batch, height, width)
    threshold_mask[:, 20:44, 12 : width - 12] = 1
    return {
        "shrink_map": shrink,
        "shrink_mask": torch.ones(batch, height, width),
        "threshold_map": 0.3 + 0.4 * threshold_mask * (1 - shrink),
        "threshold_mask": threshold_mask,
    }


@pytest.fixture(scope="module")
def official_loss_inputs(fixtures_dir):
    """The official head output and matching map of fixture `a`, against DB targets of cases 0 and 6."""
    outputs = load_file(fixtures_dir / "tcm" / "a" / "io.safetensors")
    targets = load_file(fixtures_dir / "tcm" / "db_targets.safetensors")
    labels = {
        ours: torch.stack([targets[f"{case:02d}_gt_{theirs}"] for case in (0, 6)]).float()
        for ours, theirs in zip(LABEL_KEYS, ("shrink", "shrink_mask", "thr", "thr_mask"), strict=True)
    }
    expected = json.loads((fixtures_dir / "tcm" / "db_loss.json").read_text())
    return outputs, labels, expected


def test_db_loss_matches_official(official_loss_inputs):
    outputs, labels, expected = official_loss_inputs
    model = tiny_model()
    head = outputs["head_out"]

    losses = model.compute_loss(head[:, :1], head[:, 1:2], head[:, 2:], outputs["score_map"], labels)

    values = expected["values"]
    assert losses["probability_loss"].item() == pytest.approx(values["dbloss_bbce1_loss_prob"], rel=1e-5)
    assert losses["binary_loss"].item() == pytest.approx(values["dbloss_bbce1_loss_db"], rel=1e-5)
    assert losses["threshold_loss"].item() == pytest.approx(values["dbloss_bbce1_loss_thr"], rel=1e-5)
    # The official auxiliary loss mixes the images of a batch; the per-image-correct batch value is given.
    assert losses["matching_loss"].item() == pytest.approx(
        expected["non_official_identity_no_broadcast_batch2"], rel=1e-5
    )
    assert losses["loss"] == pytest.approx(sum(losses[k].item() for k in losses if k != "loss"), rel=1e-6)


@pytest.mark.parametrize("image", [0, 1])
def test_matching_loss_of_single_images_matches_official(official_loss_inputs, image):
    outputs, labels, expected = official_loss_inputs
    model = tiny_model()
    head = outputs["head_out"][image : image + 1]
    single = {key: value[image : image + 1] for key, value in labels.items()}

    losses = model.compute_loss(
        head[:, :1], head[:, 1:2], head[:, 2:], outputs["score_map"][image : image + 1], single
    )

    official = expected["values"][f"identity_bbce1_loss_pix_cls_img{image}"]
    assert losses["matching_loss"].item() == pytest.approx(official, rel=1e-5)


def test_balanced_bce_keeps_three_hardest_negatives_per_positive():
    pred = torch.tensor([0.9, 0.2, 0.1, 0.3, 0.4, 0.5, 0.6])
    gt = torch.tensor([1.0, 0, 0, 0, 0, 0, 0])
    mask = torch.tensor([1.0, 1, 1, 1, 1, 1, 0])  # the 0.6 negative is masked out
    kept = [-torch.log(torch.tensor(v)) for v in (0.9, 0.5, 0.6, 0.7)]  # positive + negatives 0.5, 0.4, 0.3
    assert balanced_bce_loss(pred, gt, mask).item() == pytest.approx(sum(kept).item() / 4, rel=1e-5)
    assert balanced_bce_loss(pred, torch.zeros(7), mask).item() == 0  # no text: no negatives either


def test_dice_and_l1_respect_masks():
    pred = torch.tensor([1.0, 0.5, 0.0, 0.7])
    gt = torch.tensor([1.0, 1.0, 0.0, 0.0])
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0])
    assert dice_loss(pred, gt, mask, eps=0).item() == pytest.approx(1 - 2 * 1.5 / 3.5)
    assert masked_l1_loss(pred, gt, mask, eps=0).item() == pytest.approx(0.5 / 3)


def test_forward_backward_reaches_prompts_but_not_the_frozen_text_tower():
    model = tiny_model().train()
    outputs = model(torch.randn(2, 3, 64, 96), labels=rectangle_labels(2, 64, 96))

    assert outputs.prob_map.shape == outputs.thresh_map.shape == outputs.binary_map.shape == (2, 1, 64, 96)
    assert outputs.matching_map.shape == (2, 1, 2, 3)
    torch.testing.assert_close(
        outputs.binary_map, torch.sigmoid(50 * (outputs.prob_map - outputs.thresh_map))
    )
    outputs.loss.backward()
    for name in (
        "contexts",
        "text_gamma",
        "visual_gamma",
        "prompt_generator.layers.4.weight",
        "head.binarize.0.weight",
    ):
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert all(not p.requires_grad and p.grad is None for p in model.text_encoder.parameters())


def test_text_tower_trains_when_not_frozen():
    model = tiny_model(freeze_text_encoder=False).train()
    model(torch.randn(1, 3, 64, 64), labels=rectangle_labels(1, 64, 64)).loss.backward()
    assert model.text_encoder.text_projection.weight.grad.abs().sum() > 0


@pytest.mark.slow
def test_training_segments_a_text_rectangle():
    model = tiny_model().train()
    generator = torch.Generator().manual_seed(0)
    labels = rectangle_labels(1, 64, 64)
    pixels = 0.3 * torch.randn(1, 3, 64, 64, generator=generator) + 2 * labels["shrink_map"][:, None]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        loss = model(pixels, labels=labels).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    with torch.no_grad():
        prob = model.eval()(pixels).prob_map[:, 0]
    predicted, text = prob > 0.5, labels["shrink_map"] > 0
    iou = (predicted & text).sum() / (predicted | text).sum()
    assert losses[-1] < 0.5 * losses[0]
    assert iou > 0.9, f"IoU {iou:.2f}"


def test_bf16_autocast_forward_and_loss():
    model = tiny_model().eval()
    pixels = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        reference = model(pixels).prob_map
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outputs = model(pixels, labels=rectangle_labels(1, 64, 96))
    assert outputs.loss.dtype == torch.float32 and torch.isfinite(outputs.loss)
    assert (outputs.prob_map.float() - reference).abs().max() < 0.05


def model_with_trained_batch_norms(**overrides) -> TcmForSceneTextDetection:
    """The tiny model with batch-norm statistics away from their identity initialisation, so that folding
    them into the convolutions is not a no-op."""
    model = tiny_model(**overrides)
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            channels = module.num_features
            module.running_mean.copy_(torch.rand(channels, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(channels, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(channels, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(channels, generator=generator) * 0.4 - 0.2)
    return model.eval()


def test_fast_inference_matches_the_official_order_of_work():
    model = model_with_trained_batch_norms()
    pixels = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        fast = model(pixels)
        model.set_fast_inference(False)
        reference = model(pixels)
    assert fast.prob_map.shape == reference.prob_map.shape == (2, 1, 96, 128)
    for key in ("prob_map", "thresh_map", "binary_map", "matching_map", "text_embeddings"):
        torch.testing.assert_close(fast[key], reference[key], atol=1e-4, rtol=0, msg=key)
    # the folding replaced no module: parameter names, and so checkpoints, are timm's and mmocr's
    assert "image_encoder.trunk.stem.conv1.bn.running_var" in model.state_dict()
    assert "head.binarize.4.running_mean" in model.state_dict()


def test_fast_residual_sums_overwrite_no_stage_output():
    # two blocks a stage: the second block of each writes its residual sum into its input (identity shortcut)
    model = model_with_trained_batch_norms(layers=(2, 2, 2, 2))
    pixels = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        fast = model.image_encoder(pixels.contiguous(memory_format=torch.channels_last))
        model.set_fast_inference(False)
        reference = model.image_encoder(pixels)
    for ours, theirs in zip(fast.stage_features, reference.stage_features, strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(fast.pixel_embeddings, reference.pixel_embeddings, atol=1e-4, rtol=1e-5)


def test_fast_inference_under_bf16_autocast_is_as_close_to_fp32_as_the_official_order():
    # bf16 rounding alone moves this random model's map by ~0.09 (official order): ours must stay as close
    model = tiny_model(layers=(2, 2, 2, 2)).eval()
    pixels = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        reference = model(pixels).prob_map
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = model(pixels, output_threshold_maps=False).prob_map
            model.set_fast_inference(False)
            official = model(pixels).prob_map
    assert fast.dtype == official.dtype == torch.bfloat16
    fast_error = (fast.float() - reference).abs().max()
    official_error = (official.float() - reference).abs().max()
    assert fast_error < 0.1 and fast_error <= 1.5 * official_error


@pytest.mark.slow
def test_fast_inference_model_can_be_traced_by_torch_compile():
    # the eager-only oneDNN calls and in-place writes step aside while dynamo traces (no fake-tensor kernels)
    model = model_with_trained_batch_norms(layers=(2, 1, 1, 1))
    pixels = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        eager = model(pixels, output_threshold_maps=False).prob_map
        traced = torch.compile(model, backend="eager")(pixels, output_threshold_maps=False).prob_map
    torch.testing.assert_close(traced, eager, atol=1e-4, rtol=0)


def test_fast_inference_in_eval_mode_keeps_gradients():
    # eval mode with gradients (frozen batch norms, saliency): the fused oneDNN ops have no backward
    model = model_with_trained_batch_norms(layers=(2, 1, 1, 1))
    gradients = []
    for fast in (True, False):
        model.set_fast_inference(fast)
        pixels = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(0), requires_grad=True)
        model(pixels, output_threshold_maps=False).prob_map.sum().backward()
        gradients.append(pixels.grad)
    torch.testing.assert_close(gradients[0], gradients[1], atol=1e-4, rtol=1e-4)


def test_fast_bottleneck_block_keeps_its_input_unless_told_to_consume_it():
    model = model_with_trained_batch_norms(layers=(2, 1, 1, 1))
    block = model.image_encoder.trunk.stages[0][1]  # identity shortcut
    hidden = torch.randn(1, block.conv1_1x1.conv.in_channels, 16, 16)
    with torch.no_grad():
        kept = hidden.clone()
        output = block(hidden)
        torch.testing.assert_close(hidden, kept, atol=0, rtol=0)
        consumed = block(hidden, consume_input=True)
    assert consumed.data_ptr() == hidden.data_ptr()
    torch.testing.assert_close(consumed, output, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("channels_last", [True, False])
def test_neck_without_upsampled_maps_equals_the_official_neck(channels_last):
    torch.manual_seed(0)
    neck = TcmFpnc([8, 16, 32, 33], lateral_channels=12, out_channels=4).eval()
    features = [torch.randn(2, c, 48 // 2**i, 80 // 2**i) for i, c in enumerate([8, 16, 32, 33])]
    features[3] = torch.randn(2, 33, 5, 8)  # not half of 6x10: the nearest-interpolation fallback
    if channels_last:
        features = [feature.contiguous(memory_format=torch.channels_last) for feature in features]
    with torch.no_grad():
        fast = neck(features)
        neck.fast_inference = False
        reference = neck(features)
    assert fast.is_contiguous(memory_format=torch.channels_last) == channels_last
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=1e-5)


def test_nearest_upsampling_grid_writes_what_interpolation_makes():
    source = torch.randn(1, 3, 4, 5)
    for size in [(8, 10), (16, 40), (4, 5)]:
        target = torch.zeros(1, 3, *size)
        nearest_upsampling_grid(target, source).copy_(source[:, :, :, None, :, None])
        torch.testing.assert_close(target, F.interpolate(source, size=size), atol=0, rtol=0)
    for size in [(12, 15), (9, 10)]:  # factor 3 (inexact in floats) and non-integer factors are left alone
        assert nearest_upsampling_grid(torch.zeros(1, 3, *size), source) is None


def test_upsampling_per_pixel_equals_two_transposed_convolutions():
    torch.manual_seed(0)
    hidden = torch.randn(2, 6, 5, 7).contiguous(memory_format=torch.channels_last)
    weight, bias = torch.randn(6, 4, 2, 2), torch.randn(4)
    last_weight, last_bias = torch.randn(4, 2, 2, 2), torch.randn(2)
    reference = F.conv_transpose2d(
        F.conv_transpose2d(hidden, weight, bias, stride=2).relu(), last_weight, last_bias, stride=2
    )
    upsampled = upsample_twice_per_pixel(hidden, weight, bias, last_weight, last_bias, rows_per_chunk=2)
    torch.testing.assert_close(upsampled, reference, atol=1e-5, rtol=1e-5)
    assert upsample_twice_per_pixel(hidden.contiguous(), weight, bias, last_weight, last_bias) is None
    assert upsample_twice_per_pixel(hidden, weight.requires_grad_(), bias, last_weight, last_bias) is None


def test_batch_norms_are_folded_only_in_eval_mode():
    model = model_with_trained_batch_norms().train()
    pixels = torch.randn(2, 3, 64, 64)
    labels = rectangle_labels(2, 64, 64)
    torch.manual_seed(0)
    fast = model(pixels, labels=labels)
    model.set_fast_inference(False)
    torch.manual_seed(0)
    reference = model(pixels, labels=labels)
    torch.testing.assert_close(fast.loss, reference.loss, atol=1e-4, rtol=1e-5)
    fast.loss.backward()
    assert model.head.binarize[1].weight.grad is not None  # the batch norm itself ran, with batch statistics


def test_probability_map_alone_skips_the_threshold_branch():
    model = model_with_trained_batch_norms()
    pixels = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        full = model(pixels)
        prob_only = model(pixels, output_threshold_maps=False)
    assert prob_only.thresh_map is None and prob_only.binary_map is None
    torch.testing.assert_close(prob_only.prob_map, full.prob_map, atol=0, rtol=0)
    with pytest.raises(ValueError, match="output_threshold_maps"):
        model(pixels, labels=rectangle_labels(1, 64, 96), output_threshold_maps=False)


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    model = tiny_model().eval()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_tcm.TcmConfig",
        "AutoModel": "modeling_tcm.TcmForSceneTextDetection",
    }
    assert {"configuration_tcm.py", "modeling_tcm.py", "model.safetensors"} <= {
        p.name for p in tmp_path.iterdir()
    }

    reloaded = TcmForSceneTextDetection.from_pretrained(tmp_path).eval()
    pixels = torch.randn(1, 3, 96, 64)
    with torch.no_grad():
        expected, actual = model(pixels), reloaded(pixels)
    # Equal weights; BLAS kernels may still round differently on the memory-mapped (differently aligned)
    # tensors of the loaded copy (by ~1e-7, x12.5 through the k=50 binarization), hence not bit equality.
    for key in ("prob_map", "thresh_map", "binary_map", "matching_map", "text_embeddings"):
        torch.testing.assert_close(actual[key], expected[key], atol=1e-5, rtol=0)
    assert not any(p.requires_grad for p in reloaded.text_encoder.parameters())


def test_matching_map_can_join_an_earlier_stage():
    model = tiny_model(matching_stage_index=2).eval()
    assert model.neck.lateral_convs[2].in_channels == model.config.stage_channels[2] + 1
    assert model(torch.randn(1, 3, 64, 64)).prob_map.shape == (1, 1, 64, 64)


def test_position_grid_is_resampled_bilinearly():
    table = torch.randn(1 + 49, 8)
    resized = resize_position_embedding(table, 3)
    spatial = F.interpolate(table[1:].reshape(1, 7, 7, 8).permute(0, 3, 1, 2), size=(3, 3), mode="bilinear")
    torch.testing.assert_close(resized[0], table[0])
    torch.testing.assert_close(resized[1:], spatial.flatten(2)[0].T)


def test_from_clip_with_openai_weights_matches_the_official_image_encoder(fixtures_dir):
    # TCM keeps OpenAI's names: its `backbone.*` / `text_encoder.*` are an OpenAI CLIP state dict.
    tcm = load_tcm_state_dict(fixtures_dir / "tcm" / "a" / "checkpoint.pth")
    openai = {f"visual.{k[len('backbone.') :]}": v for k, v in tcm.items() if k.startswith("backbone.")}
    openai.update({k[len("text_encoder.") :]: v for k, v in tcm.items() if k.startswith("text_encoder.")})
    config = TcmConfig.from_preset(
        "tiny", text_config={**TcmConfig.from_preset("tiny").text_config.to_dict()}
    )

    model = TcmForSceneTextDetection.from_clip(config, openai_state_dict=openai).eval()

    official = load_file(fixtures_dir / "tcm" / "a" / "io.safetensors")
    with torch.no_grad():
        encoded = model.image_encoder(official["input"])
    torch.testing.assert_close(encoded.pixel_embeddings, official["local_feat"], atol=1e-4, rtol=0)
    torch.testing.assert_close(
        model.text_encoder.text_projection.weight, tcm["text_encoder.text_projection"].T, atol=0, rtol=0
    )
    _, _, v = tcm["text_encoder.transformer.resblocks.1.attn.in_proj_weight"].chunk(3)
    torch.testing.assert_close(model.text_encoder.text_model.encoder.layers[1].self_attn.v_proj.weight, v)


def test_from_clip_with_timm_and_transformers_models():
    from timm.models.byobnet import ByobNet

    config = TcmConfig.from_preset("tiny")
    torch.manual_seed(1)
    # A 224-pixel CLIP image tower (7 x 7 position grid) and a 77-token text tower, as released.
    timm_model = ByobNet(
        replace(clip_resnet_model_config(config), head_type="attn_abs"), num_classes=64, img_size=224
    )
    text_config = CLIPTextConfig(**{**config.text_config.to_dict(), "max_position_embeddings": 77})
    text_model = CLIPTextModelWithProjection(text_config)

    model = TcmForSceneTextDetection.from_clip(config, timm_image_model=timm_model, text_model=text_model)

    torch.testing.assert_close(
        model.image_encoder.trunk.stages[3][0].conv2_kxk.conv.weight,
        timm_model.stages[3][0].conv2_kxk.conv.weight,
    )
    torch.testing.assert_close(
        model.image_encoder.attention_pool.pos_embed, resize_position_embedding(timm_model.head.pos_embed, 2)
    )
    torch.testing.assert_close(
        model.text_encoder.text_model.embeddings.position_embedding.weight,
        text_model.text_model.embeddings.position_embedding.weight[:18],
    )


def test_from_clip_rejects_ambiguous_or_foreign_weights():
    config = TcmConfig.from_preset("tiny")
    with pytest.raises(ValueError, match="either openai_state_dict"):
        TcmForSceneTextDetection.from_clip(config)
    with pytest.raises(ValueError, match=r"no `visual\.\*` keys"):
        TcmForSceneTextDetection.from_clip(
            config, openai_state_dict={"token_embedding.weight": torch.zeros(1)}
        )


def test_presets_and_config_validation():
    assert TcmConfig.from_preset("rn50").to_dict() == TcmConfig().to_dict()
    rn50x4 = TcmConfig.from_preset("rn50x4")
    assert (rn50x4.stage_channels[3], rn50x4.embed_dim, rn50x4.text_config.hidden_size) == (2560, 640, 640)
    assert TcmConfig(num_context_tokens=32).text_config.max_position_embeddings == 46
    assert TcmConfig().eot_index == 17
    with pytest.raises(ValueError, match="Unknown TCM preset"):
        TcmConfig.from_preset("rn200")
    with pytest.raises(ValueError, match="max_position_embeddings=18 must equal"):
        TcmConfig(num_context_tokens=8, text_config={"max_position_embeddings": 18, "projection_dim": 1024})
    with pytest.raises(ValueError, match="projection_dim=512 must equal embed_dim=1024"):
        TcmConfig(text_config={"max_position_embeddings": 18, "projection_dim": 512})
    with pytest.raises(ValueError, match="matching_stage_index"):
        TcmConfig(matching_stage_index=4)


@pytest.mark.parametrize(
    ("pixels", "error", "message"),
    [
        (torch.zeros(1, 1, 64, 64), ValueError, r"shape \(batch, 3, height, width\), got \(1, 1, 64, 64\)"),
        (torch.zeros(1, 3, 64, 80), ValueError, "multiples of 32.*64x80"),
        (torch.zeros(3, 64, 64), ValueError, "got \\(3, 64, 64\\)"),
        (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), TypeError, "floating-point"),
        ([[0.0]], TypeError, "must be a torch.Tensor"),
    ],
)
def test_bad_pixel_values_are_explained(pixels, error, message):
    with pytest.raises(error, match=message):
        tiny_model()(pixels)


def test_bad_labels_are_explained():
    model = tiny_model()
    pixels = torch.zeros(1, 3, 64, 64)
    labels = rectangle_labels(1, 64, 64)
    with pytest.raises(ValueError, match=r"missing \['threshold_mask'\]"):
        model(pixels, labels={k: v for k, v in labels.items() if k != "threshold_mask"})
    with pytest.raises(
        ValueError, match=r"labels\['shrink_map'\] must be a tensor of shape .* got \(1, 32, 32\)"
    ):
        model(pixels, labels={**labels, "shrink_map": torch.zeros(1, 32, 32)})
    with pytest.raises(TypeError, match="mapping"):
        model(pixels, labels=[labels])


@pytest.mark.slow
def test_image_processor_targets_train_the_model_and_post_processing_finds_the_text():
    processing = pytest.importorskip("scenetext.processors.tcm.image_processing_tcm")
    processor = processing.TcmImageProcessor(do_resize=False)
    image = np.random.default_rng(0).integers(0, 60, size=(64, 96, 3), dtype=np.uint8)
    image[20:44, 16:80] = 230
    batch = processor([image], polygons=[[[[16, 20], [80, 20], [80, 44], [16, 44]]]])
    model = tiny_model().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(100):
        optimizer.zero_grad()
        model(batch["pixel_values"], labels=batch["labels"]).loss.backward()
        optimizer.step()

    with torch.no_grad():
        outputs = model.eval()(batch["pixel_values"])
    (result,) = processor.post_process_text_detection(outputs, target_sizes=[(64, 96)], threshold=0.5)

    assert len(result["polygons"]) == 1
    torch.testing.assert_close(result["boxes"][0], torch.tensor([16.0, 20.0, 80.0, 44.0]), atol=4, rtol=0)
