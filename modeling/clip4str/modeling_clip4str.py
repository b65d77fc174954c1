"""CLIP4STR: a CLIP ViT image encoder read by two PARSeq-style decoders.

The visual decoder reads the image tokens; the cross-modal decoder reads the image tokens together with the CLIP
text encoding of the visual decoder's prediction, and its output is the model's answer (Zhao et al., "CLIP4STR:
A Simple Baseline for Scene Text Recognition with Pre-trained Vision-Language Model", TIP 2024).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPTextModel, CLIPVisionConfig, CLIPVisionModel, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput, cached_file

from .caption_tokenizer_clip4str import (
    Clip4StrCaptionTokenizer,
    installed_openai_merges_file,
    read_openai_clip_merges,
    read_tokenizer_merges,
    read_vocab_and_merges_files,
)
from .configuration_clip4str import Clip4StrConfig, as_pair
from .pipeline_files_clip4str import SavesPipelineFilesMixin


@dataclass
class Clip4StrOutput(ModelOutput):
    """Output of [`Clip4StrForSceneTextRecognition`].

    Args:
        loss: permuted-sequence-modeling loss (visual + weighted cross-modal cross-entropy), with `labels`.
        logits: cross-modal decoder logits `(batch, steps, num_classes)`; the model's prediction.
        visual_logits: visual decoder logits of the same steps.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    visual_logits: torch.FloatTensor | None = None


@dataclass(frozen=True)
class Clip4StrDecodingOptions:
    """How [`Clip4StrForSceneTextRecognition.decode`] reads an image; `from_config` gives the checkpoint's way.

    Args:
        autoregressive: both decoders read one character at a time (`decode_ar`); otherwise every position is
            predicted at once from [B] alone.
        refine_iters: cloze refinements of both decoders after the first reading.
        fixed_steps: static shapes (torch.compile, CUDA graphs, export): every decoding step runs and the
            shortcuts that depend on the predicted ids are off (early stop, skipping unchanged or repeated
            captions, ending the caption BPE once nothing merges). Positions after the official stop are padding
            for the refinement, so the logits of the steps the official loop runs are the same.
    """

    autoregressive: bool = True
    refine_iters: int = 1
    fixed_steps: bool = False

    @classmethod
    def from_config(cls, config: Clip4StrConfig) -> Clip4StrDecodingOptions:
        return cls(config.decode_ar, config.refine_iters, config.decode_fixed_steps)


def _additive_mask(
    attn_mask: torch.Tensor | None, key_padding_mask: torch.Tensor | None
) -> torch.Tensor | None:
    """Combine a float `(queries, keys)` mask and a boolean `(batch, keys)` padding mask for SDPA."""
    if key_padding_mask is None:
        return attn_mask
    padding = torch.zeros(key_padding_mask.shape, dtype=torch.float32, device=key_padding_mask.device)
    padding = padding.masked_fill(key_padding_mask, float("-inf"))[:, None, None, :]
    return padding if attn_mask is None else attn_mask + padding


class Clip4StrAttention(nn.Module):
    """Multi-head attention with separate query/key/value projections, computed with SDPA."""

    def __init__(self, hidden_size: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(hidden_size, hidden_size)
        self.k_proj = nn.Linear(hidden_size, hidden_size)
        self.v_proj = nn.Linear(hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, hidden_size)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def project_key_value(self, key_value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values `(batch, heads, length, head_dim)`; computed once when they are reused (the memory
        during a decoding stage, the cached context during autoregressive steps)."""
        return self._split_heads(self.k_proj(key_value)), self._split_heads(self.v_proj(key_value))

    def attend(
        self,
        query: torch.Tensor,
        key_value: tuple[torch.Tensor, torch.Tensor],
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        q = self._split_heads(self.q_proj(query))
        k, v = key_value
        if attn_mask is not None:
            attn_mask = attn_mask.to(q.dtype)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out_proj(out.transpose(1, 2).flatten(2))

    def forward(
        self, query: torch.Tensor, key_value: torch.Tensor, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.attend(query, self.project_key_value(key_value), attn_mask)


class Clip4StrDecoderLayer(GradientCheckpointingLayer):
    """Pre-LN two-stream (XLNet-style) decoder layer of PARSeq: a query stream and a content stream."""

    def __init__(self, config: Clip4StrConfig) -> None:
        super().__init__()
        width = config.projection_dim
        ffn_width = int(width * config.decoder_mlp_ratio)
        self.self_attn = Clip4StrAttention(width, config.decoder_num_heads, config.decoder_dropout)
        self.cross_attn = Clip4StrAttention(width, config.decoder_num_heads, config.decoder_dropout)
        self.linear1 = nn.Linear(width, ffn_width)
        self.linear2 = nn.Linear(ffn_width, width)
        self.norm1 = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.norm2 = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.norm_q = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.norm_c = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.decoder_dropout)
        self.dropout1 = nn.Dropout(config.decoder_dropout)
        self.dropout2 = nn.Dropout(config.decoder_dropout)
        self.dropout3 = nn.Dropout(config.decoder_dropout)
        self.activation = ACT2FN[config.decoder_hidden_act]

    def forward_stream(
        self,
        target: torch.Tensor,
        target_norm: torch.Tensor,
        context_key_value: tuple[torch.Tensor, torch.Tensor],
        memory_key_value: tuple[torch.Tensor, torch.Tensor],
        attn_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        target = target + self.dropout1(self.self_attn.attend(target_norm, context_key_value, attn_mask))
        target = target + self.dropout2(self.cross_attn.attend(self.norm1(target), memory_key_value))
        feed_forward = self.linear2(self.dropout(self.activation(self.linear1(self.norm2(target)))))
        return target + self.dropout3(feed_forward)

    def forward(
        self,
        query: torch.Tensor,
        content: torch.Tensor,
        memory_keys: torch.Tensor,
        memory_values: torch.Tensor,
        query_mask: torch.Tensor | None = None,
        content_mask: torch.Tensor | None = None,
        update_content: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # Every tensor that may need a gradient is a positional argument of its own (the memory's keys and values
        # too): gradient checkpointing tracks those only.
        memory_key_value = (memory_keys, memory_values)
        content_norm = self.norm_c(content)
        # Both streams read the same context keys/values: project them once.
        context_key_value = self.self_attn.project_key_value(content_norm)
        query = self.forward_stream(
            query, self.norm_q(query), context_key_value, memory_key_value, query_mask
        )
        if update_content:
            content = self.forward_stream(
                content, content_norm, context_key_value, memory_key_value, content_mask
            )
        return query, content


class Clip4StrDecoder(nn.Module):
    """PARSeq decoder with its own character embedding, position queries and classification head.

    Decoding modes are only masks and queries: autoregressive steps feed one position query at a time, the
    cloze refinement feeds all of them with a mask that hides each position's own next character.
    """

    def __init__(self, config: Clip4StrConfig) -> None:
        super().__init__()
        width = config.projection_dim
        self.layers = nn.ModuleList([Clip4StrDecoderLayer(config) for _ in range(config.decoder_num_layers)])
        self.text_embed = nn.Embedding(config.num_decoder_tokens, width)
        self.pos_queries = nn.Parameter(torch.empty(1, config.max_label_length + 1, width))
        self.norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.decoder_dropout)
        self.head = nn.Linear(width, config.num_classes)
        self.embed_scale = math.sqrt(width)

    def embed_context(self, context_ids: torch.Tensor) -> torch.Tensor:
        """[B] carries no position (it is the null context); every later character gets the position query of
        the slot it was read at."""
        length = context_ids.shape[1]
        null_context = self.embed_scale * self.text_embed(context_ids[:, :1])
        characters = self.pos_queries[:, : length - 1] + self.embed_scale * self.text_embed(
            context_ids[:, 1:]
        )
        return self.dropout(torch.cat([null_context, characters], dim=1))

    def project_memory(self, memory: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Cross-attention keys/values of every layer; the memory is fixed during a decoding stage."""
        return [layer.cross_attn.project_key_value(memory) for layer in self.layers]

    def extend_memory(
        self, memory_key_values: list[tuple[torch.Tensor, torch.Tensor]], extra: torch.Tensor
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Keys/values of the memory followed by `extra` tokens, given the memory's: only `extra` is projected."""
        return [
            (torch.cat([keys, extra_keys], dim=2), torch.cat([values, extra_values], dim=2))
            for (keys, values), (extra_keys, extra_values) in zip(
                memory_key_values, self.project_memory(extra), strict=True
            )
        ]

    def forward(
        self,
        context_ids: torch.Tensor,
        memory_key_values: list[tuple[torch.Tensor, torch.Tensor]],
        queries: torch.Tensor | None = None,
        query_mask: torch.Tensor | None = None,
        content_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return `(logits, hidden_states)` of the query stream.

        `memory_key_values` are the memory's keys/values from `project_memory`. `query_mask` / `content_mask`
        are additive float masks of shape `(queries, keys)` or `(batch, 1, queries, keys)` (padding of the
        context already folded in).
        """
        batch, length = context_ids.shape
        content = self.embed_context(context_ids)
        if queries is None:
            queries = self.pos_queries[:, :length].expand(batch, -1, -1)
        query = self.dropout(queries)
        for index, (layer, (memory_keys, memory_values)) in enumerate(
            zip(self.layers, memory_key_values, strict=True)
        ):
            # The content stream of the last layer feeds nothing: skip it.
            query, content = layer(
                query,
                content,
                memory_keys,
                memory_values,
                query_mask=query_mask,
                content_mask=content_mask,
                update_content=index < len(self.layers) - 1,
            )
        hidden_states = self.norm(query)
        return self.head(hidden_states), hidden_states

    def step(
        self,
        token_ids: torch.Tensor,
        position: int,
        memory_key_values: list[tuple[torch.Tensor, torch.Tensor]],
        cache: Clip4StrDecoderCache,
        key_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One autoregressive step with cached context keys/values; returns the logits `(batch, 1, classes)`
        of position `position`, given the context token read at that position (`token_ids`, `(batch, 1)`).

        Equivalent to `forward` on the whole prefix with a causal content mask: a context position only ever
        attends to itself and earlier ones, so its keys/values never change once computed. `key_mask` (an
        additive `(1, 1, 1, cache_length)` mask) is for fixed-length caches that hold future slots.
        """
        if position == 0:
            content = self.embed_scale * self.text_embed(token_ids)
        else:
            content = self.pos_queries[:, position - 1 : position] + self.embed_scale * self.text_embed(
                token_ids
            )
        content = self.dropout(content)
        query = self.dropout(self.pos_queries[:, position : position + 1].expand(token_ids.shape[0], -1, -1))
        for index, (layer, memory_key_value) in enumerate(zip(self.layers, memory_key_values, strict=True)):
            content_norm = layer.norm_c(content)
            context_key_value = cache.append(index, position, layer.self_attn.project_key_value(content_norm))
            query = layer.forward_stream(
                query, layer.norm_q(query), context_key_value, memory_key_value, key_mask
            )
            if index < len(self.layers) - 1:
                content = layer.forward_stream(
                    content, content_norm, context_key_value, memory_key_value, key_mask
                )
        return self.head(self.norm(query))

    @torch.no_grad()
    def resize_charset(self, old_charset: str, new_charset: str) -> None:
        """Character embedding and head for `new_charset` (see `Clip4StrForSceneTextRecognition.resize_charset`)."""
        old_ids = {character: index for index, character in enumerate(old_charset, start=1)}
        # Row sources in the new id order: [E], the charset (-1: a new character), [B], [P].
        sources = [0, *(old_ids.get(c, -1) for c in new_charset), len(old_charset) + 1, len(old_charset) + 2]
        self.text_embed = _resized_embedding(self.text_embed, sources, len(old_charset))
        self.head = _resized_head(self.head, sources[:-2], len(old_charset))


def _rows(weight: torch.Tensor, sources: list[int], num_characters: int) -> torch.Tensor:
    """`weight` rows in `sources` order; a new character (-1) gets the mean of the old character rows."""
    mean = weight[1 : num_characters + 1].mean(dim=0)
    return torch.stack([weight[source] if source >= 0 else mean for source in sources])


def _resized_embedding(embedding: nn.Embedding, sources: list[int], num_characters: int) -> nn.Embedding:
    weight = embedding.weight
    resized = nn.Embedding(len(sources), weight.shape[1], device=weight.device, dtype=weight.dtype)
    resized.weight.copy_(_rows(weight, sources, num_characters))
    resized.weight.requires_grad_(weight.requires_grad)
    return resized


def _resized_head(head: nn.Linear, sources: list[int], num_characters: int) -> nn.Linear:
    weight = head.weight
    resized = nn.Linear(weight.shape[1], len(sources), device=weight.device, dtype=weight.dtype)
    resized.weight.copy_(_rows(weight, sources, num_characters))
    resized.bias.copy_(_rows(head.bias[:, None], sources, num_characters)[:, 0])
    resized.requires_grad_(weight.requires_grad)
    return resized


class Clip4StrDecoderCache:
    """Context keys/values of every decoder layer for autoregressive decoding, preallocated to `length`."""

    def __init__(
        self, decoder: Clip4StrDecoder, batch: int, length: int, reference: torch.Tensor, full: bool
    ):
        attention = decoder.layers[0].self_attn
        shape = (batch, attention.num_heads, length, attention.head_dim)
        self.keys = [reference.new_zeros(shape) for _ in decoder.layers]
        self.values = [reference.new_zeros(shape) for _ in decoder.layers]
        # `full`: attend over the whole buffer (static shapes, future slots masked) instead of the filled prefix.
        self.full = full

    def append(
        self, layer: int, position: int, key_value: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self.keys[layer], self.values[layer]
        keys[:, :, position : position + 1] = key_value[0]
        values[:, :, position : position + 1] = key_value[1]
        end = keys.shape[2] if self.full else position + 1
        return keys[:, :, :end], values[:, :, :end]


def greedy_decoding(
    step_logits: Callable[[torch.Tensor, int], torch.Tensor],
    batch: int,
    num_steps: int,
    config: Clip4StrConfig,
    device: torch.device,
    stop_at_eos: bool,
) -> torch.Tensor:
    """Greedy autoregressive decoding: `step_logits(context, step)` gives the (B, 1, C) logits of step `step`
    from the context tokens `context[:, : step + 1]` ([B] first), and each step's prediction becomes the next
    step's context token. With `stop_at_eos` the loop ends once every sample has produced [E]. Returns the
    logits of the steps run, (B, steps, C)."""
    context = torch.full((batch, num_steps), config.pad_id, dtype=torch.long, device=device)
    context[:, 0] = config.bos_id
    steps = []
    for step in range(num_steps):
        logits = step_logits(context, step)
        steps.append(logits)
        if step + 1 < num_steps:
            context[:, step + 1] = logits[:, 0].argmax(-1)
            if stop_at_eos and bool((context == config.eos_id).any(dim=-1).all()):
                break
    return torch.cat(steps, dim=1)


def permutation_attention_masks(permutation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Content and query masks of one factorisation order (PARSeq): a position sees what comes before it in the
    permutation; the query stream does not see its own position either. Position 0 is [B], the last one [E]."""
    size = permutation.shape[0]
    order_of = torch.empty_like(permutation)
    order_of[permutation] = torch.arange(size, device=permutation.device)
    hidden = order_of[None, :] > order_of[:, None]
    mask = torch.zeros(size, size, device=permutation.device).masked_fill(hidden, float("-inf"))
    content_mask = mask[:-1, :-1]
    query_mask = mask.masked_fill(torch.eye(size, dtype=torch.bool, device=permutation.device), float("-inf"))
    return content_mask, query_mask[1:, :-1]


class Clip4StrConvolutionalStem(nn.Sequential):
    """3x3 convolution + batch norm + ReLU stages, stride 2 along each side the patch still covers, then a 1x1
    convolution to the ViT width: a patchifier with the locality and contrast invariance a from-scratch ViT
    otherwise needs many samples to learn (Xiao et al., 2021)."""

    def __init__(
        self, in_channels: int, channels: Sequence[int], patch_size: tuple[int, int], width: int
    ) -> None:
        layers: list[nn.Module] = []
        covered = [1, 1]
        for out_channels in channels:
            stride = tuple(2 if covered[side] < patch_size[side] else 1 for side in range(2))
            covered = [covered[side] * stride[side] for side in range(2)]
            layers += [
                nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
            in_channels = out_channels
        layers.append(nn.Conv2d(in_channels, width, 1))
        super().__init__(*layers)


class Clip4StrVisionEmbeddings(nn.Module):
    """CLIP's class token, patch embedding and learned position embeddings, for rectangular images and patches.

    transformers' CLIP embeddings are square only; small recognizers read word crops the way PARSeq does (e.g.
    32x128 pixels in 4x8 patches), which keeps the crop's aspect and gives every character several columns of
    tokens. The parameter names are CLIP's, so square (converted, OpenAI) checkpoints load unchanged. With
    `stem_channels`, a convolutional stem replaces the single patchifying convolution.
    """

    def __init__(self, config: CLIPVisionConfig, stem_channels: Sequence[int] | None = None) -> None:
        super().__init__()
        self.image_size = as_pair(config.image_size)
        self.patch_size = as_pair(config.patch_size)
        if any(size % patch for size, patch in zip(self.image_size, self.patch_size, strict=True)):
            raise ValueError(
                f"vision image_size {self.image_size} must be a multiple of patch_size {self.patch_size}"
            )
        self.grid = (self.image_size[0] // self.patch_size[0], self.image_size[1] // self.patch_size[1])
        self.embed_dim = config.hidden_size
        self.class_embedding = nn.Parameter(torch.randn(self.embed_dim))
        if stem_channels:
            self.patch_embedding = Clip4StrConvolutionalStem(
                config.num_channels, stem_channels, self.patch_size, self.embed_dim
            )
        else:
            self.patch_embedding = nn.Conv2d(
                config.num_channels, self.embed_dim, self.patch_size, stride=self.patch_size, bias=False
            )
        self.position_embedding = nn.Embedding(self.grid[0] * self.grid[1] + 1, self.embed_dim)

    def forward(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False) -> torch.Tensor:
        if interpolate_pos_encoding:
            raise ValueError(
                "CLIP4STR reads a fixed input size; resize images with the image processor instead"
            )
        patches = self.patch_embedding(pixel_values.to(self.class_embedding.dtype))
        patches = patches.flatten(2).transpose(1, 2)
        class_token = self.class_embedding.expand(patches.shape[0], 1, -1)
        return torch.cat([class_token, patches], dim=1) + self.position_embedding.weight


def build_vision_model(
    config: CLIPVisionConfig, stem_channels: Sequence[int] | None = None
) -> CLIPVisionModel:
    """transformers' CLIP ViT with `Clip4StrVisionEmbeddings`: rectangular sizes and an optional convolutional
    stem."""
    # CLIPVisionModel builds square embeddings in its constructor: build it from a one-pixel stand-in, then swap
    # the embeddings and point every module back at the real config (attention settings are read from it).
    stand_in = CLIPVisionConfig(**{**config.to_dict(), "image_size": 1, "patch_size": 1})
    stand_in._attn_implementation = config._attn_implementation
    model = CLIPVisionModel._from_config(stand_in)
    config._attn_implementation = stand_in._attn_implementation
    for module in model.modules():
        if getattr(module, "config", None) is stand_in:
            module.config = config
    model.embeddings = Clip4StrVisionEmbeddings(config, stem_channels)
    return model


class Clip4StrPreTrainedModel(SavesPipelineFilesMixin, PreTrainedModel):
    config_class = Clip4StrConfig
    config: Clip4StrConfig
    base_model_prefix = "clip4str"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    # Checkpointed: the CLIP encoder layers and both decoders' layers (all `GradientCheckpointingLayer`s).
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ("CLIPEncoderLayer", "Clip4StrDecoderLayer")
    # The pipelines every saved folder declares in `custom_pipelines` and carries the code of (`save_pretrained`
    # of `pipeline_files_clip4str.SavesPipelineFilesMixin`): task -> (file, class). A recognizer answers to
    # `image-to-text` too: custom tasks are looked up before transformers 5 remaps that removed task name to
    # `image-text-to-text`.
    saved_pipelines: ClassVar[dict[str, tuple[str, str]]] = {
        "scene-text-recognition": ("pipeline_clip4str.py", "SceneTextRecognitionPipeline"),
        "image-to-text": ("pipeline_clip4str.py", "SceneTextRecognitionPipeline"),
    }

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # Decoders as PARSeq initialises them (truncated normal, std 0.02); CLIP towers keep CLIP's own init, and
        # so do the projections into the joint space (std width^-0.5): at 0.02 they would shrink the decoders'
        # memory several times below unit scale and starve a from-scratch model of image signal.
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            if module is getattr(self, "visual_projection", None):
                init.normal_(module.weight, std=self.config.vision_config.hidden_size**-0.5)
            elif module is getattr(self, "text_projection", None):
                init.normal_(module.weight, std=self.config.text_config.hidden_size**-0.5)
            else:
                init.trunc_normal_(module.weight, std=std)
                if module.bias is not None:
                    init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.trunc_normal_(module.weight, std=std)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, Clip4StrDecoder):
            init.trunc_normal_(module.pos_queries, std=std)
        elif isinstance(module, Clip4StrCaptionTokenizer):
            module.reset_lookup_tables()
            merges_file = installed_openai_merges_file()
            if merges_file is not None and not getattr(module.bpe_pair_keys, "_is_hf_initialized", False):
                module.load_merges(*read_openai_clip_merges(merges_file))


class Clip4StrForSceneTextRecognition(Clip4StrPreTrainedModel):
    def __init__(self, config: Clip4StrConfig) -> None:
        super().__init__(config)
        self.vision_model = build_vision_model(config.vision_config, config.vision_stem_channels)
        self.visual_projection = nn.Linear(
            config.vision_config.hidden_size, config.projection_dim, bias=False
        )
        self.text_model = CLIPTextModel._from_config(config.text_config)
        self.text_projection = nn.Linear(config.text_config.hidden_size, config.projection_dim, bias=False)
        self.caption_tokenizer = Clip4StrCaptionTokenizer(config)
        self.visual_decoder = Clip4StrDecoder(config)
        self.cross_decoder = Clip4StrDecoder(config)
        self.post_init()
        self.freeze_text_layers(config.text_freeze_nlayer)

    # -- encoders ------------------------------------------------------------------------------------------

    def freeze_text_layers(self, num_layers: int) -> None:
        """The official fine-tuning freezes the text embeddings and the text layers below `num_layers`;
        the final layer norm, the projection and the upper layers train. -1 freezes nothing."""
        if num_layers < 0:
            return
        self.text_model.embeddings.requires_grad_(False)
        for layer in self.text_model.encoder.layers[:num_layers]:
            layer.requires_grad_(False)

    @classmethod
    def from_pretrained(cls, *args, **kwargs) -> Clip4StrForSceneTextRecognition:
        """`PreTrainedModel.from_pretrained`, keeping the official freezing: loading replaces the parameters,
        which resets the `requires_grad` that `__init__` set."""
        model = super().from_pretrained(*args, **kwargs)
        model.freeze_text_layers(model.config.text_freeze_nlayer)
        return model

    @classmethod
    def from_clip(cls, name_or_path: str | Path, **config_kwargs) -> Clip4StrForSceneTextRecognition:
        """Start from a transformers `CLIPModel` checkpoint (Hub id or local folder): both towers and projections
        come from CLIP, the decoders are new, and the official freezing applies (`text_freeze_nlayer`).

        The CLIP BPE merges for the cross-modal branch are read from the checkpoint's tokenizer files
        (`tokenizer.json`, or `vocab.json` + `merges.txt`), else from an installed open-clip-torch.
        Keyword arguments set [`Clip4StrConfig`] fields (e.g. `charset`, `max_label_length`).
        """
        from transformers import CLIPModel

        clip = CLIPModel.from_pretrained(name_or_path)
        model = cls(Clip4StrConfig.from_clip_config(clip.config, **config_kwargs))
        clip_weights = {k: v for k, v in clip.state_dict().items() if k != "logit_scale"}
        result = model.load_state_dict(clip_weights, strict=False)
        if result.unexpected_keys:
            raise ValueError(f"{name_or_path} has weights CLIP4STR does not use: {result.unexpected_keys}")

        def tokenizer_file(name: str) -> str | None:
            return cached_file(name_or_path, name, _raise_exceptions_for_missing_entries=False)

        if tokenizer_json := tokenizer_file("tokenizer.json"):
            merges, vocab = read_tokenizer_merges(tokenizer_json)
        elif (vocab_json := tokenizer_file("vocab.json")) and (merges_txt := tokenizer_file("merges.txt")):
            merges, vocab = read_vocab_and_merges_files(vocab_json, merges_txt)
        elif merges_file := installed_openai_merges_file():
            merges, vocab = read_openai_clip_merges(merges_file)
        else:
            raise FileNotFoundError(
                f"{name_or_path} has no tokenizer files and open-clip-torch is not installed: CLIP's BPE merges "
                "are needed by the cross-modal branch"
            )
        model.caption_tokenizer.load_merges(merges, vocab)
        return model

    def resize_charset(self, charset: str) -> None:
        """Read and write `charset` from now on: fine-tuning onto new characters (other languages, accents,
        symbols).

        Both decoders' character embeddings and heads get one row per character of `charset`, in its order.
        A character the model already knows keeps its learnt rows, wherever it now sits; a new character starts
        from the mean of the old characters' rows (embedding, head weight and head bias), so it begins as
        "an average character": no stronger than the known ones, and separated from them by fine-tuning (its
        targets alone differ). `[E]`, `[B]` and `[P]` keep their rows. `config.charset` and the caption
        tokenizer's tables follow; the caption charset is unchanged (characters outside it are left out of the
        captions, as before). The tokenizer must be rebuilt with the same charset
        (`Clip4StrTokenizer(charset=charset, ...)`).
        """
        old_charset = self.config.charset
        if charset == old_charset:
            return
        if not isinstance(charset, str) or not charset or len(set(charset)) != len(charset):
            raise ValueError(
                f"charset must be a non-empty string without repeated characters, got {charset!r}"
            )
        for decoder in (self.visual_decoder, self.cross_decoder):
            decoder.resize_charset(old_charset, charset)
        self.config.charset = charset
        self.caption_tokenizer.set_charset(charset)

    def load_adapter(self, peft_model_id: str | None = None, *args, **kwargs):
        """transformers' `load_adapter` (what `from_pretrained(ADAPTER_FOLDER)` and `pipeline(model=ADAPTER_FOLDER)`
        call on the base model), resizing the charset first when the adapter was trained onto another one: such
        an adapter carries its charset in the tokenizer files saved beside it (`tokenizer_config.json`).
        `adapter_name_or_path` keeps where the adapter came from: the pipelines read its processor."""
        if peft_model_id is not None:
            self.adapter_name_or_path = str(peft_model_id)
            adapter_kwargs = kwargs.get("adapter_kwargs") or {}
            download = {
                k: adapter_kwargs[k] for k in ("revision", "token", "cache_dir") if k in adapter_kwargs
            }
            tokenizer_config = cached_file(
                peft_model_id,
                "tokenizer_config.json",
                _raise_exceptions_for_missing_entries=False,
                _raise_exceptions_for_connection_errors=False,
                **download,
            )
            if tokenizer_config is not None:
                charset = json.loads(Path(tokenizer_config).read_text(encoding="utf-8")).get("charset")
                if charset:
                    self.resize_charset(charset)
        return super().load_adapter(peft_model_id, *args, **kwargs)

    def _check_pixel_values(self, pixel_values: torch.Tensor) -> None:
        vision = self.config.vision_config
        expected = (vision.num_channels, *as_pair(vision.image_size))
        if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != expected:
            raise ValueError(
                f"`pixel_values` must have shape (batch, {expected[0]}, {expected[1]}, {expected[2]}) (the image "
                f"processor resizes to it), got {tuple(pixel_values.shape)}"
            )

    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Image memory: every ViT token (CLS included) after the final layer norm, projected to the joint
        space — not only the pooled token."""
        self._check_pixel_values(pixel_values)
        hidden_states = self.vision_model(pixel_values=pixel_values).last_hidden_state
        return self.visual_projection(self.vision_model.post_layernorm(hidden_states))

    def build_cross_memory(self, visual_logits: torch.Tensor, image_memory: torch.Tensor) -> torch.Tensor:
        """Image memory followed by the projected CLIP text tokens of the visual prediction's caption (all
        positions, padding included: the official cross-attention has no padding mask). Every caption is
        encoded, as in the official training step."""
        caption_ids = self.caption_tokenizer(visual_logits.detach().argmax(dim=-1))
        text_features = self.encode_captions(caption_ids)
        if self.config.image_detach:
            image_memory = image_memory.detach()
        return torch.cat([image_memory, text_features.to(image_memory.dtype)], dim=1)

    def encode_predicted_captions(
        self,
        visual_logits: torch.Tensor,
        previous_captions: tuple[torch.Tensor, torch.Tensor] | None = None,
        fixed_steps: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`(caption_ids, text_features)` of the visual prediction, for decoding.

        The text tower is the largest part of decoding at B/16, and the same ids give the same features, so two
        shortcuts skip rows: given the previous call's pair, only the samples whose caption changed are encoded
        (after a refinement most captions are unchanged), and identical captions in the batch are encoded once.
        Both need the host to see the ids, so `fixed_steps` (static shapes) encodes every row.
        """
        caption_ids = self.caption_tokenizer(
            visual_logits.detach().argmax(dim=-1), early_exit=not fixed_steps
        )
        if fixed_steps:
            return caption_ids, self.encode_captions(caption_ids)
        if previous_captions is None:
            pending = torch.arange(caption_ids.shape[0], device=caption_ids.device)
            text_features = None
        else:
            previous_ids, text_features = previous_captions
            pending = (caption_ids != previous_ids).any(dim=1).nonzero().squeeze(1)
            if not pending.numel():
                return caption_ids, text_features
        unique_ids, inverse = torch.unique(caption_ids[pending], dim=0, return_inverse=True)
        encoded = self.encode_captions(unique_ids)[inverse]
        if text_features is None:
            return caption_ids, encoded
        return caption_ids, text_features.index_copy(0, pending, encoded)

    def encode_captions(self, caption_ids: torch.Tensor) -> torch.Tensor:
        """CLIP text ids -> projected text tokens, every position."""
        return self.text_projection(self.text_model(input_ids=caption_ids).last_hidden_state)

    # -- training ------------------------------------------------------------------------------------------

    def generate_permutations(self, num_chars: int, device: torch.device | None = None) -> torch.Tensor:
        """Factorisation orders shared by the batch (PARSeq): the canonical order, its reverse, random ones and
        their mirrors, each with [B] first and [E] last. Drawn from torch's global RNG."""
        config = self.config
        if num_chars == 1:
            return torch.arange(3, device=device)[None]
        perms = [torch.arange(num_chars, device=device)] if config.perm_forward else []
        max_perms = math.factorial(num_chars) // (2 if config.perm_mirrored else 1)
        max_generated = config.perm_num // 2 if config.perm_mirrored else config.perm_num
        num_generated = min(max_generated, max_perms)
        if num_chars < 5:
            # Few characters: sample without replacement from all orders; with 4 characters and mirroring, only
            # from the 12 orders whose mirrors are not in the set (PARSeq's selector).
            if num_chars == 4 and config.perm_mirrored:
                selector = [0, 3, 4, 6, 9, 10, 12, 16, 17, 18, 19, 21]
            else:
                selector = list(range(max_perms))
            pool = torch.as_tensor(list(itertools.permutations(range(num_chars))), device=device)[selector]
            if config.perm_forward:
                pool = pool[1:]
            count = num_generated - len(perms)
            drawn = pool[torch.randperm(len(pool), device="cpu")[:count].to(pool.device)]
            perms = torch.cat([torch.stack(perms), drawn]) if perms else drawn
        else:
            perms += [torch.randperm(num_chars, device=device) for _ in range(num_generated - len(perms))]
            perms = torch.stack(perms)
        if config.perm_mirrored:
            perms = torch.stack([perms, perms.flip(-1)]).transpose(0, 1).reshape(-1, num_chars)
        bos = perms.new_zeros((len(perms), 1))
        eos = perms.new_full((len(perms), 1), num_chars + 1)
        perms = torch.cat([bos, perms + 1, eos], dim=1)
        if len(perms) > 1:
            # The reverse order also serves as the null context for [E].
            perms[1, 1:] = num_chars + 1 - torch.arange(num_chars + 1, device=device)
        return perms

    def _check_labels(self, labels: torch.Tensor, batch_size: int) -> None:
        config = self.config
        if labels.ndim != 2 or labels.shape[0] != batch_size:
            raise ValueError(f"`labels` must have shape ({batch_size}, length), got {tuple(labels.shape)}")
        if labels.shape[1] < 3 or labels.shape[1] > config.max_label_length + 2:
            raise ValueError(
                f"`labels` must be [B] + up to {config.max_label_length} characters + [E], padded with [P]; "
                f"got length {labels.shape[1]}"
            )
        if bool((labels[:, 0] != config.bos_id).any()):
            raise ValueError(f"every row of `labels` must start with the [B] id {config.bos_id}")
        if bool(((labels < 0) | (labels >= config.num_decoder_tokens)).any()):
            raise ValueError(f"`labels` ids must lie in [0, {config.num_decoder_tokens})")

    def permuted_language_modeling_loss(
        self,
        image_memory: torch.Tensor,
        labels: torch.Tensor,
        permutations: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss of the official training step: for every permutation, the visual cross-entropy plus
        `cross_loss_weight` x the cross-modal one (its memory built from that permutation's visual logits),
        weighted by the number of target tokens; [E] targets leave the loss after the first two permutations.

        Returns `(loss, visual_logits, cross_logits)`, the logits of the first (canonical) permutation.
        """
        config = self.config
        context = labels[:, :-1]
        targets = labels[:, 1:]
        padding = (context == config.pad_id) | (context == config.eos_id)
        if permutations is None:
            permutations = self.generate_permutations(context.shape[1] - 1, device=labels.device)
        loss = image_memory.new_zeros(())
        total_weight = image_memory.new_zeros(())
        num_targets = (targets != config.pad_id).sum()
        # The image memory is the same for every permutation: project its keys/values once.
        visual_memory = self.visual_decoder.project_memory(image_memory)
        outputs = None
        for index, permutation in enumerate(permutations):
            content_mask, query_mask = permutation_attention_masks(permutation)
            content_mask = _additive_mask(content_mask, padding)
            query_mask = _additive_mask(query_mask, padding)
            visual_logits, _ = self.visual_decoder(
                context, visual_memory, query_mask=query_mask, content_mask=content_mask
            )
            cross_memory = self.build_cross_memory(visual_logits, image_memory)
            cross_logits, _ = self.cross_decoder(
                context,
                self.cross_decoder.project_memory(cross_memory),
                query_mask=query_mask,
                content_mask=content_mask,
            )
            visual_loss = F.cross_entropy(
                visual_logits.flatten(0, 1), targets.flatten(), ignore_index=config.pad_id
            )
            cross_loss = F.cross_entropy(
                cross_logits.flatten(0, 1), targets.flatten(), ignore_index=config.pad_id
            )
            loss = loss + num_targets * (visual_loss + config.cross_loss_weight * cross_loss)
            total_weight = total_weight + num_targets
            if outputs is None:
                outputs = (visual_logits, cross_logits)
            if index == 1:
                targets = torch.where(targets == config.eos_id, config.pad_id, targets)
                num_targets = (targets != config.pad_id).sum()
        return loss / total_weight, outputs[0], outputs[1]

    # -- inference: the official evaluation, stage by stage ------------------------------------------------

    def decode(
        self, image_memory: torch.Tensor, options: Clip4StrDecodingOptions | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The official eval-mode decoding; returns `(cross_logits, visual_logits)`.

        1. visual autoregressive decoding: the visual decoder reads the image, stopping once every sample has
           produced [E];
        2. cross-modal autoregressive decoding over the same steps: the cross-modal decoder reads the image and
           the CLIP text encoding of step 1's caption;
        3. `refine_iters` cloze refinements of both decoders, the caption re-encoded from the refined visual
           prediction.

        Each decoder projects the image memory's keys/values once for all its stages, and each autoregressive
        step computes the keys/values of its new context token only. `options` defaults to the config's.
        """
        options = options or Clip4StrDecodingOptions.from_config(self.config)
        # Contiguous: every decoding step streams them.
        visual_memory = [
            (keys.contiguous(), values.contiguous())
            for keys, values in self.visual_decoder.project_memory(image_memory)
        ]
        cross_image_memory = self.cross_decoder.project_memory(image_memory)

        beyond_official_stop = None
        if options.autoregressive:
            visual_logits = self.visual_autoregressive_decoding(visual_memory, options)
            captions = self.encode_predicted_captions(visual_logits, fixed_steps=options.fixed_steps)
            cross_logits = self.cross_modal_autoregressive_decoding(
                self._cross_memory(cross_image_memory, captions), num_steps=visual_logits.shape[1]
            )
            if options.fixed_steps:
                beyond_official_stop = self._beyond_official_stop(visual_logits)
        else:
            visual_logits = self.parallel_decoding(self.visual_decoder, visual_memory)
            captions = self.encode_predicted_captions(visual_logits, fixed_steps=options.fixed_steps)
            cross_logits = self.parallel_decoding(
                self.cross_decoder, self._cross_memory(cross_image_memory, captions)
            )

        for _ in range(options.refine_iters):
            visual_logits = self.cloze_refinement(self.visual_decoder, visual_logits, visual_memory)
            captions = self.encode_predicted_captions(visual_logits, captions, options.fixed_steps)
            cross_memory = self._cross_memory(cross_image_memory, captions)
            cross_logits = self.cloze_refinement(
                self.cross_decoder, cross_logits, cross_memory, hidden=beyond_official_stop
            )
            beyond_official_stop = None  # the first refinement read all positions: nothing is left to hide
        return cross_logits, visual_logits

    def visual_autoregressive_decoding(
        self, memory_key_values: list[tuple[torch.Tensor, torch.Tensor]], options: Clip4StrDecodingOptions
    ) -> torch.Tensor:
        """Greedy decoding of the visual decoder over the image; stops once every sample has produced [E]
        (not with `fixed_steps`). Returns the logits of the steps run."""
        return self._greedy_decoding(
            self.visual_decoder,
            memory_key_values,
            self.config.max_label_length + 1,
            stop_at_eos=not options.fixed_steps,
        )

    def cross_modal_autoregressive_decoding(
        self, memory_key_values: list[tuple[torch.Tensor, torch.Tensor]], num_steps: int
    ) -> torch.Tensor:
        """Greedy decoding of the cross-modal decoder over the image and the caption, for the `num_steps` steps
        the visual decoder ran (no early stop of its own, as officially)."""
        return self._greedy_decoding(self.cross_decoder, memory_key_values, num_steps, stop_at_eos=False)

    def parallel_decoding(
        self, decoder: Clip4StrDecoder, memory_key_values: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> torch.Tensor:
        """Non-autoregressive reading (`decode_ar=False`): every position at once, from the [B] context alone."""
        batch = memory_key_values[0][0].shape[0]
        bos = torch.full(
            (batch, 1), self.config.bos_id, dtype=torch.long, device=memory_key_values[0][0].device
        )
        queries = decoder.pos_queries[:, : self.config.max_label_length + 1].expand(batch, -1, -1)
        return decoder(bos, memory_key_values, queries=queries)[0]

    def cloze_refinement(
        self,
        decoder: Clip4StrDecoder,
        previous_logits: torch.Tensor,
        memory_key_values: list[tuple[torch.Tensor, torch.Tensor]],
        hidden: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One refinement (PARSeq's cloze): every position is predicted again from the whole previous prediction
        except the character it is asked for; context after the first [E] (and `hidden`, a boolean `(batch,
        length)` mask) is padding."""
        config = self.config
        batch, device = previous_logits.shape[0], previous_logits.device
        num_steps = config.max_label_length + 1
        bos = torch.full((batch, 1), config.bos_id, dtype=torch.long, device=device)
        context = torch.cat([bos, previous_logits[:, :-1].argmax(-1)], dim=1)
        padding = (context == config.eos_id).cumsum(-1) > 0
        if hidden is not None:
            padding = padding | hidden
        # Query i may not see context i + 1, the character it predicts. The official code edits the shared
        # query/content mask in place, so the content stream gets the same mask.
        cloze = torch.zeros(num_steps, num_steps, device=device)
        cloze = cloze.masked_fill(torch.ones_like(cloze, dtype=torch.bool).triu(1).tril(1), float("-inf"))
        length = context.shape[1]
        queries = decoder.pos_queries[:, :num_steps].expand(batch, -1, -1)
        logits, _ = decoder(
            context,
            memory_key_values,
            queries=queries,
            query_mask=_additive_mask(cloze[:, :length], padding),
            content_mask=_additive_mask(cloze[:length, :length], padding),
        )
        return logits

    def _cross_memory(
        self,
        image_key_values: list[tuple[torch.Tensor, torch.Tensor]],
        captions: tuple[torch.Tensor, torch.Tensor],
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The cross-modal decoder's memory keys/values: the image's, projected once per decoding, followed by
        those of the caption's text tokens."""
        text_features = captions[1].to(image_key_values[0][0].dtype)
        return self.cross_decoder.extend_memory(image_key_values, text_features)

    def _greedy_decoding(
        self,
        decoder: Clip4StrDecoder,
        memory_key_values: list[tuple[torch.Tensor, torch.Tensor]],
        num_steps: int,
        stop_at_eos: bool,
    ) -> torch.Tensor:
        """`greedy_decoding` with one query per step; the decoder's cache keeps the context keys/values of
        earlier steps, so a step runs on its own context token only. Returns the steps' logits."""
        reference = memory_key_values[0][0]
        batch = reference.shape[0]
        causal = torch.triu(torch.full((num_steps, num_steps), float("-inf"), device=reference.device), 1)
        # Without early stop the loop is static: attend over the whole preallocated cache, future slots masked.
        cache = Clip4StrDecoderCache(decoder, batch, num_steps, reference, full=not stop_at_eos)

        def step_logits(context: torch.Tensor, step: int) -> torch.Tensor:
            key_mask = None if stop_at_eos else causal[step][None, None, None, :]
            return decoder.step(context[:, step : step + 1], step, memory_key_values, cache, key_mask)

        return greedy_decoding(step_logits, batch, num_steps, self.config, reference.device, stop_at_eos)

    def _beyond_official_stop(self, visual_logits: torch.Tensor) -> torch.Tensor:
        """With fixed steps: the positions after the step at which the official loop would have stopped (every
        sample had emitted [E]), `(1, steps)`. The cross-modal context there must stay out of the first
        refinement."""
        num_steps = visual_logits.shape[1]
        is_eos = visual_logits.argmax(-1) == self.config.eos_id
        stopped_at = torch.where(is_eos.any(dim=1), is_eos.int().argmax(dim=1) + 1, num_steps).max()
        return torch.arange(num_steps, device=visual_logits.device)[None, :] >= stopped_at

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        permutations: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> Clip4StrOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch, 3, height, width)`): images from the image processor.
        labels (`torch.LongTensor` of shape `(batch, length)`, *optional*): `[B] characters [E]` padded with `[P]`
            (what the processor returns for `text=`). With labels the model computes the training loss with
            permuted sequence modeling; without them it decodes as the official evaluation does.
        permutations (`torch.LongTensor` of shape `(num_perms, length)`, *optional*): factorisation orders to use
            instead of random ones (reproducibility, tests).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        image_memory = self.encode_image(pixel_values)
        if labels is not None:
            self._check_labels(labels, pixel_values.shape[0])
            loss, visual_logits, logits = self.permuted_language_modeling_loss(
                image_memory, labels, permutations
            )
        else:
            loss = None
            logits, visual_logits = self.decode(image_memory)
        output = Clip4StrOutput(loss=loss, logits=logits, visual_logits=visual_logits)
        return output if return_dict else output.to_tuple()


Clip4StrForSceneTextRecognition.register_for_auto_class("AutoModel")

__all__ = [
    "Clip4StrDecodingOptions",
    "Clip4StrForSceneTextRecognition",
    "Clip4StrOutput",
    "Clip4StrPreTrainedModel",
]
