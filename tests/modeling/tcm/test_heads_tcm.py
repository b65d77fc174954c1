"""The PAN and FCENet heads of TCM: losses on hand-computed cases, learning on a tiny set, head selection, conversion
of official-named checkpoints."""

import math

import numpy as np
import pytest
import torch

from scenetext.modeling.tcm import TcmConfig, TcmForSceneTextDetection
from scenetext.modeling.tcm.convert_tcm import convert_tcm_checkpoint, detect_head_type, load_tcm_state_dict
from scenetext.modeling.tcm.heads_fcenet_tcm import fce_text_loss, fourier_to_contour
from scenetext.modeling.tcm.heads_pan_tcm import aggregation_discrimination_loss, hard_negative_mask
from scenetext.processors.tcm import TcmImageProcessor
from scenetext.processors.tcm.fce_geometry_tcm import fourier_to_polygons

FIXTURE_HEADS = {"text_heads": 2, "context_decoder_heads": 2, "visual_prompt_heads": 2}


def test_aggregation_and_discrimination_losses_of_two_texts():
    # 1-D similarity vectors (padded to 4): text 1 = pixels 0-2 with kernel 0-1 (values 0, 0, 2),
    # text 2 = pixels 3-4 with kernel 3-4 (values 1, 1).
    text = torch.tensor([[1, 1, 1, 2, 2, 0]], dtype=torch.float32)
    kernel = torch.tensor([[1, 1, 0, 2, 2, 0]], dtype=torch.float32)
    similarity = torch.zeros(1, 4, 6)
    similarity[0, 0] = torch.tensor([0, 0, 2, 1, 1, 5])
    aggregation, discrimination = aggregation_discrimination_loss(text, kernel, similarity, 0.5, 3.0)
    # pixel 2 is |2 - 0| - 0.5 = 1.5 past its kernel's mean: log(1 + 1.5^2) over 3 pixels; text 2 is exact
    assert aggregation.item() == pytest.approx(math.log(3.25) / 3 / 2, rel=1e-6)
    # the kernel means are 1 apart: log(1 + (3 - 1)^2) for the one pair, over n (n - 1) = 2
    assert discrimination.item() == pytest.approx(math.log(5) / 2, rel=1e-6)


def test_hard_negatives_are_the_highest_scoring_background_pixels():
    scores = torch.tensor([[0.9, 0.1, 0.8, 0.2, 0.7, 0.3]])
    text = torch.tensor([[1.0, 0, 0, 0, 0, 0]])
    mask = torch.ones(1, 6)
    # one positive, ratio 2: the two highest background scores (0.8, 0.7)
    assert hard_negative_mask(scores, text, mask, 2.0).tolist() == [[1, 0, 1, 0, 1, 0]]
    # no text: the whole effective mask
    assert hard_negative_mask(scores, torch.zeros(1, 6), mask, 2.0).tolist() == [[1] * 6]


def test_fce_text_loss_without_text_divides_by_a_hundred_negatives():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    target, effective = torch.zeros(3), torch.ones(3)
    expected = sum(math.log(1 + math.exp(b - a)) for a, b in logits.tolist()) / 100  # mmocr's quirk
    assert fce_text_loss(logits, target, effective, 3.0).item() == pytest.approx(expected, rel=1e-6)


def test_torch_and_numpy_fourier_reconstructions_agree():
    generator = torch.Generator().manual_seed(0)
    real, imaginary = (
        torch.randn(5, 11, generator=generator) * 20,
        torch.randn(5, 11, generator=generator) * 20,
    )
    x, y = fourier_to_contour(real.double(), imaginary.double(), 50)
    contours = fourier_to_polygons((real + 1j * imaginary).numpy().astype(complex), 50)
    # numpy truncates to integers towards zero
    assert np.array_equal(np.trunc(x.numpy()).astype(np.int32), contours[..., 0])
    assert np.array_equal(np.trunc(y.numpy()).astype(np.int32), contours[..., 1])


def test_config_rejects_unknown_heads_and_fcenet_matching_on_stage_1():
    assert TcmConfig().head_type == "dbnet"
    with pytest.raises(ValueError, match="head_type"):
        TcmConfig(head_type="east")
    with pytest.raises(ValueError, match="matching_stage_index"):
        TcmConfig(head_type="fcenet", matching_stage_index=0)


@pytest.mark.parametrize("head_type", ["pan", "fcenet"])
def test_loss_falls_on_a_tiny_synthetic_set(head_type):
    torch.manual_seed(0)
    model = TcmForSceneTextDetection(TcmConfig.from_preset("tiny", head_type=head_type)).train()
    processor = TcmImageProcessor(do_resize=False, head_type=head_type)
    image = np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    polygons = [[8, 8, 56, 8, 56, 24, 8, 24], [10, 40, 60, 36, 62, 52, 12, 58]]
    batch = processor([image, image], polygons=[polygons, polygons[:1]])
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(12):
        loss = model(batch["pixel_values"], labels=batch["labels"]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) < 0.8 * sum(losses[:3])


def test_labels_of_another_head_are_refused():
    model = TcmForSceneTextDetection(TcmConfig.from_preset("tiny", head_type="pan"))
    shape = (1, 64, 64)
    db_labels = {
        k: torch.zeros(shape) for k in ("shrink_map", "shrink_mask", "threshold_map", "threshold_mask")
    }
    with pytest.raises(ValueError, match=r"missing \['text_kernel'"):
        model(torch.zeros(1, 3, 64, 64), labels=db_labels)


def _official_head_state(model: TcmForSceneTextDetection) -> dict[str, torch.Tensor]:
    """The neck and head of `model` under the official (mmocr / mmdet) parameter names."""
    official = {}
    for key, value in model.state_dict().items():
        if key.startswith("head."):
            official["bbox_head." + key[len("head.") :]] = value
        elif key.startswith("neck.") and model.config.head_type == "fcenet":
            prefix, _, parameter = key.rpartition(".")
            official[f"{prefix}.conv.{parameter}"] = value
        elif key.startswith("neck."):
            official[key] = value
    return official


@pytest.mark.parametrize("head_type", ["pan", "fcenet"])
def test_conversion_detects_the_head_from_the_state_dict(head_type, fixtures_dir, tmp_path):
    state = load_tcm_state_dict(fixtures_dir / "tcm" / "a" / "checkpoint.pth")
    assert detect_head_type(state) == "dbnet"
    torch.manual_seed(0)
    config = TcmConfig.from_preset("tiny", head_type=head_type, pan_neck_channels=6, fce_neck_channels=12)
    source = TcmForSceneTextDetection(config)
    state = {k: v for k, v in state.items() if not k.startswith(("neck.", "bbox_head."))}
    state.update(_official_head_state(source))
    torch.save({"meta": {}, "state_dict": state}, tmp_path / "tcm.pth")
    folder = convert_tcm_checkpoint(tmp_path / "tcm.pth", tmp_path / "converted", **FIXTURE_HEADS)

    converted = TcmForSceneTextDetection.from_pretrained(folder)
    assert converted.config.head_type == head_type
    assert (converted.config.pan_neck_channels, converted.config.fce_neck_channels) == (
        (6, 256) if head_type == "pan" else (128, 12)
    )
    for key, value in source.state_dict().items():
        if key.startswith(("neck.", "head.")):
            assert torch.equal(converted.state_dict()[key], value), key
    assert TcmImageProcessor.from_pretrained(folder).head_type == head_type


@pytest.mark.parametrize("head_type", ["pan", "fcenet"])
def test_plain_and_optimized_models_detect_the_same_maps(head_type):
    torch.manual_seed(0)
    model = TcmForSceneTextDetection(TcmConfig.from_preset("tiny", head_type=head_type)).eval()
    pixels = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        plain, fast = model(pixels), model.optimize_for_inference()(pixels)
    field = "pan_maps" if head_type == "pan" else "fce_regression"
    expected = plain[field] if head_type == "pan" else torch.cat([m.flatten() for m in plain[field]])
    actual = fast[field] if head_type == "pan" else torch.cat([m.flatten() for m in fast[field]])
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("head_type", ["pan", "fcenet"])
def test_detection_and_ocr_pipelines_give_the_dbnet_schema(head_type, tmp_path):
    from transformers import pipeline

    from tests.tiny_models import save_tiny_recognizer

    torch.manual_seed(0)
    model = TcmForSceneTextDetection(TcmConfig.from_preset("tiny", head_type=head_type))
    with torch.no_grad():  # text everywhere, so that the random model detects something
        if head_type == "pan":
            model.head.out_conv.bias[:2] = 8.0
        else:
            model.head.out_conv_cls.bias.copy_(torch.tensor([-5.0, 5.0, -5.0, 5.0]))
    model.save_pretrained(tmp_path / "detector")
    TcmImageProcessor(size={"shortest_edge": 64, "longest_edge": 128}, head_type=head_type).save_pretrained(
        tmp_path / "detector"
    )
    image = np.random.default_rng(0).integers(0, 255, (60, 90, 3), dtype=np.uint8)
    detector = pipeline("scene-text-detection", model=str(tmp_path / "detector"))
    batched = detector([image, image], batch_size=2)
    assert batched[0] == batched[1] == detector(image)
    assert batched[0] and set(batched[0][0]) == {"score", "label", "box", "polygon"}
    reader = pipeline(
        "ocr", model=str(tmp_path / "detector"), recognizer=str(save_tiny_recognizer(tmp_path / "rec"))
    )
    (first, *_) = reader(image)
    assert {"polygon", "box", "text", "score", "detection_score"} <= set(first)


def test_onnx_export_refuses_the_other_heads(tmp_path):
    from scenetext.export.onnx_export import export_detector_model

    model = TcmForSceneTextDetection(TcmConfig.from_preset("tiny", head_type="pan"))
    with pytest.raises(ValueError, match=r"DBNet head .* pan head"):
        export_detector_model(model, tmp_path / "onnx")
    assert not (tmp_path / "onnx").exists()
