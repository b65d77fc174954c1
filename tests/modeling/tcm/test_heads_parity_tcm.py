"""The PAN and FCENet necks, heads and losses against the official modules' outputs (`tests/fixtures/tcm/heads`)."""

import json

import pytest
import torch
from safetensors.torch import load_file

from scenetext.modeling.tcm import TcmConfig
from scenetext.modeling.tcm.convert_tcm import rename_head_key
from scenetext.modeling.tcm.heads_fcenet_tcm import TcmFceHead, TcmFcenetFpn, fce_losses
from scenetext.modeling.tcm.heads_pan_tcm import TcmFpemFfm, TcmPanHead, pan_losses, pan_matching_loss
from scenetext.modeling.tcm.modeling_tcm import balanced_bce_loss


@pytest.fixture(scope="module")
def heads_dir(fixtures_dir):
    return fixtures_dir / "tcm" / "heads"


def _load_converted(modules: dict[str, torch.nn.Module], fixture: dict[str, torch.Tensor]) -> None:
    """Load the official-named parameters of `fixture` into our neck and head through the converter's renames."""
    state = {
        rename_head_key(key): value
        for key, value in fixture.items()
        if key.startswith(("neck.", "bbox_head."))
    }
    for prefix, module in modules.items():
        part = {key[len(prefix) + 1 :]: value for key, value in state.items() if key.startswith(prefix + ".")}
        module.load_state_dict(part, strict=True)
        module.eval()


def _assert_official_losses(losses: dict, expected: dict, **official_names: str) -> None:
    """Each of our `losses` (keyword) equals the official value of the name it is given (value)."""
    for ours, official in official_names.items():
        assert losses[ours].item() == pytest.approx(expected[official], rel=1e-5), ours


def test_pan_neck_and_head_match_the_official_modules(heads_dir):
    fixture = load_file(heads_dir / "pan_head.safetensors")
    features = [fixture[f"input{i}"] for i in range(4)]
    neck, head = TcmFpemFfm([f.shape[1] for f in features], 8, 2), TcmPanHead(32)
    _load_converted({"neck": neck, "head": head}, fixture)
    with torch.no_grad():
        neck_out = neck(features)
        torch.testing.assert_close(neck_out, fixture["neck_out"], atol=1e-4, rtol=0)
        torch.testing.assert_close(head(neck_out), fixture["head_out"], atol=1e-4, rtol=0)


def test_fcenet_neck_and_head_match_the_official_modules(heads_dir):
    fixture = load_file(heads_dir / "fce_head.safetensors")
    features = [fixture[f"input{i}"] for i in range(3)]
    neck, head = TcmFcenetFpn([f.shape[1] for f in features], 16), TcmFceHead(16, 5)
    _load_converted({"neck": neck, "head": head}, fixture)
    with torch.no_grad():
        classification, regression = head(neck(features))
    for level in range(3):
        torch.testing.assert_close(classification[level], fixture[f"cls{level}"], atol=1e-4, rtol=0)
        torch.testing.assert_close(regression[level], fixture[f"reg{level}"], atol=1e-4, rtol=0)


def test_pan_losses_match_the_official_values(heads_dir):
    arrays = load_file(heads_dir / "pan.safetensors")
    expected = json.loads((heads_dir / "pan.json").read_text())["loss"]
    labels = {
        "text_kernel": torch.stack([arrays[f"{i}_gt_kernels"][0] for i in range(2)]).float(),
        "shrunk_kernel": torch.stack([arrays[f"{i}_gt_kernels"][1] for i in range(2)]).float(),
        "effective_mask": torch.stack([arrays[f"{i}_gt_mask"] for i in range(2)]).float(),
    }
    losses = pan_losses(arrays["loss_preds"], labels, TcmConfig(head_type="pan"))
    _assert_official_losses(
        losses,
        expected,
        text_loss="loss_text",
        kernel_loss="loss_kernel",
        aggregation_loss="loss_aggregation",
        discrimination_loss="loss_discrimination",
    )
    matching = pan_matching_loss(arrays["loss_matching"], labels, 3.0)
    assert matching.item() == pytest.approx(expected["loss_pix_cls"], rel=1e-5)


def test_fcenet_losses_match_the_official_values(heads_dir):
    arrays = load_file(heads_dir / "fce.safetensors")
    expected = json.loads((heads_dir / "fce.json").read_text())["loss"]
    labels = {
        f"fce_maps_{stride}": torch.stack([arrays[f"{i}_{name}"] for i in range(2)])
        for stride, name in ((8, "p3"), (16, "p4"), (32, "p5"))
    }
    losses = fce_losses(
        [arrays[f"loss_cls{level}"] for level in range(3)],
        [arrays[f"loss_reg{level}"] for level in range(3)],
        labels,
        TcmConfig(head_type="fcenet"),
    )
    _assert_official_losses(
        losses,
        expected,
        text_loss="loss_text",
        center_loss="loss_center",
        regression_x_loss="loss_reg_x",
        regression_y_loss="loss_reg_y",
    )
    # TCM's auxiliary loss, image by image (the official one mixes the images of a batch)
    for index in range(2):
        matching = arrays[f"{index}_matching"]
        logits = arrays["loss_matching"][index : index + 1, 0]
        ours = balanced_bce_loss(logits, matching[None, 0], matching[None, 2], 3.0, 1e-6, from_logits=True)
        assert ours.item() == pytest.approx(expected[f"aux_{index}"], rel=1e-5)


@pytest.mark.parametrize("head_type", ["pan", "fcenet"])
def test_converted_detector_with_each_head_gives_the_official_maps(
    head_type, heads_dir, fixtures_dir, tmp_path
):
    """Fixture `a`'s official TCM checkpoint with its DB neck and head replaced by official PAN / FCENet ones,
    converted: the whole model gives the maps the official modules computed from fixture `a`'s official stage
    features (matching map on layer 4; FCENet reading layers 2-4)."""
    from scenetext.modeling.tcm import TcmForSceneTextDetection
    from scenetext.modeling.tcm.convert_tcm import convert_tcm_checkpoint, load_tcm_state_dict

    official = load_file(heads_dir / f"detector_{'pan' if head_type == 'pan' else 'fce'}.safetensors")
    state = load_tcm_state_dict(fixtures_dir / "tcm" / "a" / "checkpoint.pth")
    state = {key: value for key, value in state.items() if not key.startswith(("neck.", "bbox_head."))}
    state.update({key: value for key, value in official.items() if key.startswith(("neck.", "bbox_head."))})
    torch.save({"meta": {}, "state_dict": state}, tmp_path / "tcm.pth")
    folder = convert_tcm_checkpoint(
        tmp_path / "tcm.pth",
        tmp_path / "converted",
        text_heads=2,
        context_decoder_heads=2,
        visual_prompt_heads=2,
    )
    model = TcmForSceneTextDetection.from_pretrained(folder).eval()
    assert model.config.head_type == head_type and model.config.matching_stage_index == 3
    with torch.no_grad():
        outputs = model(load_file(fixtures_dir / "tcm" / "a" / "io.safetensors")["input"])
    if head_type == "pan":
        torch.testing.assert_close(outputs.pan_maps, official["pan_maps"], atol=1e-4, rtol=0)
    else:
        for level in range(3):
            torch.testing.assert_close(
                outputs.fce_classification[level], official[f"cls{level}"], atol=1e-4, rtol=0
            )
            torch.testing.assert_close(
                outputs.fce_regression[level], official[f"reg{level}"], atol=1e-4, rtol=0
            )
