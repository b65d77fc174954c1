"""TCM: a CLIP ResNet turned into a scene-text detector (Yu et al., "Turning a CLIP Model into a Scene Text
Detector", CVPR 2023), with the DBNet head and loss (Liao et al., AAAI 2020) or, by `config.head_type`, the PAN
(`heads_pan_tcm`) or FCENet (`heads_fcenet_tcm`) head and loss.

Data flow of `TcmForSceneTextDetection.forward`:
    pixels -> CLIP ResNet stages 1-4 -> dense attention pool (global token + per-pixel embeddings)
    global token -> language prompt generator -> vector added to the text-encoder input
    [SOT, learnable contexts, class prompt, EOT] -> CLIP text tower -> text embedding
    visual prompt generator: pixel embeddings += visual_gamma * decoder(pixels <- text)
    context decoder: text embedding += text_gamma * decoder(text <- [global, pixels])
    matching map = cosine(pixel embeddings, text embedding), concatenated to one backbone stage
    FPNC neck -> DB head -> probability, threshold and binary maps at the input resolution
    (PAN: FPEM+FFM neck -> text, kernel and similarity maps at stride 4;
     FCENet: FPN on stages 2-4 -> classification and Fourier maps at strides 8, 16, 32).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPTextModelWithProjection, PreTrainedModel
from transformers import initialization as init
from transformers.masking_utils import create_causal_mask
from transformers.utils import ModelOutput

from .configuration_tcm import TcmConfig
from .heads_fcenet_tcm import FCE_LABEL_KEYS, TcmFceHead, TcmFcenetFpn, fce_losses
from .heads_pan_tcm import PAN_LABEL_KEYS, TcmFpemFfm, TcmPanHead, pan_losses, pan_matching_loss
from .pipeline_files_tcm import SavesPipelineFilesMixin

try:
    from timm.layers import AttentionPool2d
    from timm.models.byobnet import ByoBlockCfg, ByobNet, ByoModelCfg
except ImportError:  # only building the image encoder needs timm; it raises a clear error there
    AttentionPool2d = ByobNet = None

# Keys of the DB targets that `forward(labels=...)` reads; the TCM image processor's `prepare_targets`
# produces exactly these, each a float tensor (batch, height, width) at the input resolution.
LABEL_KEYS = ("shrink_map", "shrink_mask", "threshold_map", "threshold_mask")
# The label keys of each head (the processor's `head_type` selects the same ones).
HEAD_LABEL_KEYS = {"dbnet": LABEL_KEYS, "pan": PAN_LABEL_KEYS, "fcenet": FCE_LABEL_KEYS}


@dataclass
class TcmOutput(ModelOutput):
    """Output of [`TcmForSceneTextDetection`].

    Which maps are set depends on `config.head_type` (the others are None).

    Args:
        loss: total training loss (head loss + auxiliary matching loss), when `labels` are given.
        prob_map: DBNet: text probability map, (batch, 1, height, width) at the input resolution.
        thresh_map: DBNet: adaptive threshold map, same shape.
        binary_map: DBNet: differentiable binarization `sigmoid(k * (prob - thresh))`, same shape.
        matching_map: cosine similarity of pixel and text embeddings, (batch, 1, height / 32, width / 32).
        text_embeddings: the refined text embedding per image, (batch, 1, embed_dim).
        probability_loss: DBNet: `db_alpha` x balanced BCE of `prob_map`.
        binary_loss: DBNet: dice loss of `binary_map`.
        threshold_loss: DBNet: `db_beta` x masked L1 loss of `thresh_map`.
        matching_loss: `aux_loss_weight` x the auxiliary loss of `matching_map / tau`.
        pan_maps: PAN: (batch, 6, height / 4, width / 4): text-region logits, kernel logits, 4 similarity channels.
        fce_classification: FCENet: per level (strides 8, 16, 32), (batch, 4, h, w): text-region and
            center-region logits (two classes each).
        fce_regression: FCENet: per level, (batch, 2 (2k + 1), h, w): real then imaginary parts of the Fourier
            coefficients c_{-k}..c_k of the contour around each pixel, in level pixels relative to it.
        text_loss: PAN: dice of the text region; FCENet: cross-entropy with hard negatives of the text region.
        kernel_loss: PAN: `pan_kernel_weight` x dice of the kernel.
        aggregation_loss / discrimination_loss: PAN: `pan_embedding_weight` x the similarity-vector losses.
        center_loss: FCENet: cross-entropy of the text center region.
        regression_x_loss / regression_y_loss: FCENet: smooth L1 between contours sampled from the predicted and
            target coefficients.
    """

    loss: torch.FloatTensor | None = None
    prob_map: torch.FloatTensor | None = None
    thresh_map: torch.FloatTensor | None = None
    binary_map: torch.FloatTensor | None = None
    matching_map: torch.FloatTensor | None = None
    text_embeddings: torch.FloatTensor | None = None
    probability_loss: torch.FloatTensor | None = None
    binary_loss: torch.FloatTensor | None = None
    threshold_loss: torch.FloatTensor | None = None
    matching_loss: torch.FloatTensor | None = None
    pan_maps: torch.FloatTensor | None = None
    fce_classification: tuple[torch.FloatTensor, ...] | None = None
    fce_regression: tuple[torch.FloatTensor, ...] | None = None
    text_loss: torch.FloatTensor | None = None
    kernel_loss: torch.FloatTensor | None = None
    aggregation_loss: torch.FloatTensor | None = None
    discrimination_loss: torch.FloatTensor | None = None
    center_loss: torch.FloatTensor | None = None
    regression_x_loss: torch.FloatTensor | None = None
    regression_y_loss: torch.FloatTensor | None = None


@dataclass
class TcmImageEncoderOutput(ModelOutput):
    """Output of [`TcmImageEncoder`].

    Args:
        stage_features: the four ResNet stage outputs (strides 4, 8, 16, 32).
        global_embedding: attention-pool output of the mean token, (batch, embed_dim).
        pixel_embeddings: attention-pool output of every stride-32 pixel, (batch, embed_dim, h, w).
    """

    stage_features: tuple[torch.FloatTensor, ...] | None = None
    global_embedding: torch.FloatTensor | None = None
    pixel_embeddings: torch.FloatTensor | None = None


def _require_timm() -> None:
    if ByobNet is None:
        raise ImportError(
            "TcmForSceneTextDetection builds its CLIP ResNet with timm, which is not installed: pip install timm"
        )


def clip_resnet_model_config(config: TcmConfig) -> ByoModelCfg:
    """timm's `resnet50_clip` architecture at the sizes of `config`: 3-conv stem, average-pool anti-aliasing
    after the strided 3x3 convolution and average-pool downsampling shortcuts, as in OpenAI's
    ModifiedResNet. Only the trunk is used; the attention pool is held separately."""
    _require_timm()
    stage_channels = config.stage_channels
    return ByoModelCfg(
        blocks=tuple(
            ByoBlockCfg(type="bottle", d=depth, c=stage_channels[i], s=1 if i == 0 else 2, br=0.25)
            for i, depth in enumerate(config.layers)
        ),
        stem_chs=(config.width // 2, config.width // 2, config.width),
        stem_type="",
        stem_pool="avg2",
        downsample="avg",
        aa_layer="avg",
        head_type="classifier",
    )


class TcmImageEncoder(nn.Module):
    """The CLIP modified ResNet: a timm trunk plus an attention pool run densely, so one attention pass gives
    both the global (mean-token) embedding and an embedding for every stride-32 pixel."""

    def __init__(self, config: TcmConfig):
        super().__init__()
        _require_timm()
        # Set by `activation_checkpointing_enable` (`gradient_checkpointing_enable` before transformers 5.24):
        # the four ResNet stages hold most of the activation memory at detection scale, so each is recomputed
        # in the backward pass instead of kept.
        self.gradient_checkpointing = False
        # num_classes=0 with an empty pool leaves timm's classifier without parameters; it is never called.
        self.trunk = ByobNet(
            clip_resnet_model_config(config), num_classes=0, global_pool="", in_chans=config.num_channels
        )
        grid = config.input_resolution // 32
        self.attention_pool = AttentionPool2d(
            config.stage_channels[3],
            feat_size=grid,
            out_features=config.embed_dim,
            num_heads=config.attention_pool_heads,
            qkv_separate=True,
        )

    def position_embedding(self, height: int, width: int) -> torch.Tensor:
        """The (1 + height * width, channels) position table for a height x width token grid.

        TCM resamples the spatial part of the stored grid bilinearly (align_corners=False) at every call,
        where timm would use bicubic with antialiasing; converted checkpoints depend on the bilinear form."""
        table = self.attention_pool.pos_embed
        grid_h, grid_w = self.attention_pool.feat_size
        spatial = table[1:].reshape(1, grid_h, grid_w, -1).permute(0, 3, 1, 2)
        spatial = F.interpolate(spatial, size=(height, width), mode="bilinear", align_corners=False)
        return torch.cat([table[:1], spatial.flatten(2)[0].transpose(0, 1)], dim=0)

    def forward(self, pixel_values: torch.Tensor) -> TcmImageEncoderOutput:
        hidden = self.trunk.stem(pixel_values)
        stage_features = []
        for stage in self.trunk.stages:
            if self.gradient_checkpointing and self.training:
                # The recomputation runs the batch norms again: in training mode it can move their running
                # statistics a second time (gradients and the loss are unchanged).
                hidden = self._gradient_checkpointing_func(stage.__call__, hidden)
            else:
                hidden = stage(hidden)
            stage_features.append(hidden)

        pool = self.attention_pool
        batch, channels, height, width = hidden.shape
        tokens = hidden.flatten(2).transpose(1, 2)
        tokens = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)
        tokens = tokens + self.position_embedding(height, width).to(tokens.dtype)

        def heads(projection: nn.Linear) -> torch.Tensor:
            return projection(tokens).reshape(batch, 1 + height * width, pool.num_heads, -1).transpose(1, 2)

        # Every token (not only the mean token) queries all tokens: the dense form of CLIP's pool.
        attended = F.scaled_dot_product_attention(heads(pool.q), heads(pool.k), heads(pool.v))
        embeddings = pool.proj(attended.transpose(1, 2).reshape(batch, 1 + height * width, channels))
        pixel_embeddings = embeddings[:, 1:].transpose(1, 2).reshape(batch, -1, height, width)
        return TcmImageEncoderOutput(
            stage_features=tuple(stage_features),
            global_embedding=embeddings[:, 0],
            pixel_embeddings=pixel_embeddings,
        )


class TcmLanguagePromptGenerator(nn.Module):
    """Maps the global image embedding to a vector added to every text-encoder input token."""

    def __init__(self, embed_dim: int, text_width: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.LayerNorm(embed_dim),
            nn.Linear(embed_dim, embed_dim),
            nn.ReLU(),
            nn.LayerNorm(embed_dim),
            nn.Linear(embed_dim, text_width),
        )

    def forward(self, global_embedding: torch.Tensor) -> torch.Tensor:
        return self.layers(global_embedding)


class TcmAttention(nn.Module):
    """Multi-head attention with bias-free query/key/value projections, as in TCM's decoders."""

    def __init__(self, width: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(width, width, bias=False)
        self.k_proj = nn.Linear(width, width, bias=False)
        self.v_proj = nn.Linear(width, width, bias=False)
        self.out_proj = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        batch, length, width = queries.shape

        def heads(projection: nn.Linear, tokens: torch.Tensor) -> torch.Tensor:
            return projection(tokens).reshape(batch, tokens.shape[1], self.num_heads, -1).transpose(1, 2)

        attended = F.scaled_dot_product_attention(
            heads(self.q_proj, queries), heads(self.k_proj, memory), heads(self.v_proj, memory)
        )
        return self.dropout(self.out_proj(attended.transpose(1, 2).reshape(batch, length, width)))


class TcmDecoderLayer(nn.Module):
    """Pre-norm transformer decoder layer: self-attention, cross-attention to the memory, GELU MLP."""

    def __init__(self, width: int, num_heads: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.self_attn = TcmAttention(width, num_heads, dropout)
        self.norm2 = nn.LayerNorm(width)
        self.cross_attn = TcmAttention(width, num_heads, dropout)
        self.norm3 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, width * 4), nn.GELU(), nn.Dropout(dropout), nn.Linear(width * 4, width)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        normed = self.norm1(queries)
        queries = queries + self.self_attn(normed, normed)
        queries = queries + self.cross_attn(self.norm2(queries), memory)
        return queries + self.dropout(self.mlp(self.norm3(queries)))


class TcmContextDecoder(nn.Module):
    """Refines query embeddings from memory embeddings in a narrower width and returns the update (in
    `embed_dim`). TCM uses it twice: as the visual prompt generator (pixels <- text) and as the context
    decoder (text <- [global, pixels])."""

    def __init__(self, embed_dim: int, width: int, num_heads: int, num_layers: int, dropout: float):
        super().__init__()
        self.memory_proj = nn.Sequential(
            nn.LayerNorm(embed_dim), nn.Linear(embed_dim, width), nn.LayerNorm(width)
        )
        self.query_proj = nn.Sequential(nn.LayerNorm(embed_dim), nn.Linear(embed_dim, width))
        self.layers = nn.ModuleList(TcmDecoderLayer(width, num_heads, dropout) for _ in range(num_layers))
        self.out_proj = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, embed_dim))

    def forward(self, queries: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        memory = self.memory_proj(memory)
        hidden = self.query_proj(queries)
        for layer in self.layers:
            hidden = layer(hidden, memory)
        return self.out_proj(hidden)


class TcmFpnc(nn.Module):
    """DBNet's FPNC neck: 1x1 laterals, top-down nearest-upsample-and-add, 3x3 smoothing per level, every level
    upsampled (nearest) to stride 4 and concatenated."""

    def __init__(self, in_channels: list[int], lateral_channels: int, out_channels: int):
        super().__init__()
        self.lateral_convs = nn.ModuleList(nn.Conv2d(c, lateral_channels, 1, bias=False) for c in in_channels)
        self.smooth_convs = nn.ModuleList(
            nn.Conv2d(lateral_channels, out_channels, 3, padding=1, bias=False) for _ in in_channels
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        laterals = [conv(feature) for conv, feature in zip(self.lateral_convs, features, strict=True)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=laterals[i - 1].shape[-2:])
        size = laterals[0].shape[-2:]
        smoothed = [
            F.interpolate(conv(lateral), size=size)
            for conv, lateral in zip(self.smooth_convs, laterals, strict=True)
        ]
        return torch.cat(smoothed, dim=1)


class TcmDbBranch(nn.Sequential):
    """One DB head branch: 3x3 conv, then two stride-2 transposed convs back to the input resolution, ending in
    a sigmoid (mmocr's `Sequential` layout, which the checkpoint keys follow)."""

    def __init__(self, in_channels: int):
        hidden = in_channels // 4
        super().__init__(
            nn.Conv2d(in_channels, hidden, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(hidden, hidden, 2, 2),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(hidden, 1, 2, 2),
            nn.Sigmoid(),
        )


class TcmDbHead(nn.Module):
    """DBNet head: probability and threshold branches and their differentiable binarization."""

    def __init__(self, in_channels: int, k: float):
        super().__init__()
        self.k = k
        self.binarize = TcmDbBranch(in_channels)
        self.threshold = TcmDbBranch(in_channels)

    def forward(
        self, features: torch.Tensor, output_threshold_maps: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        prob_map = self.binarize(features)
        if not output_threshold_maps:
            return prob_map, None, None
        thresh_map = self.threshold(features)
        return prob_map, thresh_map, torch.sigmoid(self.k * (prob_map - thresh_map))


def balanced_bce_loss(
    pred: torch.Tensor,
    gt: torch.Tensor,
    mask: torch.Tensor,
    negative_ratio: float = 3.0,
    eps: float = 1e-6,
    from_logits: bool = False,
) -> torch.Tensor:
    """Binary cross-entropy over all positive pixels and the hardest `negative_ratio` x as many negative
    pixels of the whole batch (DBNet's online hard example mining), averaged over the kept pixels."""
    positive = gt * mask
    negative = (1 - gt) * mask
    positive_count = int(positive.sum())
    negative_count = min(int(negative.sum()), int(positive_count * negative_ratio))
    bce = F.binary_cross_entropy_with_logits if from_logits else F.binary_cross_entropy
    loss = bce(pred, gt, reduction="none")
    hardest_negatives = torch.topk((loss * negative).flatten(), negative_count).values
    return ((loss * positive).sum() + hardest_negatives.sum()) / (positive_count + negative_count + eps)


def dice_loss(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """1 - Dice coefficient of `pred` and `gt` inside `mask`, over the whole batch at once (as mmocr)."""
    pred, gt = pred * mask, gt * mask
    return 1 - 2 * (pred * gt).sum() / (pred.sum() + gt.sum() + eps)


def masked_l1_loss(
    pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """Mean absolute error inside `mask`."""
    return ((pred - gt).abs() * mask).sum() / (mask.sum() + eps)


def _label_shape(key: str, batch: int, height: int, width: int, fourier_degree: int) -> tuple[int, ...]:
    """The shape `forward` expects of `labels[key]`: the input's (batch, height, width), or for FCENet's
    per-level maps (batch, channels, height / stride, width / stride)."""
    if key.startswith("fce_maps_"):
        stride = int(key[len("fce_maps_") :])
        return (batch, 3 + 2 * (2 * fourier_degree + 1), height // stride, width // stride)
    if key == "matching_region":
        return (batch, 2, height // 32, width // 32)
    return (batch, height, width)


def _check_labels(
    labels: Mapping[str, torch.Tensor],
    batch: int,
    height: int,
    width: int,
    head_type: str = "dbnet",
    fourier_degree: int = 5,
) -> None:
    keys = HEAD_LABEL_KEYS[head_type]
    if not isinstance(labels, Mapping):
        raise TypeError(f"`labels` must be a mapping with keys {keys}, got {type(labels).__name__}.")
    missing = [key for key in keys if key not in labels]
    if missing:
        raise ValueError(
            f"`labels` is missing {missing}; expected the {head_type} targets {keys} "
            f'(TcmImageProcessor(head_type="{head_type}").prepare_targets produces them).'
        )
    for key in keys:
        value = labels[key]
        expected = _label_shape(key, batch, height, width, fourier_degree)
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != expected:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(
                f"labels[{key!r}] must be a tensor of shape {expected} matching pixel_values, got {shape}."
            )


# OpenAI CLIP ModifiedResNet -> timm byobnet names (the same mapping as timm's `_convert_openai_clip`), with
# the attention pool held beside the trunk. TCM checkpoints use the OpenAI names under `backbone.`.
_BOTTLENECK_CONVS = {"1": "conv1_1x1", "2": "conv2_kxk", "3": "conv3_1x1"}
_OPENAI_VISUAL_PATTERNS = (
    (re.compile(r"conv(\d)\.(weight)$"), lambda m: f"trunk.stem.conv{m[1]}.conv.{m[2]}"),
    (re.compile(r"bn(\d)\.(\w+)$"), lambda m: f"trunk.stem.conv{m[1]}.bn.{m[2]}"),
    (
        re.compile(r"layer(\d)\.(\d+)\.downsample\.([01])\.(\w+)$"),
        lambda m: (
            f"trunk.stages.{int(m[1]) - 1}.{m[2]}.shortcut.conv.{'conv' if m[3] == '0' else 'bn'}.{m[4]}"
        ),
    ),
    (
        re.compile(r"layer(\d)\.(\d+)\.(conv|bn)([123])\.(\w+)$"),
        lambda m: f"trunk.stages.{int(m[1]) - 1}.{m[2]}.{_BOTTLENECK_CONVS[m[4]]}.{m[3]}.{m[5]}",
    ),
    (re.compile(r"attnpool\.positional_embedding$"), lambda m: "attention_pool.pos_embed"),
    (re.compile(r"attnpool\.([qkv])_proj\.(\w+)$"), lambda m: f"attention_pool.{m[1]}.{m[2]}"),
    (re.compile(r"attnpool\.c_proj\.(\w+)$"), lambda m: f"attention_pool.proj.{m[1]}"),
)
# OpenAI CLIP text transformer -> transformers' CLIPTextModelWithProjection names.
_OPENAI_TEXT_PATTERNS = (
    (re.compile(r"token_embedding\.weight$"), lambda m: "text_model.embeddings.token_embedding.weight"),
    (re.compile(r"ln_final\.(\w+)$"), lambda m: f"text_model.final_layer_norm.{m[1]}"),
    (
        re.compile(r"transformer\.resblocks\.(\d+)\.attn\.out_proj\.(\w+)$"),
        lambda m: f"text_model.encoder.layers.{m[1]}.self_attn.out_proj.{m[2]}",
    ),
    (
        re.compile(r"transformer\.resblocks\.(\d+)\.ln_([12])\.(\w+)$"),
        lambda m: f"text_model.encoder.layers.{m[1]}.layer_norm{m[2]}.{m[3]}",
    ),
    (
        re.compile(r"transformer\.resblocks\.(\d+)\.mlp\.c_(fc|proj)\.(\w+)$"),
        lambda m: f"text_model.encoder.layers.{m[1]}.mlp.{'fc1' if m[2] == 'fc' else 'fc2'}.{m[3]}",
    ),
)
_OPENAI_FUSED_QKV = re.compile(r"transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)$")


def _rename(key: str, patterns: tuple, source: str) -> str:
    for pattern, rename in patterns:
        match = pattern.fullmatch(key)
        if match:
            return rename(match)
    raise ValueError(f"{source}: unexpected parameter {key!r}.")


def resize_position_embedding(table: torch.Tensor, grid: int) -> torch.Tensor:
    """Resample a (1 + n * n, channels) attention-pool position table to a grid x grid spatial part
    (bilinear, align_corners=False: TCM's conversion of CLIP's 7 x 7 table to 20 x 20)."""
    old_grid = math.isqrt(table.shape[0] - 1)
    if old_grid * old_grid != table.shape[0] - 1:
        raise ValueError(f"Position table of {table.shape[0]} rows is not 1 + a square grid.")
    if old_grid == grid:
        return table
    spatial = table[1:].reshape(1, old_grid, old_grid, -1).permute(0, 3, 1, 2).float()
    spatial = F.interpolate(spatial, size=(grid, grid), mode="bilinear", align_corners=False)
    return torch.cat([table[:1], spatial.flatten(2)[0].transpose(0, 1).to(table.dtype)], dim=0)


def convert_openai_visual_state_dict(
    state_dict: Mapping[str, torch.Tensor], grid: int, source: str = "CLIP ResNet"
) -> dict[str, torch.Tensor]:
    """OpenAI ModifiedResNet parameters (without the `visual.` prefix) as `TcmImageEncoder` parameters, the
    position table resampled to `grid` x `grid`."""
    converted = {_rename(key, _OPENAI_VISUAL_PATTERNS, source): value for key, value in state_dict.items()}
    if "attention_pool.pos_embed" in converted:
        converted["attention_pool.pos_embed"] = resize_position_embedding(
            converted["attention_pool.pos_embed"], grid
        )
    return converted


def convert_openai_text_state_dict(
    state_dict: Mapping[str, torch.Tensor], context_length: int, source: str = "CLIP text tower"
) -> dict[str, torch.Tensor]:
    """OpenAI CLIP text-tower parameters as `CLIPTextModelWithProjection` parameters: fused q/k/v split,
    `text_projection` transposed into a Linear weight, the position table cut to its first `context_length`
    rows (TCM's prompt is shorter than CLIP's 77 tokens)."""
    converted = {}
    for key, value in state_dict.items():
        fused = _OPENAI_FUSED_QKV.fullmatch(key)
        if fused:
            layer, kind = fused.groups()
            for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0), strict=True):
                converted[f"text_model.encoder.layers.{layer}.self_attn.{name}.{kind}"] = part
        elif key == "positional_embedding":
            if value.shape[0] < context_length:
                raise ValueError(
                    f"{source}: positional_embedding has {value.shape[0]} rows, the prompt needs {context_length}."
                )
            converted["text_model.embeddings.position_embedding.weight"] = value[:context_length]
        elif key == "text_projection":
            converted["text_projection.weight"] = value.t()
        else:
            converted[_rename(key, _OPENAI_TEXT_PATTERNS, source)] = value
    return converted


def load_state_dict_checked(module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """`module.load_state_dict(strict=True)`, with one `ValueError` that lists every missing, unexpected and
    mis-shaped parameter and names where the weights came from."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mis_shaped = [
        f"{key}: {tuple(state_dict[key].shape)} (expected {tuple(expected[key].shape)})"
        for key in sorted(set(expected) & set(state_dict))
        if state_dict[key].shape != expected[key].shape
    ]
    problems = [
        f"{label}: {', '.join(items[:20])}{' ...' if len(items) > 20 else ''}"
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mis_shaped))
        if items
    ]
    if problems:
        raise ValueError(f"{source} does not fit {type(module).__name__}; " + "; ".join(problems))
    module.load_state_dict(state_dict, strict=True)


class TcmPreTrainedModel(SavesPipelineFilesMixin, PreTrainedModel):
    """Configuration class, weight initialisation and loading for the TCM models."""

    config_class = TcmConfig
    base_model_prefix = "tcm"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    _supports_sdpa = True
    supports_gradient_checkpointing = True
    _no_split_modules: ClassVar[list[str]] = ["TcmImageEncoder", "TcmContextDecoder"]
    # The pipelines every saved folder declares in `custom_pipelines` and carries the code of (`save_pretrained`
    # of `pipeline_files_tcm.SavesPipelineFilesMixin`): task -> (file, class). The OCR pipeline is the
    # detector's: it loads the recognizer it is given.
    saved_pipelines: ClassVar[dict[str, tuple[str, str]]] = {
        "scene-text-detection": ("pipeline_tcm.py", "SceneTextDetectionPipeline"),
        "ocr": ("pipeline_ocr.py", "OcrPipeline"),
    }

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """TCM's initialisation for training from scratch (children are visited before their parents)."""
        if isinstance(module, (TcmFpemFfm, TcmFcenetFpn)):
            # mmocr's FPEM_FFM and mmdet's FPN: Xavier-uniform convolutions (this overrides the children's).
            for conv in module.modules():
                if isinstance(conv, nn.Conv2d):
                    init.xavier_uniform_(conv.weight)
                    init.zeros_(conv.bias)
        elif isinstance(module, (TcmPanHead, TcmFceHead)):
            # mmocr's PAN and FCE heads: output convolutions drawn from N(0, 0.01).
            for conv in module.children():
                init.normal_(conv.weight, std=0.01)
                init.zeros_(conv.bias)
        elif isinstance(module, TcmForSceneTextDetection):
            # The contexts are drawn like CoOp's (standard normal truncated at +-2); both refinements start
            # as near-identities.
            init.trunc_normal_(module.contexts, std=1.0)
            init.constant_(module.text_gamma, self.config.text_gamma_init)
            init.constant_(module.visual_gamma, self.config.visual_gamma_init)
        elif AttentionPool2d is not None and isinstance(module, AttentionPool2d):
            std = module.in_features**-0.5  # OpenAI CLIP's attention-pool initialisation
            for linear in (module.q, module.k, module.v, module.proj):
                init.normal_(linear.weight, std=std)
                init.zeros_(linear.bias)
            init.normal_(module.pos_embed, std=std)
        elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            init.ones_(module.weight)
            init.constant_(module.bias, 1e-4)  # mmocr's DBNet head initialisation
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
        elif isinstance(module, nn.Linear):
            init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


class TcmForSceneTextDetection(TcmPreTrainedModel):
    """TCM with the head of `config.head_type`: DBNet (per-pixel text probability, threshold and binary maps),
    PAN (text, kernel and similarity maps at stride 4) or FCENet (classification and Fourier maps at strides
    8, 16, 32). `TcmImageProcessor.post_process_text_detection` turns any of them into regions.

    For detection on CPU, `optimize_for_inference()` returns an eval-only copy with the batch norms folded
    into the convolutions and fused oneDNN kernels (same maps within float rounding; for PAN and FCENet the
    backbone only).
    """

    def __init__(self, config: TcmConfig):
        super().__init__(config)
        self.image_encoder = TcmImageEncoder(config)
        text_width = config.text_config.hidden_size
        self.text_encoder = CLIPTextModelWithProjection(config.text_config)
        self._freeze_text_encoder_if_configured()
        self.contexts = nn.Parameter(torch.empty(1, config.num_context_tokens, text_width))
        self.prompt_generator = TcmLanguagePromptGenerator(config.embed_dim, text_width)
        self.visual_prompt_generator = TcmContextDecoder(
            config.embed_dim,
            config.visual_prompt_width,
            config.visual_prompt_heads,
            config.visual_prompt_layers,
            config.visual_prompt_dropout,
        )
        self.context_decoder = TcmContextDecoder(
            config.embed_dim,
            config.context_decoder_width,
            config.context_decoder_heads,
            config.context_decoder_layers,
            config.context_decoder_dropout,
        )
        self.text_gamma = nn.Parameter(torch.empty(config.embed_dim))
        self.visual_gamma = nn.Parameter(torch.empty(()))
        neck_in = list(config.stage_channels)
        neck_in[config.matching_stage_index] += 1  # the matching map is one more channel
        if config.head_type == "pan":
            self.neck = TcmFpemFfm(neck_in, config.pan_neck_channels, config.pan_fpem_repeats)
            self.head = TcmPanHead(4 * config.pan_neck_channels)
        elif config.head_type == "fcenet":
            self.neck = TcmFcenetFpn(neck_in[1:], config.fce_neck_channels)
            self.head = TcmFceHead(config.fce_neck_channels, config.fourier_degree)
        else:
            self.neck = TcmFpnc(neck_in, config.neck_lateral_channels, config.neck_out_channels)
            self.head = TcmDbHead(4 * config.neck_out_channels, config.db_k)
        self.post_init()

    def optimize_for_inference(self, inplace: bool = False) -> TcmForSceneTextDetection:
        """An eval-only detector computing the same maps faster on CPU (see `optimization_tcm`); this model is
        left as it is unless `inplace`."""
        # Imported here so that the module travels with the model (save_pretrained copies the relative
        # imports of this file) without the plain model depending on it.
        from .optimization_tcm import optimize_for_inference

        return optimize_for_inference(self, inplace=inplace)

    def _freeze_text_encoder_if_configured(self) -> None:
        # TCM trains with the text tower's learning rate at 0; gradients still flow through it to the contexts
        # and the language prompt generator.
        if self.config.freeze_text_encoder:
            self.text_encoder.requires_grad_(False)

    @classmethod
    def from_pretrained(cls, *args, **kwargs) -> TcmForSceneTextDetection:
        """`PreTrainedModel.from_pretrained`, keeping the text tower frozen: loading replaces the parameters,
        which resets their `requires_grad`."""
        model = super().from_pretrained(*args, **kwargs)
        model._freeze_text_encoder_if_configured()
        return model

    @classmethod
    def from_clip(
        cls,
        config: TcmConfig | None = None,
        *,
        openai_state_dict: Mapping[str, torch.Tensor] | None = None,
        timm_image_model: nn.Module | None = None,
        text_model: CLIPTextModelWithProjection | None = None,
    ) -> TcmForSceneTextDetection:
        """A new detector whose image and text encoders start from CLIP weights; everything TCM adds starts
        from its initialisation.

        Give either `openai_state_dict` (an OpenAI CLIP ResNet state dict: `visual.*` and the text-tower keys,
        e.g. `torch.jit.load("RN50.pt").state_dict()`), or `timm_image_model` (timm's `resnet50_clip` family,
        with its attention-pool head) together with `text_model` (transformers' CLIP text tower with
        projection). The position tables are resampled or cut to the sizes of `config` (default: RN50)."""
        config = config if config is not None else TcmConfig()
        grid = config.input_resolution // 32
        context_length = config.text_config.max_position_embeddings
        if openai_state_dict is not None and timm_image_model is None and text_model is None:
            visual = {k[len("visual.") :]: v for k, v in openai_state_dict.items() if k.startswith("visual.")}
            text = {
                k: v
                for k, v in openai_state_dict.items()
                if k.startswith(("transformer.", "token_embedding.", "ln_final."))
                or k in ("positional_embedding", "text_projection")
            }
            if not visual:
                raise ValueError("openai_state_dict has no `visual.*` keys; expected an OpenAI CLIP ResNet.")
            image_state = convert_openai_visual_state_dict(visual, grid, "openai_state_dict (visual)")
            text_state = convert_openai_text_state_dict(text, context_length, "openai_state_dict (text)")
        elif openai_state_dict is None and timm_image_model is not None and text_model is not None:
            image_state = {
                (f"attention_pool.{k[len('head.') :]}" if k.startswith("head.") else f"trunk.{k}"): v
                for k, v in timm_image_model.state_dict().items()
            }
            if "attention_pool.pos_embed" not in image_state:
                raise ValueError(
                    "timm_image_model has no attention-pool head (`head.pos_embed`); use *_clip models."
                )
            image_state["attention_pool.pos_embed"] = resize_position_embedding(
                image_state["attention_pool.pos_embed"], grid
            )
            text_state = dict(text_model.state_dict())
            position_key = "text_model.embeddings.position_embedding.weight"
            text_state[position_key] = text_state[position_key][:context_length]
        else:
            raise ValueError("Pass either openai_state_dict, or both timm_image_model and text_model.")
        model = cls(config)
        load_state_dict_checked(model.image_encoder, image_state, "CLIP image weights")
        load_state_dict_checked(model.text_encoder, text_state, "CLIP text weights")
        return model

    def encode_class_prompt(self, prompt_vectors: torch.Tensor) -> torch.Tensor:
        """Text embedding of [SOT, contexts, class prompt, EOT] with each image's language prompt vector added
        to every token: (batch, text_width) -> (batch, 1, embed_dim)."""
        text_model = self.text_encoder.text_model
        ids = torch.tensor(self.config.class_prompt_ids, device=prompt_vectors.device)[None]
        tokens = text_model.embeddings.token_embedding(ids)
        contexts = self.contexts.to(tokens.dtype)
        tokens = torch.cat([tokens[:, :1], contexts, tokens[:, 1:]], dim=1)
        hidden = text_model.embeddings(inputs_embeds=tokens + prompt_vectors[:, None, :].to(tokens.dtype))
        # The cache is passed by position: transformers 5.20 names it `past_key_values`, later versions `cache`.
        causal_mask = create_causal_mask(text_model.config, hidden, None, None)
        hidden = text_model.encoder(inputs_embeds=hidden, attention_mask=causal_mask, is_causal=True)
        hidden = text_model.final_layer_norm(hidden.last_hidden_state)
        return self.text_encoder.text_projection(hidden[:, self.config.eot_index])[:, None]

    def match_text(
        self, global_embedding: torch.Tensor, pixel_embeddings: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """TCM's instance-language matching: returns the refined text embedding (batch, 1, embed_dim) and the
        cosine matching map (batch, 1, h, w) of the prompted pixel embeddings with it."""
        batch, _, height, width = pixel_embeddings.shape
        pixel_tokens = pixel_embeddings.flatten(2).transpose(1, 2)
        text_embeddings = self.encode_class_prompt(self.prompt_generator(global_embedding))

        visual_prompt = self.visual_prompt_generator(pixel_tokens, text_embeddings)
        prompted_pixels = pixel_tokens + self.visual_gamma * visual_prompt
        # The context decoder reads the pixels *before* the visual prompt, with the global token first.
        visual_context = torch.cat([global_embedding[:, None], pixel_tokens], dim=1)
        text_embeddings = text_embeddings + self.text_gamma * self.context_decoder(
            text_embeddings, visual_context
        )

        matching_map = torch.einsum(
            "bnc,bkc->bkn", F.normalize(prompted_pixels, dim=-1), F.normalize(text_embeddings, dim=-1)
        )
        return text_embeddings, matching_map.reshape(batch, -1, height, width)

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: Mapping[str, torch.Tensor] | None = None,
        return_dict: bool | None = None,
        output_threshold_maps: bool = True,
    ) -> TcmOutput | tuple[torch.Tensor, ...]:
        r"""
        pixel_values (`torch.Tensor` of shape `(batch, num_channels, height, width)`):
            Normalised images, height and width multiples of 32 (see `TcmImageProcessor`).
        labels (`Mapping[str, torch.Tensor]`, *optional*):
            The targets of the head, each (batch, height, width) at the input resolution: for DBNet
            `shrink_map`, `shrink_mask`, `threshold_map`, `threshold_mask` (`shrink_map` values > 0 count as
            text); for PAN `text_kernel`, `shrunk_kernel` (instance numbers), `effective_mask`; for FCENet the
            per-level maps of `heads_fcenet_tcm.FCE_LABEL_KEYS`. `TcmImageProcessor(head_type=...)` makes them.
        output_threshold_maps (`bool`, *optional*, defaults to `True`):
            DBNet: compute `thresh_map` and `binary_map`. DB post-processing reads only `prob_map`, so detection
            skips the threshold branch (half of the head's work); the loss needs it. Other heads ignore it.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        self._check_pixel_values(pixel_values)
        head_type = self.config.head_type
        if head_type == "dbnet" and labels is not None and not output_threshold_maps:
            raise ValueError(
                "`labels` need the threshold maps for the loss; pass output_threshold_maps=True."
            )
        pixel_values = pixel_values.to(self.contexts.dtype)

        encoded = self.image_encoder(pixel_values)
        text_embeddings, matching_map = self.match_text(encoded.global_embedding, encoded.pixel_embeddings)
        features = list(encoded.stage_features)
        stage = features[self.config.matching_stage_index]
        stage_matching = matching_map
        if matching_map.shape[-2:] != stage.shape[-2:]:
            stage_matching = F.interpolate(
                matching_map, size=stage.shape[-2:], mode="bilinear", align_corners=False
            )
        features[self.config.matching_stage_index] = torch.cat([stage, stage_matching.to(stage.dtype)], dim=1)
        if labels is not None:
            batch, _, height, width = pixel_values.shape
            _check_labels(labels, batch, height, width, head_type, self.config.fourier_degree)

        if head_type == "pan":
            maps = {"pan_maps": self.head(self.neck(features))}
        elif head_type == "fcenet":
            # FCENet reads stages 2-4 (strides 8, 16, 32), not the stride-4 stage.
            classification, regression = self.head(self.neck(features[1:]))
            maps = {"fce_classification": classification, "fce_regression": regression}
        else:
            prob_map, thresh_map, binary_map = self.head(self.neck(features), output_threshold_maps)
            maps = {"prob_map": prob_map, "thresh_map": thresh_map, "binary_map": binary_map}

        losses = {}
        if labels is not None:
            losses = self.compute_head_loss(maps, matching_map, labels)

        output = TcmOutput(matching_map=matching_map, text_embeddings=text_embeddings, **maps, **losses)
        return output if return_dict else output.to_tuple()

    def compute_head_loss(
        self,
        maps: dict[str, torch.Tensor],
        matching_map: torch.Tensor,
        labels: Mapping[str, torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """The loss of the configured head plus TCM's auxiliary loss on the matching map, as `TcmOutput` fields."""
        head_type = self.config.head_type
        if head_type == "dbnet":
            return self.compute_loss(
                maps["prob_map"], maps["thresh_map"], maps["binary_map"], matching_map, labels
            )
        config = self.config
        targets = {
            key: labels[key].to(device=matching_map.device, dtype=torch.float32)
            for key in HEAD_LABEL_KEYS[head_type]
        }
        # Dice, cross-entropy and the hard-negative counts want fp32, as mmocr's force_fp32 losses.
        with torch.autocast(device_type=matching_map.device.type, enabled=False):
            matching_logits = matching_map.float() / config.tau
            if head_type == "pan":
                losses = pan_losses(maps["pan_maps"].float(), targets, config)
                matching = pan_matching_loss(matching_logits, targets, config.negative_ratio)
            else:
                losses = fce_losses(
                    [level.float() for level in maps["fce_classification"]],
                    [level.float() for level in maps["fce_regression"]],
                    targets,
                    config,
                )
                # TCM's FCEIdentityHead: balanced BCE at stride 32 against every text's region (per image, as
                # `compute_loss`; the official broadcast mixes images for batch > 1).
                region = targets["matching_region"]
                matching = balanced_bce_loss(
                    matching_logits[:, 0],
                    region[:, 0],
                    region[:, 1],
                    config.negative_ratio,
                    config.loss_eps,
                    from_logits=True,
                )
        losses["matching_loss"] = config.aux_loss_weight * matching
        return {"loss": sum(losses.values()), **losses}

    def compute_loss(
        self,
        prob_map: torch.Tensor,
        thresh_map: torch.Tensor,
        binary_map: torch.Tensor,
        matching_map: torch.Tensor,
        labels: Mapping[str, torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """DB loss (alpha x balanced BCE + dice + beta x masked L1) plus TCM's auxiliary balanced BCE of the
        upsampled `matching_map / tau` against the shrink map. Returns the `TcmOutput` loss fields.

        TCM's official auxiliary loss broadcasts its masks across the batch for batch > 1, mixing images;
        this computes the per-image-correct value (equal to the official one for a single image)."""
        config = self.config
        # BCE on probabilities is undefined under autocast, and the hard-negative counts want fp32 sums.
        targets = {key: labels[key].to(device=prob_map.device, dtype=torch.float32) for key in LABEL_KEYS}
        with torch.autocast(device_type=prob_map.device.type, enabled=False):
            shrink = (targets["shrink_map"] > 0).float()
            shrink_mask = targets["shrink_mask"]
            probability = balanced_bce_loss(
                prob_map[:, 0].float(), shrink, shrink_mask, config.negative_ratio, config.loss_eps
            )
            binary = dice_loss(binary_map[:, 0].float(), shrink, shrink_mask, config.loss_eps)
            threshold = masked_l1_loss(
                thresh_map[:, 0].float(), targets["threshold_map"], targets["threshold_mask"], config.loss_eps
            )
            matching_logits = F.interpolate(
                matching_map.float() / config.tau,
                size=shrink.shape[-2:],
                mode="bilinear",
                align_corners=False,
            )
            matching = balanced_bce_loss(
                matching_logits[:, 0],
                shrink,
                shrink_mask,
                config.negative_ratio,
                config.loss_eps,
                from_logits=True,
            )
        losses = {
            "probability_loss": config.db_alpha * probability,
            "binary_loss": binary,
            "threshold_loss": config.db_beta * threshold,
            "matching_loss": config.aux_loss_weight * matching,
        }
        return {"loss": sum(losses.values()), **losses}

    def _check_pixel_values(self, pixel_values: torch.Tensor) -> None:
        if not isinstance(pixel_values, torch.Tensor):
            raise TypeError(f"`pixel_values` must be a torch.Tensor, got {type(pixel_values).__name__}.")
        if pixel_values.ndim != 4 or pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(
                f"`pixel_values` must have shape (batch, {self.config.num_channels}, height, width), "
                f"got {tuple(pixel_values.shape)}."
            )
        height, width = pixel_values.shape[-2:]
        if height % 32 or width % 32 or height == 0 or width == 0:
            raise ValueError(
                f"`pixel_values` height and width must be positive multiples of 32 (the backbone stride), got "
                f"{height}x{width}; pad the images (TcmImageProcessor does)."
            )
        if not pixel_values.is_floating_point():
            raise TypeError(f"`pixel_values` must be a floating-point tensor, got {pixel_values.dtype}.")


TcmForSceneTextDetection.register_for_auto_class("AutoModel")
