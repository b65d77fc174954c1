"""Convert a released TCM checkpoint (mmcv `.pth` from wenwenyu/TCM) into a transformers model folder.

    scenetext convert tcm tcm_ic15.pth ./tcm-ic15

The detection head (DBNet, PAN or FCENet) and the dimensions are read from the state dict's keys and tensor
shapes. Head counts are not stored in checkpoints, so the official
defaults are assumed (text tower width // 64, context decoder and visual prompt generator 4; the attention
pool always has 32) unless given. The class prompt's CLIP BPE ids are computed here with open_clip's
tokenizer, so the saved folder needs no tokenizer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from scenetext.modeling.checkpoints import load_foreign_checkpoint
from scenetext.modeling.tcm.configuration_tcm import DEFAULT_CLASS_PROMPT, TcmConfig
from scenetext.modeling.tcm.modeling_tcm import (
    TcmForSceneTextDetection,
    convert_openai_text_state_dict,
    convert_openai_visual_state_dict,
    load_state_dict_checked,
)

# Tokenisation length of the class prompt in every TCM configuration; the text encoder's position table
# holds this many rows plus one per learnable context token.
OFFICIAL_PROMPT_LENGTH = 14
OFFICIAL_ATTENTION_POOL_HEADS = 32
OFFICIAL_DECODER_HEADS = 4

# TCM module names -> TcmForSceneTextDetection names, for everything outside the CLIP encoders.
_DECODER_RENAMES = (
    (re.compile(r"\.text_proj\."), ".query_proj."),
    (re.compile(r"\.decoder\.(\d+)\."), r".layers.\1."),
    (re.compile(r"_attn\.proj\."), "_attn.out_proj."),
)
_HEAD_PATTERNS = (
    (re.compile(r"prompt_generator\.prompt_proj\.(.+)"), r"prompt_generator.layers.\1"),
    # DBNet: FPNC and DB head.
    (re.compile(r"neck\.(lateral|smooth)_convs\.(\d+)\.conv\.weight"), r"neck.\1_convs.\2.weight"),
    (re.compile(r"bbox_head\.(binarize|threshold)\.(.+)"), r"head.\1.\2"),
    # PAN: FPEM+FFM (same names) and the output convolution.
    (re.compile(r"neck\.((?:reduce_conv_c\d|fpems)\..+)"), r"neck.\1"),
    (re.compile(r"bbox_head\.(out_conv\.\w+)"), r"head.\1"),
    # FCENet: mmdet FPN (ConvModule wrappers dropped) and the two output convolutions.
    (re.compile(r"neck\.(lateral|fpn)_convs\.(\d+)\.conv\.(weight|bias)"), r"neck.\1_convs.\2.\3"),
    (re.compile(r"bbox_head\.(out_conv_(?:cls|reg)\.\w+)"), r"head.\1"),
)
_BARE_PARAMETERS = {"contexts": "contexts", "gamma": "text_gamma", "vis_gamma": "visual_gamma"}


def load_tcm_state_dict(src: str | Path, *, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The `state_dict` of an mmcv checkpoint (or a bare state dict), read by `load_foreign_checkpoint`: a
    file that needs full unpickling is refused unless `allow_pickle`."""
    path = Path(src)
    checkpoint = load_foreign_checkpoint(path, allow_pickle)
    state_dict = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state_dict, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state_dict.values()
    ):
        raise ValueError(f"{path}: expected an mmcv checkpoint with a `state_dict` of tensors.")
    if not any(key.startswith("backbone.") for key in state_dict):
        raise ValueError(f"{path}: no `backbone.*` parameters; this is not a TCM detector checkpoint.")
    return dict(state_dict)


def tokenize_class_prompt(text: str, length: int = OFFICIAL_PROMPT_LENGTH) -> list[int]:
    """OpenAI CLIP BPE ids of `text` as TCM tokenises it: [SOT] + BPE + [EOT], zero padded to `length`."""
    try:  # only the converter needs the BPE vocabulary
        from open_clip.tokenizer import SimpleTokenizer
    except ImportError as error:
        raise ImportError(
            'converting a TCM checkpoint needs open_clip: pip install "scenetext[convert]"'
        ) from error

    tokenizer = SimpleTokenizer()
    ids = [tokenizer.sot_token_id, *tokenizer.encode(text), tokenizer.eot_token_id]
    if len(ids) > length:
        raise ValueError(
            f"Class prompt {text!r} is {len(ids)} tokens with [SOT]/[EOT]; at most {length} fit."
        )
    return ids + [0] * (length - len(ids))


def detect_head_type(state_dict: Mapping[str, torch.Tensor]) -> str:
    """ "dbnet", "pan" or "fcenet", from the head's parameter names in a TCM state dict (official names)."""
    if "bbox_head.binarize.0.weight" in state_dict:
        return "dbnet"
    if "bbox_head.out_conv.weight" in state_dict:
        return "pan"
    if "bbox_head.out_conv_cls.weight" in state_dict:
        return "fcenet"
    heads = sorted({key.split(".")[1] for key in state_dict if key.startswith("bbox_head.")})
    raise ValueError(
        f"TCM checkpoint has no DBNet, PAN or FCENet head (bbox_head parameters: {heads or 'none'})."
    )


def _neck_config(state_dict: Mapping[str, torch.Tensor], head_type: str, stage_channels: list[int]) -> dict:
    """The neck and head fields of `TcmConfig` for `head_type`, and the stage the matching map joins (the one
    neck input with one channel more than its backbone stage)."""
    if head_type == "pan":
        inputs = [state_dict[f"neck.reduce_conv_c{i}.0.weight"].shape[1] for i in range(2, 6)]
        fields = {
            "pan_neck_channels": state_dict["neck.reduce_conv_c2.0.weight"].shape[0],
            "pan_fpem_repeats": _count(state_dict, r"neck\.fpems\.(\d+)\."),
        }
        stages = [0, 1, 2, 3]
    elif head_type == "fcenet":
        inputs = [state_dict[f"neck.lateral_convs.{i}.conv.weight"].shape[1] for i in range(3)]
        fields = {
            "fce_neck_channels": state_dict["neck.lateral_convs.0.conv.weight"].shape[0],
            "fourier_degree": (state_dict["bbox_head.out_conv_reg.weight"].shape[0] // 2 - 1) // 2,
        }
        stages = [1, 2, 3]
    else:
        inputs = [state_dict[f"neck.lateral_convs.{i}.conv.weight"].shape[1] for i in range(4)]
        fields = {
            "neck_lateral_channels": state_dict["neck.lateral_convs.0.conv.weight"].shape[0],
            "neck_out_channels": state_dict["neck.smooth_convs.0.conv.weight"].shape[0],
        }
        stages = [0, 1, 2, 3]
    with_matching = [
        stage for stage, channels in zip(stages, inputs, strict=True) if channels == stage_channels[stage] + 1
    ]
    if len(with_matching) != 1:
        raise ValueError(
            f"Neck inputs {inputs} do not show one stage of {[stage_channels[i] for i in stages]} plus the "
            "matching map."
        )
    return {"head_type": head_type, "matching_stage_index": with_matching[0], **fields}


def _count(state_dict: Mapping[str, torch.Tensor], pattern: str) -> int:
    indices = {match[1] for key in state_dict if (match := re.match(pattern, key))}
    return len(indices)


def infer_tcm_config(
    state_dict: Mapping[str, torch.Tensor],
    *,
    text_heads: int | None = None,
    context_decoder_heads: int | None = None,
    visual_prompt_heads: int | None = None,
    class_prompt: str = DEFAULT_CLASS_PROMPT,
) -> TcmConfig:
    """A `TcmConfig` matching the head and shapes of a TCM state dict (official key names)."""
    try:
        width = state_dict["backbone.conv3.weight"].shape[0]
        positions = state_dict["backbone.attnpool.positional_embedding"].shape[0]
        embed_dim = state_dict["backbone.attnpool.c_proj.weight"].shape[0]
        token_embedding = state_dict["text_encoder.token_embedding.weight"]
        context_length = state_dict["text_encoder.positional_embedding"].shape[0]
        num_context_tokens = state_dict["contexts"].shape[1]
        stage_channels = [width * 4 * 2**i for i in range(4)]
        neck = _neck_config(state_dict, detect_head_type(state_dict), stage_channels)
    except KeyError as error:
        raise ValueError(f"TCM checkpoint lacks {error.args[0]!r}; cannot infer the configuration.") from None

    grid = math.isqrt(positions - 1)
    text_width = token_embedding.shape[1]
    if text_heads is None:
        if text_width < 64:
            raise ValueError(
                f"Text width {text_width} < 64: pass the text encoder's head count (--text-heads)."
            )
        text_heads = text_width // 64  # OpenAI CLIP's rule
    prompt_length = context_length - num_context_tokens
    return TcmConfig(
        layers=[_count(state_dict, rf"backbone\.layer{i}\.(\d+)\.conv1\.weight") for i in range(1, 5)],
        width=width,
        attention_pool_heads=OFFICIAL_ATTENTION_POOL_HEADS,
        embed_dim=embed_dim,
        input_resolution=grid * 32,
        text_config={
            "vocab_size": token_embedding.shape[0],
            "hidden_size": text_width,
            "intermediate_size": state_dict["text_encoder.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
            "num_hidden_layers": _count(state_dict, r"text_encoder\.transformer\.resblocks\.(\d+)\."),
            "num_attention_heads": text_heads,
            "projection_dim": state_dict["text_encoder.text_projection"].shape[1],
            "max_position_embeddings": context_length,
            "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-5,
        },
        class_prompt=class_prompt,
        class_prompt_ids=tokenize_class_prompt(class_prompt, prompt_length),
        num_context_tokens=num_context_tokens,
        context_decoder_layers=_count(state_dict, r"context_decoder\.decoder\.(\d+)\."),
        context_decoder_width=state_dict["context_decoder.memory_proj.1.weight"].shape[0],
        context_decoder_heads=context_decoder_heads or OFFICIAL_DECODER_HEADS,
        visual_prompt_layers=_count(state_dict, r"visual_prompt_generator\.decoder\.(\d+)\."),
        visual_prompt_width=state_dict["visual_prompt_generator.memory_proj.1.weight"].shape[0],
        visual_prompt_heads=visual_prompt_heads or OFFICIAL_DECODER_HEADS,
        **neck,
    )


def convert_tcm_state_dict(state_dict: Mapping[str, torch.Tensor], source: str = "TCM checkpoint") -> dict:
    """Rename a TCM state dict (official key names) to `TcmForSceneTextDetection` names."""
    visual = {k[len("backbone.") :]: v for k, v in state_dict.items() if k.startswith("backbone.")}
    text = {k[len("text_encoder.") :]: v for k, v in state_dict.items() if k.startswith("text_encoder.")}
    grid = math.isqrt(state_dict["backbone.attnpool.positional_embedding"].shape[0] - 1)
    converted = {
        **{
            f"image_encoder.{k}": v for k, v in convert_openai_visual_state_dict(visual, grid, source).items()
        },
        **{
            f"text_encoder.{k}": v
            for k, v in convert_openai_text_state_dict(
                text, state_dict["text_encoder.positional_embedding"].shape[0], source
            ).items()
        },
    }
    for key, value in state_dict.items():
        if key.startswith(("backbone.", "text_encoder.")):
            continue
        if key in _BARE_PARAMETERS:
            converted[_BARE_PARAMETERS[key]] = value
        elif key.startswith(("context_decoder.", "visual_prompt_generator.")):
            for pattern, replacement in _DECODER_RENAMES:
                key = pattern.sub(replacement, key)
            converted[key] = value
        else:
            converted[rename_head_key(key, source)] = value
    return converted


def rename_head_key(key: str, source: str = "TCM checkpoint") -> str:
    """The name in `TcmForSceneTextDetection` of an official prompt-generator, neck or head parameter."""
    for pattern, replacement in _HEAD_PATTERNS:
        if pattern.fullmatch(key):
            return pattern.sub(replacement, key)
    raise ValueError(
        f"{source}: unsupported parameter {key!r} (not part of TCM with a DBNet, PAN or FCENet head)."
    )


def convert_tcm_checkpoint(
    src: str | Path,
    dst: str | Path,
    *,
    text_heads: int | None = None,
    context_decoder_heads: int | None = None,
    visual_prompt_heads: int | None = None,
    allow_pickle: bool = False,
) -> Path:
    """Convert the TCM checkpoint `src` into a `save_pretrained` folder `dst` (with the ICDAR2015
    `TcmImageProcessor` preset when the image processor is available) and return `dst`."""
    state_dict = load_tcm_state_dict(src, allow_pickle=allow_pickle)
    config = infer_tcm_config(
        state_dict,
        text_heads=text_heads,
        context_decoder_heads=context_decoder_heads,
        visual_prompt_heads=visual_prompt_heads,
    )
    model = TcmForSceneTextDetection(config)
    load_state_dict_checked(model, convert_tcm_state_dict(state_dict, str(src)), str(src))
    dst = Path(dst)
    model.save_pretrained(dst)
    try:
        from scenetext.processors.tcm.image_processing_tcm import TcmImageProcessor
    except ImportError:  # the image processor is optional for the model folder
        return dst
    TcmImageProcessor.from_preset("icdar2015", head_type=config.head_type).save_pretrained(dst)
    return dst
