"""TcmForSceneTextDetection: DB loss parity, training behaviour, save/load, CLIP initialisation, bad input."""

import copy
import json
import warnings
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
    balanced_bce_loss,
    clip_resnet_model_config,
    dice_loss,
    masked_l1_loss,
    resize_position_embedding,
)
from tests.tiny_models import tiny_detector

LABEL_KEYS = ("shrink_map", "shrink_mask", "threshold_map", "threshold_mask")


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
    model = tiny_detector()
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
    model = tiny_detector()
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
    model = tiny_detector().train()
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
    model = tiny_detector(freeze_text_encoder=False).train()
    model(torch.randn(1, 3, 64, 64), labels=rectangle_labels(1, 64, 64)).loss.backward()
    assert model.text_encoder.text_projection.weight.grad.abs().sum() > 0


@pytest.mark.slow
def test_training_segments_a_text_rectangle():
    model = tiny_detector().train()
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
    model = tiny_detector().eval()
    pixels = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        reference = model(pixels).prob_map
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outputs = model(pixels, labels=rectangle_labels(1, 64, 96))
    assert outputs.loss.dtype == torch.float32 and torch.isfinite(outputs.loss)
    assert (outputs.prob_map.float() - reference).abs().max() < 0.05


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    model = tiny_detector(layers=(2, 1, 1, 1)).train()
    checkpointed = copy.deepcopy(model)
    # transformers >= 5.24 renames gradient_checkpointing_enable (kept as a deprecated alias)
    enable = (
        getattr(checkpointed, "activation_checkpointing_enable", None)
        or checkpointed.gradient_checkpointing_enable
    )
    enable()
    assert (
        checkpointed.image_encoder.gradient_checkpointing and not model.image_encoder.gradient_checkpointing
    )
    pixels, labels = torch.randn(2, 3, 64, 96), rectangle_labels(2, 64, 96)
    recomputed = []
    for (
        stage
    ) in checkpointed.image_encoder.trunk.stages:  # each stage starts twice: forward and recomputation
        stage.register_forward_pre_hook(lambda *_: recomputed.append(True))
    losses = []
    for candidate in (model, checkpointed):
        torch.manual_seed(0)  # the same dropout masks in the decoders
        loss = candidate(pixels, labels=labels).loss
        loss.backward()
        losses.append(loss)

    assert len(recomputed) == 2 * len(checkpointed.image_encoder.trunk.stages)
    torch.testing.assert_close(losses[1], losses[0], atol=0, rtol=0)
    gradients = {name: p.grad for name, p in checkpointed.named_parameters() if p.grad is not None}
    assert "image_encoder.trunk.stages.0.0.conv1_1x1.conv.weight" in gradients
    for name, parameter in model.named_parameters():
        if parameter.grad is not None:
            torch.testing.assert_close(gradients[name], parameter.grad, atol=1e-6, rtol=1e-5, msg=name)


def test_forward_raises_no_future_warning():
    model = tiny_detector().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        with torch.no_grad():
            model(torch.randn(1, 3, 64, 64))


def test_config_with_a_key_this_version_does_not_know_still_loads(tmp_path):
    model = tiny_detector().eval()
    model.save_pretrained(tmp_path)
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "fast_inference": True}))
    reloaded = TcmForSceneTextDetection.from_pretrained(tmp_path).eval()
    pixels = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(pixels).prob_map, model(pixels).prob_map, atol=1e-5, rtol=0)


def test_probability_map_alone_skips_the_threshold_branch():
    model = tiny_detector().eval()
    pixels = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        full = model(pixels)
        prob_only = model(pixels, output_threshold_maps=False)
    assert prob_only.thresh_map is None and prob_only.binary_map is None
    torch.testing.assert_close(prob_only.prob_map, full.prob_map, atol=0, rtol=0)
    with pytest.raises(ValueError, match="output_threshold_maps"):
        model(pixels, labels=rectangle_labels(1, 64, 96), output_threshold_maps=False)


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    model = tiny_detector().eval()
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
    model = tiny_detector(matching_stage_index=2).eval()
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
        tiny_detector()(pixels)


def test_bad_labels_are_explained():
    model = tiny_detector()
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
    model = tiny_detector().train()
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
