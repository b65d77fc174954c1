"""Convert an official CLIP4STR checkpoint (VamosC/CLIP4STR) into a transformers folder.

Reads a Lightning `.ckpt` or a released `.pt` (both hold a `state_dict` with `clip_model.*`, `visual_decoder.*`,
`cross_decoder.*` keys), infers every dimension from tensor shapes, and writes model + processor + code with
`save_pretrained`. Head counts are not stored in checkpoints: like the official code, `width // 64` is assumed for
both CLIP towers (20 vision heads for H/14) unless given; the decoders' heads come from the checkpoint's hyper-
parameters when present, else the official 8.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from transformers import CLIPTextConfig, CLIPVisionConfig

from scenetext.modeling.checkpoints import load_foreign_checkpoint

from .caption_tokenizer_clip4str import installed_openai_merges_file, read_openai_clip_merges
from .configuration_clip4str import CHARSET_36, CHARSET_94, Clip4StrConfig, as_pair
from .modeling_clip4str import Clip4StrForSceneTextRecognition

# Official test-time normalisation (test.py / read.py call the transform without CLIP's mean/std).
OFFICIAL_TEST_MEAN = (0.5, 0.5, 0.5)
OFFICIAL_TEST_STD = (0.5, 0.5, 0.5)


def load_official_checkpoint(
    path: str | Path, allow_pickle: bool = False
) -> tuple[dict[str, torch.Tensor], dict]:
    """Return `(state_dict, hyper_parameters)` of an official checkpoint.

    Read by `load_foreign_checkpoint`: a file that needs full unpickling is refused unless `allow_pickle`.
    """
    checkpoint = load_foreign_checkpoint(path, allow_pickle)
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} holds a {type(checkpoint).__name__}, expected a dict with a `state_dict`")
    state_dict = checkpoint.get("state_dict", checkpoint)
    if not any(key.startswith("clip_model.") for key in state_dict):
        raise ValueError(f"{path} has no `clip_model.*` weights: not a CLIP4STR checkpoint")
    hparams = checkpoint.get("hyper_parameters") or {}
    # Lightning stores an AttributeDict; older checkpoints may hold an argparse Namespace.
    return dict(state_dict), dict(hparams) if isinstance(hparams, dict) else dict(vars(hparams))


def _count_blocks(state_dict: dict[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    indices = {int(m.group(1)) for key in state_dict if (m := pattern.match(key))}
    return max(indices) + 1 if indices else 0


def _heads(width: int, given: int | None, tower: str, option: str) -> int:
    heads = given if given is not None else width // 64
    if heads < 1 or width % heads:
        raise ValueError(
            f"cannot infer the {tower} attention heads for width {width} (official rule: width // 64); "
            f"pass {option} N"
        )
    return heads


def infer_config(
    state_dict: dict[str, torch.Tensor],
    hyper_parameters: dict[str, Any] | None = None,
    vision_heads: int | None = None,
    text_heads: int | None = None,
    decoder_heads: int | None = None,
) -> Clip4StrConfig:
    """Build the config of an official checkpoint from its tensor shapes (and hyper-parameters if any)."""
    hparams = hyper_parameters or {}
    sd = state_dict
    patch_embed = sd["clip_model.visual.conv1.weight"]
    vision_width, patch_size = patch_embed.shape[0], patch_embed.shape[-1]
    grid = round((sd["clip_model.visual.positional_embedding"].shape[0] - 1) ** 0.5)
    text_width = sd["clip_model.ln_final.weight"].shape[0]
    projection_dim = sd["clip_model.text_projection"].shape[1]
    if sd["clip_model.visual.proj"].shape[1] != projection_dim:
        raise ValueError("visual.proj and text_projection disagree on the joint width")
    vision_config = CLIPVisionConfig(
        hidden_size=vision_width,
        intermediate_size=sd["clip_model.visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        num_hidden_layers=_count_blocks(sd, "clip_model.visual.transformer.resblocks."),
        num_attention_heads=_heads(vision_width, vision_heads, "vision", "--vision-heads"),
        patch_size=patch_size,
        image_size=grid * patch_size,
        projection_dim=projection_dim,
        hidden_act="quick_gelu",  # the vendored OpenAI CLIP code uses QuickGELU for every released model
        layer_norm_eps=1e-5,
    )
    text_config = CLIPTextConfig(
        hidden_size=text_width,
        intermediate_size=sd["clip_model.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        num_hidden_layers=_count_blocks(sd, "clip_model.transformer.resblocks."),
        num_attention_heads=_heads(text_width, text_heads, "text", "--text-heads"),
        vocab_size=sd["clip_model.token_embedding.weight"].shape[0],
        max_position_embeddings=sd["clip_model.positional_embedding"].shape[0],
        projection_dim=projection_dim,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )
    decoder_width = sd["visual_decoder.norm.weight"].shape[0]
    charset = hparams.get("charset_train", CHARSET_94)
    num_tokens = sd["visual_decoder.text_embed.embedding.weight"].shape[0]
    if num_tokens != len(charset) + 3:
        raise ValueError(
            f"the decoder embeds {num_tokens} tokens but the charset has {len(charset)} characters "
            f"(+3 specials expected)"
        )
    return Clip4StrConfig(
        vision_config=vision_config,
        text_config=text_config,
        projection_dim=projection_dim,
        decoder_num_layers=_count_blocks(sd, "visual_decoder.layers."),
        decoder_num_heads=decoder_heads or int(hparams.get("dec_num_heads", 8)),
        decoder_mlp_ratio=sd["visual_decoder.layers.0.linear1.weight"].shape[0] // decoder_width,
        decoder_dropout=float(hparams.get("dropout", 0.1)),
        charset=charset,
        caption_charset=hparams.get("charset_test", CHARSET_36),
        max_label_length=sd["visual_decoder.pos_queries"].shape[1] - 1,
        decode_ar=bool(hparams.get("decode_ar", True)),
        refine_iters=int(hparams.get("refine_iters", 1)),
        perm_num=int(hparams.get("perm_num", 6)),
        perm_forward=bool(hparams.get("perm_forward", True)),
        perm_mirrored=bool(hparams.get("perm_mirrored", True)),
        text_context_length=int(hparams.get("context_length", 16)),
        text_freeze_nlayer=int(hparams.get("text_freeze_nlayer", 6)),
        image_detach=bool(hparams.get("image_detach", True)),
        cross_loss_weight=float(hparams.get("cross_loss_w", 1.0)),
    )


# OpenAI CLIP block names -> transformers CLIP names (the fused attention input projection is split apart).
_BLOCK_RENAMES = {
    "ln_1": "layer_norm1",
    "ln_2": "layer_norm2",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
    "attn.out_proj": "self_attn.out_proj",
}


def _split_in_proj(prefix: str, weight: torch.Tensor, bias: torch.Tensor) -> dict[str, torch.Tensor]:
    out = {}
    for name, w, b in zip(("q_proj", "k_proj", "v_proj"), weight.chunk(3), bias.chunk(3), strict=True):
        out[f"{prefix}.{name}.weight"] = w
        out[f"{prefix}.{name}.bias"] = b
    return out


def convert_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map official CLIP4STR keys onto [`Clip4StrForSceneTextRecognition`]'s."""
    converted: dict[str, torch.Tensor] = {}
    towers = {
        "clip_model.visual.transformer.resblocks.": "vision_model.encoder.layers.",
        "clip_model.transformer.resblocks.": "text_model.encoder.layers.",
    }
    direct = {
        "clip_model.visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
        "clip_model.visual.class_embedding": "vision_model.embeddings.class_embedding",
        "clip_model.visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
        "clip_model.visual.ln_pre.weight": "vision_model.pre_layrnorm.weight",
        "clip_model.visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
        "clip_model.visual.ln_post.weight": "vision_model.post_layernorm.weight",
        "clip_model.visual.ln_post.bias": "vision_model.post_layernorm.bias",
        "clip_model.token_embedding.weight": "text_model.embeddings.token_embedding.weight",
        "clip_model.positional_embedding": "text_model.embeddings.position_embedding.weight",
        "clip_model.ln_final.weight": "text_model.final_layer_norm.weight",
        "clip_model.ln_final.bias": "text_model.final_layer_norm.bias",
    }
    for key, value in state_dict.items():
        if key in direct:
            converted[direct[key]] = value
        elif key in ("clip_model.visual.proj", "clip_model.text_projection"):
            # OpenAI multiplies `x @ proj`; a Linear stores the transpose.
            name = "visual_projection" if "visual" in key else "text_projection"
            converted[f"{name}.weight"] = value.t().contiguous()
        elif key == "clip_model.logit_scale":
            continue  # CLIP's contrastive temperature; CLIP4STR never uses it
        elif tower := next((t for t in towers if key.startswith(t)), None):
            index, rest = key[len(tower) :].split(".", 1)
            prefix = f"{towers[tower]}{index}"
            if rest == "attn.in_proj_weight":
                bias = state_dict[f"{tower}{index}.attn.in_proj_bias"]
                converted.update(_split_in_proj(f"{prefix}.self_attn", value, bias))
            elif rest == "attn.in_proj_bias":
                continue
            else:
                module, leaf = rest.rsplit(".", 1)
                converted[f"{prefix}.{_BLOCK_RENAMES.get(module, module)}.{leaf}"] = value
        elif key.startswith(("visual_decoder.", "cross_decoder.")):
            if key.endswith(".in_proj_weight"):
                prefix = key[: -len(".in_proj_weight")]
                converted.update(_split_in_proj(prefix, value, state_dict[f"{prefix}.in_proj_bias"]))
            elif key.endswith(".in_proj_bias"):
                continue
            else:
                converted[key.replace(".text_embed.embedding.", ".text_embed.")] = value
        else:
            raise ValueError(f"unexpected key in the official checkpoint: {key}")
    return converted


def load_converted_weights(model: Clip4StrForSceneTextRecognition, weights: dict[str, torch.Tensor]) -> None:
    """Load converted weights, failing on any missing, unexpected or mis-shaped tensor."""
    expected = {k: v for k, v in model.state_dict().items() if not k.startswith("caption_tokenizer.")}
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    mismatched = [
        f"{k}: checkpoint {tuple(weights[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in weights and weights[k].shape != v.shape
    ]
    if missing or unexpected or mismatched:
        raise ValueError(
            "the checkpoint does not match the inferred architecture:\n"
            + "".join(f"  missing: {k}\n" for k in missing)
            + "".join(f"  unexpected: {k}\n" for k in unexpected)
            + "".join(f"  shape mismatch: {m}\n" for m in mismatched)
        )
    model.load_state_dict(weights, strict=False)


def convert_clip4str_checkpoint(
    src: str | Path,
    dst: str | Path,
    *,
    vision_heads: int | None = None,
    text_heads: int | None = None,
    decoder_heads: int | None = None,
    allow_pickle: bool = False,
) -> Path:
    """Convert an official checkpoint into a folder loadable with `from_pretrained` (model, processor, code)."""
    state_dict, hparams = load_official_checkpoint(src, allow_pickle=allow_pickle)
    config = infer_config(state_dict, hparams, vision_heads, text_heads, decoder_heads)
    model = Clip4StrForSceneTextRecognition(config)
    load_converted_weights(model, convert_state_dict(state_dict))
    if not model.caption_tokenizer.has_merges:
        merges_file = installed_openai_merges_file()
        if merges_file is None:
            raise RuntimeError("converting needs CLIP's BPE merges: install open-clip-torch")
        model.caption_tokenizer.load_merges(*read_openai_clip_merges(merges_file))
    dst = Path(dst)
    model.save_pretrained(dst)
    build_processor(config, image_mean=OFFICIAL_TEST_MEAN, image_std=OFFICIAL_TEST_STD).save_pretrained(dst)
    return dst


def build_processor(
    config: Clip4StrConfig,
    image_mean: tuple[float, ...],
    image_std: tuple[float, ...],
    normalize_unicode: bool | str = True,
) -> Any:
    """The processor matching a model config: its charset, label length and input size; `normalize_unicode`
    is the labels' Unicode step (`Clip4StrTokenizer`)."""
    from scenetext.processors.clip4str import Clip4StrImageProcessor, Clip4StrProcessor, Clip4StrTokenizer

    height, width = as_pair(config.vision_config.image_size)
    image_processor = Clip4StrImageProcessor(
        size={"height": height, "width": width}, image_mean=list(image_mean), image_std=list(image_std)
    )
    tokenizer = Clip4StrTokenizer(
        charset=config.charset, max_label_length=config.max_label_length, normalize_unicode=normalize_unicode
    )
    return Clip4StrProcessor(image_processor=image_processor, tokenizer=tokenizer)
