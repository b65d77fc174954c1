"""Configuration of TCM ("Turning a CLIP Model into a Scene Text Detector", Yu et al., CVPR 2023) with one of the
paper's three detection heads: DBNet (the default), PAN or FCENet."""

from __future__ import annotations

from typing import Any, ClassVar

from transformers import CLIPTextConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

# The class prompt of every released TCM configuration, and its OpenAI CLIP BPE ids at the official
# tokenisation length 14 ([SOT] + 12 BPE tokens + [EOT], zero padded if shorter).
DEFAULT_CLASS_PROMPT = "the pixels of many arbitrary-shape text instances."
DEFAULT_CLASS_PROMPT_IDS = (49406, 518, 34099, 539, 1346, 22702, 856, 268, 6448, 4160, 1264, 3515, 269, 49407)

# The OpenAI CLIP RN50 text tower (width 512, 12 layers, 8 heads, projection 1024). Its position table is
# cut to the prompt length: 14 class-prompt positions + 4 learnable contexts.
_RN50_TEXT = {
    "hidden_size": 512,
    "intermediate_size": 2048,
    "num_hidden_layers": 12,
    "num_attention_heads": 8,
    "projection_dim": 1024,
    "max_position_embeddings": 18,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}

# The detection heads TCM is reported with, each with the neck and loss of its official configuration.
HEAD_TYPES = ("dbnet", "pan", "fcenet")

# Dimensions of the OpenAI CLIP ResNets (open_clip's RN50/RN101/RN50x4 model configs). TCM hard-codes 32
# attention-pool heads whatever the width, and a 640-pixel position grid (20 x 20 tokens).
TCM_PRESETS: dict[str, dict[str, Any]] = {
    "rn50": {},
    "rn101": {
        "layers": (3, 4, 23, 3),
        "embed_dim": 512,
        "text_config": {**_RN50_TEXT, "projection_dim": 512},
    },
    "rn50x4": {
        "layers": (4, 6, 10, 6),
        "width": 80,
        "embed_dim": 640,
        "text_config": {
            **_RN50_TEXT,
            "hidden_size": 640,
            "intermediate_size": 2560,
            "num_attention_heads": 10,
            "projection_dim": 640,
        },
    },
    # The sizes of the official-code parity fixture: small enough for unit tests on CPU.
    "tiny": {
        "layers": (1, 1, 1, 1),
        "width": 8,
        "embed_dim": 64,
        "input_resolution": 64,
        "text_config": {
            **_RN50_TEXT,
            "hidden_size": 16,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "projection_dim": 64,
        },
        "context_decoder_layers": 1,
        "context_decoder_width": 32,
        "context_decoder_heads": 2,
        "visual_prompt_layers": 1,
        "visual_prompt_width": 32,
        "visual_prompt_heads": 2,
        "neck_lateral_channels": 32,
        "neck_out_channels": 8,
        "pan_neck_channels": 8,
        "fce_neck_channels": 16,
    },
}


class TcmConfig(PreTrainedConfig):
    r"""
    Configuration of [`TcmForSceneTextDetection`]. The defaults are the released TCM-DBNet (CLIP RN50) model;
    `head_type="pan"` or `"fcenet"` gives TCM-PANet or TCM-FCENet (the official TCM-FCENet also lays the position
    grid out for 800 pixels: `input_resolution=800`).

    Image encoder (CLIP modified ResNet):
        num_channels (`int`, defaults to 3): channels of `pixel_values`.
        layers (`tuple[int, ...]`, defaults to `(3, 4, 6, 3)`): bottleneck blocks per stage.
        width (`int`, defaults to 64): stem width; stage `i` outputs `width * 4 * 2**i` channels.
        attention_pool_heads (`int`, defaults to 32): heads of the attention pool.
        embed_dim (`int`, defaults to 1024): joint image-text embedding size (attention-pool output and text
            projection).
        input_resolution (`int`, defaults to 640): image size the position grid of the attention pool is laid
            out for (`input_resolution // 32` tokens a side); other sizes resample it bilinearly.

    Text encoder and prompts:
        text_config (`dict` or `CLIPTextConfig`): the CLIP text tower. `max_position_embeddings` must equal
            `len(class_prompt_ids) + num_context_tokens` and `projection_dim` must equal `embed_dim`; when
            omitted it is the RN50 text tower sized that way.
        class_prompt (`str`): the class text, kept for reference; the model reads `class_prompt_ids`.
        class_prompt_ids (`tuple[int, ...]`): CLIP BPE ids of the class text with [SOT] first and [EOT]
            (the largest id) last, zero padded to the official tokenisation length.
        num_context_tokens (`int`, defaults to 4): learnable context tokens inserted after [SOT] (32 in the
            released CTW1500/TotalText configurations).
        freeze_text_encoder (`bool`, defaults to `True`): keep the CLIP text tower fixed, as TCM trains it.

    Visual prompt generator and context decoder (transformer decoders in `context_decoder_width`):
        context_decoder_layers / context_decoder_width / context_decoder_heads / context_decoder_dropout:
            the decoder that refines the text embedding from the image tokens (3 / 256 / 4 / 0.1).
        visual_prompt_layers / visual_prompt_width / visual_prompt_heads / visual_prompt_dropout:
            the decoder that refines the image tokens from the text embedding (3 / 256 / 4 / 0.1).
        text_gamma_init (`float`, defaults to 1e-3): initial per-channel scale of the text refinement.
        visual_gamma_init (`float`, defaults to 1e-3): initial scale of the visual prompt.

    Matching map, neck and head:
        head_type (`str`, defaults to `"dbnet"`): `"dbnet"` (FPNC neck, DB head), `"pan"` (FPEM+FFM neck, PAN
            head: text, kernel and 4 similarity channels at stride 4) or `"fcenet"` (FPN on stages 2-4 with
            output-side extra convolutions, FCE head: text/center classification and Fourier coefficients at
            strides 8, 16 and 32).
        tau (`float`, defaults to 0.07): temperature dividing the matching map into logits for the
            auxiliary loss.
        matching_stage_index (`int`, defaults to 3): backbone stage (0-3) the matching map is concatenated to;
            it is resized bilinearly to that stage's size when the stage is not the last one.
        neck_lateral_channels (`int`, defaults to 256) / neck_out_channels (`int`, defaults to 64): FPNC
            widths; the DB head reads `4 * neck_out_channels` channels at stride 4.
        db_k (`float`, defaults to 50.0): steepness of the differentiable binarization.
        pan_neck_channels (`int`, defaults to 128) / pan_fpem_repeats (`int`, defaults to 2): FPEM+FFM width and
            number of feature pyramid enhancement modules.
        fce_neck_channels (`int`, defaults to 256): FPN width of the FCENet neck.
        fourier_degree (`int`, defaults to 5): highest Fourier frequency k of the FCENet contours (2k + 1
            complex coefficients per pixel).

    Loss (DBNet loss + TCM auxiliary loss):
        db_alpha (`float`, defaults to 5.0): weight of the balanced BCE on the probability map.
        db_beta (`float`, defaults to 10.0): weight of the masked L1 loss on the threshold map.
        negative_ratio (`float`, defaults to 3.0): hard negatives kept per positive in the balanced BCE.
        loss_eps (`float`, defaults to 1e-6): denominator guard of the balanced BCE, dice and L1 losses.
        aux_loss_weight (`float`, defaults to 1.0): weight of the auxiliary loss on the matching map (balanced
            BCE for DBNet and FCENet, dice with hard negatives for PAN, as TCM's identity heads).
        pan_kernel_weight (`float`, defaults to 0.5) / pan_embedding_weight (`float`, defaults to 0.25): PAN loss
            weights of the kernel dice and of the aggregation and discrimination losses.
        pan_aggregation_delta (`float`, defaults to 0.5) / pan_discrimination_delta (`float`, defaults to 3.0):
            PAN's margins pulling text pixels to their kernel and pushing kernels apart.
        fce_num_samples (`int`, defaults to 50): contour points on which FCENet's regression loss compares
            predicted and target contours.
    """

    model_type = "tcm"
    sub_configs_defaults: ClassVar[dict[str, SubConfigSpec]] = {
        "text_config": SubConfigSpec(config_class=CLIPTextConfig, init_kwargs=_RN50_TEXT)
    }

    num_channels: int = 3
    layers: list[int] | tuple[int, ...] = (3, 4, 6, 3)
    width: int = 64
    attention_pool_heads: int = 32
    embed_dim: int = 1024
    input_resolution: int = 640

    text_config: dict | PreTrainedConfig | None = None
    class_prompt: str = DEFAULT_CLASS_PROMPT
    class_prompt_ids: list[int] | tuple[int, ...] = DEFAULT_CLASS_PROMPT_IDS
    num_context_tokens: int = 4
    freeze_text_encoder: bool = True

    context_decoder_layers: int = 3
    context_decoder_width: int = 256
    context_decoder_heads: int = 4
    context_decoder_dropout: float = 0.1
    visual_prompt_layers: int = 3
    visual_prompt_width: int = 256
    visual_prompt_heads: int = 4
    visual_prompt_dropout: float = 0.1
    text_gamma_init: float = 1e-3
    visual_gamma_init: float = 1e-3

    head_type: str = "dbnet"
    tau: float = 0.07
    matching_stage_index: int = 3
    neck_lateral_channels: int = 256
    neck_out_channels: int = 64
    db_k: float = 50.0
    pan_neck_channels: int = 128
    pan_fpem_repeats: int = 2
    fce_neck_channels: int = 256
    fourier_degree: int = 5

    db_alpha: float = 5.0
    db_beta: float = 10.0
    negative_ratio: float = 3.0
    loss_eps: float = 1e-6
    aux_loss_weight: float = 1.0
    pan_kernel_weight: float = 0.5
    pan_embedding_weight: float = 0.25
    pan_aggregation_delta: float = 0.5
    pan_discrimination_delta: float = 3.0
    fce_num_samples: int = 50

    def __post_init__(self, **kwargs):
        if self.text_config is None:
            # Size the default text tower to this prompt, so changing the prompt or the number of contexts
            # needs no second edit.
            self.text_config = {
                **_RN50_TEXT,
                "max_position_embeddings": len(self.class_prompt_ids) + self.num_context_tokens,
                "projection_dim": self.embed_dim,
            }
        # Tuples become lists so the config JSON round-trips to an equal config.
        self.layers = list(self.layers)
        self.class_prompt_ids = list(self.class_prompt_ids)
        self._check_sizes()
        super().__post_init__(**kwargs)

    @property
    def stage_channels(self) -> list[int]:
        """Output channels of the four backbone stages."""
        return [self.width * 4 * 2**i for i in range(4)]

    @property
    def eot_index(self) -> int:
        """Position of the [EOT] token in the text encoder's input (after the learnable contexts)."""
        return self.class_prompt_ids.index(max(self.class_prompt_ids)) + self.num_context_tokens

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> TcmConfig:
        """Build a configuration from a named preset (`rn50`, `rn101`, `rn50x4`, `tiny`) plus overrides."""
        if name not in TCM_PRESETS:
            raise ValueError(f"Unknown TCM preset {name!r}; expected one of {sorted(TCM_PRESETS)}.")
        return cls(**{**TCM_PRESETS[name], **overrides})

    def _check_sizes(self) -> None:
        """Raise a `ValueError` naming the field when the sizes do not fit together."""
        if len(self.layers) != 4 or min(self.layers) < 1:
            raise ValueError(f"`layers` must give 4 positive block counts, got {self.layers}.")
        if self.width % 2:
            raise ValueError(f"`width` must be even (the stem starts at width // 2), got {self.width}.")
        if self.width * 32 % self.attention_pool_heads:
            raise ValueError(
                f"The attention pool width {self.width * 32} is not divisible by "
                f"attention_pool_heads={self.attention_pool_heads}."
            )
        if self.input_resolution < 32 or self.input_resolution % 32:
            raise ValueError(
                f"`input_resolution` must be a positive multiple of 32, got {self.input_resolution}."
            )
        ids = self.class_prompt_ids
        if len(ids) < 2 or min(ids) < 0 or ids.index(max(ids)) == 0:
            raise ValueError(
                f"`class_prompt_ids` must be [SOT] + BPE ids + [EOT] (the largest id), got {ids}."
            )
        if self.num_context_tokens < 0:
            raise ValueError(f"`num_context_tokens` must be >= 0, got {self.num_context_tokens}.")
        text = self.text_config
        text_length = (
            text["max_position_embeddings"] if isinstance(text, dict) else text.max_position_embeddings
        )
        if text_length != len(ids) + self.num_context_tokens:
            raise ValueError(
                f"text_config.max_position_embeddings={text_length} must equal len(class_prompt_ids) + "
                f"num_context_tokens = {len(ids)} + {self.num_context_tokens}."
            )
        projection = text["projection_dim"] if isinstance(text, dict) else text.projection_dim
        if projection != self.embed_dim:
            raise ValueError(
                f"text_config.projection_dim={projection} must equal embed_dim={self.embed_dim}."
            )
        for name in ("context_decoder", "visual_prompt"):
            width, heads = getattr(self, f"{name}_width"), getattr(self, f"{name}_heads")
            if width % heads:
                raise ValueError(f"{name}_width={width} is not divisible by {name}_heads={heads}.")
        if self.head_type not in HEAD_TYPES:
            raise ValueError(f"`head_type` must be one of {HEAD_TYPES}, got {self.head_type!r}.")
        # FCENet's neck reads stages 2-4 only, so the matching map cannot join stage 1 there.
        stages = (1, 2, 3) if self.head_type == "fcenet" else (0, 1, 2, 3)
        if self.matching_stage_index not in stages:
            raise ValueError(
                f"`matching_stage_index` must be one of {stages} with head_type={self.head_type!r}, "
                f"got {self.matching_stage_index}."
            )
        if self.fourier_degree < 1 or self.fce_num_samples < 2 * self.fourier_degree + 1:
            raise ValueError(
                f"`fourier_degree` must be >= 1 and `fce_num_samples` >= 2 * fourier_degree + 1, got "
                f"{self.fourier_degree} and {self.fce_num_samples}."
            )
        if self.tau <= 0:
            raise ValueError(f"`tau` must be positive, got {self.tau}.")


TcmConfig.register_for_auto_class()
