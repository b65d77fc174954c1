"""Converting an official TCM checkpoint: parity with the official outputs, inferred sizes, CLI, bad files."""

import argparse
import json
import math

import pytest
import torch
from safetensors.torch import load_file

from scenetext.cli.main import main
from scenetext.modeling.tcm import TcmForSceneTextDetection
from scenetext.modeling.tcm.convert_tcm import (
    convert_tcm_checkpoint,
    infer_tcm_config,
    load_tcm_state_dict,
    tokenize_class_prompt,
)

FIXTURE_HEADS = {"text_heads": 2, "context_decoder_heads": 2, "visual_prompt_heads": 2}


@pytest.fixture(scope="module")
def fixture_a(fixtures_dir):
    return fixtures_dir / "tcm" / "a"


@pytest.fixture(scope="module")
def converted(fixture_a, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tcm_a")
    return convert_tcm_checkpoint(fixture_a / "checkpoint.pth", folder, **FIXTURE_HEADS)


@pytest.fixture(scope="module")
def official(fixture_a):
    return load_file(fixture_a / "io.safetensors")


def _run_with_probes(model: TcmForSceneTextDetection, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
    """Forward pass recording the intermediate tensors the official fixture holds, under its names."""
    seen = {}
    hooks = [
        model.image_encoder.register_forward_hook(
            lambda m, a, out: seen.update(
                {f"stage{i + 1}": f for i, f in enumerate(out.stage_features)},
                global_feat=out.global_embedding,
                local_feat=out.pixel_embeddings,
            )
        ),
        model.prompt_generator.register_forward_hook(lambda m, a, out: seen.update(prompt_gen=out)),
        model.text_encoder.text_model.encoder.register_forward_hook(
            lambda m, a, kw, out: seen.update(
                text_input_embeds=kw["inputs_embeds"], text_transformer_out=out.last_hidden_state
            ),
            with_kwargs=True,
        ),
        model.visual_prompt_generator.register_forward_hook(
            lambda m, a, out: seen.update(vis_prompt_diff=out, text_embeddings_before=a[1])
        ),
        model.context_decoder.register_forward_hook(lambda m, a, out: seen.update(text_diff=out)),
        model.neck.register_forward_hook(lambda m, a, out: seen.update(stage4_fused=a[0][3], neck_out=out)),
    ]
    with torch.no_grad():
        outputs = model(pixel_values)
    for hook in hooks:
        hook.remove()
    batch, channels, height, width = seen["local_feat"].shape
    seen["vis_prompt_diff"] = seen["vis_prompt_diff"].transpose(1, 2).reshape(batch, channels, height, width)
    seen["visual_embeddings_after_prompt"] = seen["local_feat"] + model.visual_gamma * seen["vis_prompt_diff"]
    seen.update(
        texts=torch.tensor([model.config.class_prompt_ids]),
        text_embeddings_after=outputs.text_embeddings,
        score_map=outputs.matching_map,
        prob_map=outputs.prob_map,
        thr_map=outputs.thresh_map,
        binary_map=outputs.binary_map,
        head_out=torch.cat([outputs.prob_map, outputs.thresh_map, outputs.binary_map], dim=1),
    )
    return seen


def test_converted_checkpoint_reproduces_every_official_tensor(converted, official):
    model = TcmForSceneTextDetection.from_pretrained(converted).eval()
    ours = _run_with_probes(model, official["input"])
    compared = sorted(set(official) - {"input"})
    assert set(compared) <= set(ours), f"no probe for {set(compared) - set(ours)}"
    for name in compared:
        torch.testing.assert_close(ours[name], official[name], atol=1e-4, rtol=0, msg=name)


def test_config_is_inferred_from_shapes_and_head_options(fixture_a):
    state_dict = load_tcm_state_dict(fixture_a / "checkpoint.pth")
    official_config = json.loads((fixture_a / "config.json").read_text())

    config = infer_tcm_config(state_dict, **FIXTURE_HEADS)

    assert config.layers == official_config["backbone"]["layers"]
    assert config.width == official_config["backbone"]["width"]
    assert config.embed_dim == official_config["backbone"]["output_dim"]
    assert config.input_resolution == official_config["backbone"]["input_resolution"]
    assert config.attention_pool_heads == official_config["attnpool_num_heads"]
    assert config.text_config.num_attention_heads == 2
    assert config.text_config.num_hidden_layers == official_config["text_encoder"]["transformer_layers"]
    assert config.text_config.max_position_embeddings == official_config["text_encoder"]["context_length"]
    assert config.class_prompt_ids == official_config["token_ids"][0]
    assert config.eot_index == official_config["eos_index_in_text_encoder"][0]
    assert config.num_context_tokens == official_config["n_learnable_contexts"]
    assert (config.context_decoder_width, config.context_decoder_heads, config.context_decoder_layers) == (
        32,
        2,
        1,
    )
    assert (config.neck_lateral_channels, config.neck_out_channels) == (32, 8)
    assert config.matching_stage_index == official_config["score_concat_index"]


def test_text_heads_must_be_given_below_the_clip_width(fixture_a):
    state_dict = load_tcm_state_dict(fixture_a / "checkpoint.pth")
    with pytest.raises(ValueError, match="--text-heads"):
        infer_tcm_config(state_dict)


def test_class_prompt_is_tokenised_like_tcm():
    ids = tokenize_class_prompt("the pixels of many arbitrary-shape text instances.")
    assert ids == [49406, 518, 34099, 539, 1346, 22702, 856, 268, 6448, 4160, 1264, 3515, 269, 49407]
    assert tokenize_class_prompt("text", 6) == [49406, 4160, 49407, 0, 0, 0]
    with pytest.raises(ValueError, match="at most 4"):
        tokenize_class_prompt("many words in this prompt", 4)


def test_cli_subcommand_converts(fixture_a, tmp_path):
    heads = ["--text-heads", "2", "--context-decoder-heads", "2", "--visual-prompt-heads", "2"]
    assert main(["convert", "tcm", str(fixture_a / "checkpoint.pth"), str(tmp_path / "out"), *heads]) == 0
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["context_decoder_heads"] == 2
    assert config["auto_map"]["AutoModel"] == "modeling_tcm.TcmForSceneTextDetection"


def test_folder_carries_the_icdar2015_image_processor(converted):
    processing = pytest.importorskip("scenetext.processors.tcm.image_processing_tcm")
    processor = processing.TcmImageProcessor.from_pretrained(converted)
    assert processor.post_processing == processing.TcmImageProcessor.from_preset("icdar2015").post_processing


@pytest.mark.slow
def test_converted_folder_loads_in_isolated_process(converted, official, run_isolated, tmp_path):
    expected = TcmForSceneTextDetection.from_pretrained(converted).eval()(official["input"]).prob_map
    torch.save(official["input"], tmp_path / "input.pt")
    stdout = run_isolated(
        f"""
        import torch
        from transformers import AutoConfig, AutoModel
        config = AutoConfig.from_pretrained({str(converted)!r}, trust_remote_code=True)
        model = AutoModel.from_pretrained({str(converted)!r}, trust_remote_code=True).eval()
        with torch.no_grad():
            prob = model(torch.load({str(tmp_path / "input.pt")!r})).prob_map
        print(type(config).__name__, type(model).__name__, repr(prob.double().sum().item()))
        """
    )
    config_name, model_name, value = stdout.split()
    assert (config_name, model_name) == ("TcmConfig", "TcmForSceneTextDetection")
    assert math.isclose(float(value), expected.double().sum().item(), rel_tol=1e-6)


def _save_checkpoint(path, state_dict, **extra):
    torch.save({"meta": {}, "state_dict": state_dict, **extra}, path)
    return path


def test_missing_checkpoint_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing\.pth"):
        convert_tcm_checkpoint(tmp_path / "nothing.pth", tmp_path / "out")


def test_missing_parameter_is_named(fixture_a, tmp_path):
    state_dict = load_tcm_state_dict(fixture_a / "checkpoint.pth")
    del state_dict["neck.smooth_convs.2.conv.weight"]
    src = _save_checkpoint(tmp_path / "missing.pth", state_dict)
    with pytest.raises(ValueError, match=r"missing: neck\.smooth_convs\.2\.weight"):
        convert_tcm_checkpoint(src, tmp_path / "out", **FIXTURE_HEADS)


def test_mis_shaped_parameter_is_named(fixture_a, tmp_path):
    state_dict = load_tcm_state_dict(fixture_a / "checkpoint.pth")
    state_dict["bbox_head.threshold.3.weight"] = torch.zeros(8, 8, 3, 3)
    src = _save_checkpoint(tmp_path / "shape.pth", state_dict)
    with pytest.raises(ValueError, match=r"shape mismatch: head\.threshold\.3\.weight: \(8, 8, 3, 3\)"):
        convert_tcm_checkpoint(src, tmp_path / "out", **FIXTURE_HEADS)


def test_unsupported_parameter_is_named(fixture_a, tmp_path):
    state_dict = load_tcm_state_dict(fixture_a / "checkpoint.pth")
    state_dict["logit_scale"] = torch.tensor(2.6)
    src = _save_checkpoint(tmp_path / "extra.pth", state_dict)
    with pytest.raises(ValueError, match="unsupported parameter 'logit_scale'"):
        convert_tcm_checkpoint(src, tmp_path / "out", **FIXTURE_HEADS)


def test_pickled_objects_need_explicit_permission(fixture_a, tmp_path):
    state_dict = load_tcm_state_dict(fixture_a / "checkpoint.pth")
    src = _save_checkpoint(tmp_path / "pickled.pth", state_dict, cfg=argparse.Namespace(lr=1e-4))
    with pytest.raises(ValueError, match="--allow-pickle"):
        load_tcm_state_dict(src)
    assert load_tcm_state_dict(src, allow_pickle=True).keys() == state_dict.keys()


def test_non_detector_checkpoint_is_rejected(tmp_path):
    src = _save_checkpoint(tmp_path / "other.pth", {"encoder.weight": torch.zeros(2)})
    with pytest.raises(ValueError, match="not a TCM detector checkpoint"):
        load_tcm_state_dict(src)
