"""CLIP4STR configuration: CLIP vision and text towers plus two PARSeq-style decoders."""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any, ClassVar

from transformers import CLIPTextConfig, CLIPVisionConfig, PreTrainedConfig

# Training charset of the official code (configs/charset/94_full.yaml): the order fixes the token ids.
CHARSET_94 = string.digits + string.ascii_lowercase + string.ascii_uppercase + string.punctuation
# The official test charset (36 lowercase alphanumerics); the cross-modal branch filters its captions with it.
CHARSET_36 = string.digits + string.ascii_lowercase

# Official sizes (VamosC/CLIP4STR configs/experiment/vl4str*.yaml and the CLIP checkpoints they start from).
# Attention heads follow the official `width // 64` rule, which gives 20 vision heads for H/14.
PRESETS: dict[str, dict[str, Any]] = {
    "vit-b16": {
        "vision": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "patch_size": 16},
        "text": {"hidden_size": 512, "num_hidden_layers": 12, "num_attention_heads": 8},
        "projection_dim": 512,
    },
    "vit-b32": {
        "vision": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "patch_size": 32},
        "text": {"hidden_size": 512, "num_hidden_layers": 12, "num_attention_heads": 8},
        "projection_dim": 512,
    },
    "vit-l14": {
        "vision": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "patch_size": 14},
        "text": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12},
        "projection_dim": 768,
    },
    "vit-h14": {
        "vision": {"hidden_size": 1280, "num_hidden_layers": 32, "num_attention_heads": 20, "patch_size": 14},
        "text": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16},
        "projection_dim": 1024,
    },
    # Not official sizes: the embedded demo model (trained from scratch on synthetic words on CPU; PARSeq's
    # 32x128 crops, 8x8 patches from a convolutional stem) ...
    "small": {
        "vision": {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "patch_size": 8},
        "text": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2},
        "projection_dim": 128,
        "image_size": [32, 128],
        "decoder_num_heads": 4,
        "vision_stem_channels": [32, 64, 128],
    },
    # ... and a few-second model for tests and smoke runs.
    "tiny": {
        "vision": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "patch_size": 8},
        "text": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2},
        "projection_dim": 32,
        "image_size": 32,
        "decoder_num_heads": 2,
    },
}


def as_pair(value: int | Sequence[int]) -> tuple[int, int]:
    """`(height, width)` of a CLIP vision size: an int (square) or a pair."""
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


class Clip4StrConfig(PreTrainedConfig):
    r"""
    Configuration of [`Clip4StrForSceneTextRecognition`].

    Args:
        vision_config (`dict` or `CLIPVisionConfig`): the CLIP ViT image encoder.
        text_config (`dict` or `CLIPTextConfig`): the CLIP text encoder of the cross-modal branch.
        projection_dim (`int`): CLIP joint-space width; image and text tokens are projected to it and it is the
            width of both decoders (the official `use_share_dim`).
        decoder_num_layers, decoder_num_heads, decoder_mlp_ratio, decoder_dropout, decoder_hidden_act:
            the PARSeq two-stream decoders (official: 1 layer, 8 heads, ratio 4, dropout 0.1, exact GELU).
        charset (`str`): characters the decoders read and write; token ids are `[E]`=0, the charset in order,
            then `[B]` and `[P]`.
        caption_charset (`str`): the official `charset_test`; the predicted text is mapped onto it (lower-cased
            when it has no capitals, other characters removed) before the CLIP text encoder reads it. Any script
            (CLIP's BPE reads UTF-8); with the default 36 characters a predicted "Größe" is read as "gre".
        max_label_length (`int`): longest label; decoding runs `max_label_length + 1` steps (the last one for [E]).
        decode_ar (`bool`): autoregressive decoding at inference (else one parallel pass).
        decode_fixed_steps (`bool`): always run every decoding step (no early stop once all samples emitted
            [E]): static shapes for torch.compile / CUDA graphs / export, same outputs.
        refine_iters (`int`): cloze refinement passes after decoding.
        perm_num, perm_forward, perm_mirrored: permuted sequence modeling in training (PARSeq).
        text_context_length (`int`): CLIP BPE positions given to the text encoder (official 16).
        text_freeze_nlayer (`int`): text layers below this index and the text embeddings are frozen (-1: none).
        image_detach (`bool`): the cross-modal branch does not back-propagate into the image encoder.
        cross_loss_weight (`float`): weight of the cross-modal cross-entropy in the training loss.
        vision_stem_channels (`list[int]`, *optional*): `None` (official) patchifies the image with CLIP's single
            strided convolution. A list replaces it with a convolutional stem (Xiao et al., "Early Convolutions
            Help Transformers See Better", 2021): per entry a 3x3 convolution of that many channels with batch
            norm and ReLU, stride 2 in each direction where the patch still needs it, then a 1x1 convolution to
            the ViT width. The patch sides must be powers of two, the larger one `2 ** len(list)`. Small models
            trained from scratch on CPU learn to read far sooner with it.
    """

    model_type = "clip4str"
    sub_configs_defaults: ClassVar[dict] = {"vision_config": CLIPVisionConfig, "text_config": CLIPTextConfig}

    vision_config: dict | CLIPVisionConfig | None = None
    text_config: dict | CLIPTextConfig | None = None
    projection_dim: int = 512
    decoder_num_layers: int = 1
    decoder_num_heads: int = 8
    decoder_mlp_ratio: int | float = 4
    decoder_dropout: float = 0.1
    decoder_hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-5
    charset: str = CHARSET_94
    caption_charset: str = CHARSET_36
    max_label_length: int = 25
    decode_ar: bool = True
    decode_fixed_steps: bool = False
    refine_iters: int = 1
    perm_num: int = 6
    perm_forward: bool = True
    perm_mirrored: bool = True
    text_context_length: int = 16
    text_freeze_nlayer: int = 6
    image_detach: bool = True
    cross_loss_weight: float = 1.0
    initializer_range: float = 0.02
    vision_stem_channels: list[int] | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self._validate()

    def _validate(self) -> None:
        if self.vision_stem_channels is not None:
            patch = self.vision_config.patch_size
            sides = as_pair(patch)
            stages = len(self.vision_stem_channels)
            if any(side & (side - 1) for side in sides) or max(sides) != 2**stages:
                raise ValueError(
                    f"a convolutional stem of {stages} stages (`vision_stem_channels`) patchifies with stride 2 per "
                    f"stage: the patch sides must be powers of two, the larger one {2**stages}; got patch_size {patch}"
                )
        if len(set(self.charset)) != len(self.charset):
            raise ValueError(f"`charset` has repeated characters: {self.charset!r}")
        if not self.caption_charset or any(c.isspace() for c in self.caption_charset):
            # CLIP's tokenizer splits captions at whitespace; the official captions never hold any.
            raise ValueError(
                f"`caption_charset` must be non-empty and without whitespace, got {self.caption_charset!r}"
            )
        if self.projection_dim % self.decoder_num_heads:
            raise ValueError(
                f"`projection_dim` ({self.projection_dim}) must be divisible by `decoder_num_heads` "
                f"({self.decoder_num_heads})"
            )
        if self.text_context_length > self.text_config.max_position_embeddings:
            raise ValueError(
                f"`text_context_length` ({self.text_context_length}) exceeds the text encoder's "
                f"{self.text_config.max_position_embeddings} positions"
            )
        if self.text_context_length < 2:
            raise ValueError("`text_context_length` must leave room for the [SOT] and [EOT] tokens (>= 2)")

    # Special token ids, laid out as parseq's Tokenizer: [E] first, then the charset, then [B] and [P].
    @property
    def eos_id(self) -> int:
        return 0

    @property
    def bos_id(self) -> int:
        return len(self.charset) + 1

    @property
    def pad_id(self) -> int:
        return len(self.charset) + 2

    # The names transformers reads them under: Trainer aligns these with the tokenizer's special ids, which
    # are the same, so training leaves the config as it is.
    eos_token_id = eos_id
    bos_token_id = bos_id
    pad_token_id = pad_id

    def get_text_config(self, decoder: bool | None = None, encoder: bool | None = None) -> Clip4StrConfig:
        """This config: the text CLIP4STR reads and writes is the decoders' character sequence (the tokenizer's
        ids above). `text_config` is the CLIP text tower, which encodes captions with CLIP's own BPE ids and
        pools at its end-of-text id; transformers' tokenizer alignment must not rewrite those."""
        return self

    @property
    def num_decoder_tokens(self) -> int:
        """Size of the decoders' input embedding: [E] + charset + [B] + [P]."""
        return len(self.charset) + 3

    @property
    def num_classes(self) -> int:
        """Outputs of the decoders' heads: [E] + charset ([B] and [P] are never predicted)."""
        return len(self.charset) + 1

    @classmethod
    def from_preset(cls, name: str, **kwargs: Any) -> Clip4StrConfig:
        """Config with the official dimensions of `vit-b16`, `vit-b32`, `vit-l14` or `vit-h14` (or the unofficial `small` / `tiny`).

        Keyword arguments override top-level fields (e.g. `charset`, `refine_iters`).
        """
        if name not in PRESETS:
            raise ValueError(f"Unknown CLIP4STR preset {name!r}; expected one of {sorted(PRESETS)}")
        preset = PRESETS[name]
        vision = preset["vision"]
        text = preset["text"]
        vision_config = CLIPVisionConfig(
            hidden_size=vision["hidden_size"],
            intermediate_size=4 * vision["hidden_size"],
            num_hidden_layers=vision["num_hidden_layers"],
            num_attention_heads=vision["num_attention_heads"],
            patch_size=vision["patch_size"],
            image_size=preset.get("image_size", 224),
            projection_dim=preset["projection_dim"],
            hidden_act="quick_gelu",
            layer_norm_eps=1e-5,
        )
        text_config = CLIPTextConfig(
            hidden_size=text["hidden_size"],
            intermediate_size=4 * text["hidden_size"],
            num_hidden_layers=text["num_hidden_layers"],
            num_attention_heads=text["num_attention_heads"],
            projection_dim=preset["projection_dim"],
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            layer_norm_eps=1e-5,
        )
        kwargs.setdefault("decoder_num_heads", preset.get("decoder_num_heads", 8))
        kwargs.setdefault("vision_stem_channels", preset.get("vision_stem_channels"))
        return cls(
            vision_config=vision_config,
            text_config=text_config,
            projection_dim=preset["projection_dim"],
            **kwargs,
        )

    @classmethod
    def from_clip_config(cls, clip_config: Any, **kwargs: Any) -> Clip4StrConfig:
        """Config whose towers and projection have the sizes of the transformers `CLIPConfig` `clip_config`
        (what `Clip4StrForSceneTextRecognition.from_clip` starts from). Keyword arguments override top-level
        fields."""
        return cls(
            vision_config=clip_config.vision_config.to_dict(),
            text_config=clip_config.text_config.to_dict(),
            projection_dim=clip_config.projection_dim,
            **kwargs,
        )


Clip4StrConfig.register_for_auto_class()

__all__ = ["CHARSET_36", "CHARSET_94", "PRESETS", "Clip4StrConfig", "as_pair"]
