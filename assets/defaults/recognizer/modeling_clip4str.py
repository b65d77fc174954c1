"""CLIP4STR: a CLIP ViT image encoder read by two PARSeq-style decoders.

The visual decoder reads the image tokens; the cross-modal decoder reads the image tokens together with the CLIP
text encoding of the visual decoder's prediction, and its output is the model's answer (Zhao et al., "CLIP4STR:
A Simple Baseline for Scene Text Recognition with Pre-trained Vision-Language Model", TIP 2024).
"""

from __future__ import annotations

import gzip
import importlib.util
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPTextModel, CLIPVisionConfig, CLIPVisionModel, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.utils import ModelOutput

from .configuration_clip4str import Clip4StrConfig, as_pair
from .pipeline_files_clip4str import copy_pipeline_files, declare_pipelines


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


class Clip4StrDecoderLayer(nn.Module):
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
        memory_key_value: tuple[torch.Tensor, torch.Tensor],
        query_mask: torch.Tensor | None,
        content_mask: torch.Tensor | None,
        update_content: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
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
        memory: torch.Tensor | list[tuple[torch.Tensor, torch.Tensor]],
        queries: torch.Tensor | None = None,
        query_mask: torch.Tensor | None = None,
        content_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return `(logits, hidden_states)` of the query stream.

        `memory` is the memory `(batch, tokens, width)` or its projection from `project_memory`.
        `query_mask` / `content_mask` are additive float masks of shape `(queries, keys)` or
        `(batch, 1, queries, keys)` (padding of the context already folded in).
        """
        batch, length = context_ids.shape
        memory_key_values = memory if isinstance(memory, list) else self.project_memory(memory)
        content = self.embed_context(context_ids)
        if queries is None:
            queries = self.pos_queries[:, :length].expand(batch, -1, -1)
        query = self.dropout(queries)
        for index, (layer, memory_key_value) in enumerate(zip(self.layers, memory_key_values, strict=True)):
            is_last = index == len(self.layers) - 1
            query, content = layer(
                query, content, memory_key_value, query_mask, content_mask, update_content=not is_last
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


# ----------------------------------------------------------------------------------------------------------
# CLIP byte-level BPE of the predicted captions, on tensors.
#
# The cross-modal branch turns every prediction into CLIP BPE ids. Captions only hold printable ASCII (the
# caption charset is validated), so each character is one byte-level token and the whole tokenizer — the word
# split of CLIP's pre-tokenizer regex and the merges — can run batched on the model's device, with the merge
# table stored in the weights. That keeps a checkpoint folder self-contained and decoding free of Python work
# per sample.
# ----------------------------------------------------------------------------------------------------------

_CLIP_NUM_BYTE_TOKENS = 256  # byte-level tokens; the same 256 followed by "</w>" come next, then the merges
_CLIP_FIRST_MERGE_ID = 2 * _CLIP_NUM_BYTE_TOKENS
_CLIP_CONTRACTIONS = ("s", "t", "re", "ve", "m", "ll", "d")  # CLIP's regex: 's|'t|'re|'ve|'m|'ll|'d


def _clip_byte_tokens() -> list[str]:
    """CLIP's byte-to-unicode table in id order (OpenAI `bytes_to_unicode`)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codepoints = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codepoints.append(256 + extra)
            extra += 1
    return [chr(c) for c in codepoints]


def _ascii_token_id(char: str, end_of_word: bool) -> int:
    # Printable ASCII bytes come first in the byte-to-unicode table, in order, from "!".
    return ord(char) - ord("!") + (_CLIP_NUM_BYTE_TOKENS if end_of_word else 0)


def clip_bpe_merge_table(
    merges: Sequence[tuple[str, str]], vocab: dict[str, int], vocab_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn CLIP BPE merges (in rank order) into the model's lookup buffers.

    Returns `(pair_keys, pair_ranks)`: `left_id * vocab_size + right_id` sorted ascending, and each pair's rank.
    The token a merge produces has id `512 + rank` in CLIP's vocabulary; this is checked.
    """
    keys = []
    for rank, (left, right) in enumerate(merges):
        if vocab.get(left + right) != _CLIP_FIRST_MERGE_ID + rank:
            raise ValueError(
                f"CLIP BPE merge {rank} ({left!r} + {right!r}) does not produce token id "
                f"{_CLIP_FIRST_MERGE_ID + rank}: this is not the CLIP vocabulary"
            )
        keys.append(vocab[left] * vocab_size + vocab[right])
    pair_keys = torch.tensor(keys, dtype=torch.int64)
    pair_keys, order = torch.sort(pair_keys)
    return pair_keys, order.to(torch.int32)


def read_openai_clip_merges(path: str | Path) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """Read OpenAI's `bpe_simple_vocab_16e6.txt.gz` (shipped by e.g. open-clip-torch): merges and vocabulary."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    # The OpenAI tokenizer keeps the first 49152 - 256 - 2 merges after the header line.
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    byte_tokens = _clip_byte_tokens()
    tokens = byte_tokens + [t + "</w>" for t in byte_tokens] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return merges, {token: index for index, token in enumerate(tokens)}


def read_tokenizer_merges(tokenizer_json: str | Path) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """Read merges and vocabulary from a `tokenizer.json` of a CLIP checkpoint (HF tokenizers format)."""
    model = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return merges, model["vocab"]


def _installed_openai_merges_file() -> Path | None:
    """OpenAI's merges file as shipped inside open-clip-torch, located without importing the package."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"
    return path if path.is_file() else None


class Clip4StrCaptionTokenizer(nn.Module):
    """Maps decoder predictions to the CLIP BPE ids of their caption, batched on the model's device.

    Reproduces the official path exactly: argmax ids -> text cut at the first "[E]" -> charset adapter of the
    caption charset -> CLIP tokenizer (lower-casing, regex word split, byte-level BPE) -> [SOT] tokens [EOT],
    zero-padded to the context length, truncation keeping [EOT] in the last slot.
    """

    def __init__(self, config: Clip4StrConfig) -> None:
        super().__init__()
        self.context_length = config.text_context_length
        self.vocab_size = config.text_config.vocab_size
        self.sot_id = self.vocab_size - 2
        self.eot_id = self.vocab_size - 1
        self.eos_id = config.eos_id
        num_merges = self.vocab_size - _CLIP_FIRST_MERGE_ID - 2
        self.register_buffer("bpe_pair_keys", torch.zeros(num_merges, dtype=torch.int64))
        self.register_buffer("bpe_pair_ranks", torch.zeros(num_merges, dtype=torch.int32))

        self.charset = config.charset
        self.caption_charset = config.caption_charset
        # Lookup tables derived from the config (not saved); `reset_lookup_tables` fills them, also after loading.
        self.register_buffer(
            "byte_token_of_id", torch.empty(config.num_decoder_tokens, dtype=torch.int64), persistent=False
        )
        self.register_buffer("class_of_byte_token", torch.empty(94, dtype=torch.int64), persistent=False)
        self.reset_lookup_tables()
        self.apostrophe = _ascii_token_id("'", end_of_word=False)
        self.contraction_tokens = [
            [_ascii_token_id(c, False) for c in suffix] for suffix in _CLIP_CONTRACTIONS
        ]

        # The official caption is a *string* cut at the first "[E]", so the three characters "[", "E", "]"
        # predicted in a row end it just like the [E] token does.
        char_to_id = {char: index for index, char in enumerate(config.charset, start=1)}
        self.literal_eos_ids = [char_to_id[c] for c in "[E]"] if all(c in char_to_id for c in "[E]") else None

    @torch.no_grad()
    def reset_lookup_tables(self) -> None:
        # Per decoder token: the CLIP byte token its caption character becomes, or -1 when the caption charset
        # drops it. CLIP lower-cases everything it reads, after the charset adapter decided what to keep.
        caption_charset = self.caption_charset
        lowercase_only = caption_charset == caption_charset.lower()
        uppercase_only = caption_charset == caption_charset.upper()
        byte_token = torch.full_like(self.byte_token_of_id, -1, device="cpu")
        for index, char in enumerate(self.charset, start=1):
            adapted = char.lower() if lowercase_only else char.upper() if uppercase_only else char
            if len(adapted) == 1 and adapted in caption_charset:
                byte_token[index] = _ascii_token_id(adapted.lower(), end_of_word=False)
        self.byte_token_of_id.copy_(byte_token)
        # Character classes of CLIP's pre-tokenizer over the 94 printable ASCII byte tokens: letter, digit, other.
        ascii_chars = [chr(c) for c in range(ord("!"), ord("~") + 1)]
        self.class_of_byte_token.copy_(
            torch.tensor([0 if c.isalpha() else 1 if c.isdigit() else 2 for c in ascii_chars])
        )

    @property
    def has_merges(self) -> bool:
        return bool(self.bpe_pair_keys.numel()) and bool(self.bpe_pair_keys[-1] > 0)

    def load_merges(self, merges: Sequence[tuple[str, str]], vocab: dict[str, int]) -> None:
        keys, ranks = clip_bpe_merge_table(merges, vocab, self.vocab_size)
        if keys.shape != self.bpe_pair_keys.shape:
            raise ValueError(
                f"expected {self.bpe_pair_keys.numel()} CLIP BPE merges for a text vocabulary of "
                f"{self.vocab_size}, got {keys.numel()}"
            )
        with torch.no_grad():
            self.bpe_pair_keys.copy_(keys)
            self.bpe_pair_ranks.copy_(ranks)

    def _cut_and_adapt(self, pred_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Byte tokens of each caption, left-aligned, and the caption lengths."""
        ends = pred_ids == self.eos_id
        if self.literal_eos_ids is not None and pred_ids.shape[1] >= 3:
            open_id, e_id, close_id = self.literal_eos_ids
            literal = (
                (pred_ids[:, :-2] == open_id) & (pred_ids[:, 1:-1] == e_id) & (pred_ids[:, 2:] == close_id)
            )
            ends[:, :-2] |= literal
        before_end = ends.cumsum(dim=1) == 0
        tokens = self.byte_token_of_id[pred_ids]
        keep = before_end & (tokens >= 0)
        # A stable sort on "dropped" moves the kept characters to the front in their order.
        order = torch.sort((~keep).to(torch.uint8), dim=1, stable=True).indices
        return tokens.gather(1, order), keep.sum(dim=1)

    def _word_starts(self, tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Where CLIP's regex starts a new piece: letter runs, single digits, punctuation runs and the
        contractions 's 't 're 've 'm 'll 'd, which the regex tries first at the start of a punctuation run."""
        char_class = self.class_of_byte_token[tokens.clamp(min=0)]
        previous_class = F.pad(char_class[:, :-1], (1, 0), value=-1)
        starts = (char_class != previous_class) | (char_class == 1)
        punctuation_start = (char_class == 2) & (previous_class != 2)
        length = tokens.shape[1]
        inside_contraction = torch.zeros_like(starts)
        after_contraction = torch.zeros_like(starts)
        for suffix in self.contraction_tokens:
            span = len(suffix) + 1
            if span > length:
                continue
            match = punctuation_start[:, : length - span + 1] & (
                tokens[:, : length - span + 1] == self.apostrophe
            )
            for offset, token in enumerate(suffix, start=1):
                match = match & (tokens[:, offset : length - span + 1 + offset] == token)
            match = match & valid[:, span - 1 :]
            for offset in range(1, span):
                inside_contraction[:, offset : length - span + 1 + offset] |= match
            if span < length:
                after_contraction[:, span : length + 1] |= match[:, : length - span]
        starts = (starts & ~inside_contraction) | after_contraction
        starts[:, 0] = True
        return starts & valid

    def _apply_merges(
        self, tokens: torch.Tensor, word_ids: torch.Tensor, alive: torch.Tensor, early_exit: bool = True
    ) -> torch.Tensor:
        """Byte-level BPE of every word at once; each round merges, per word, every non-overlapping occurrence
        (left to right) of its lowest-ranked pair, as CLIP's `bpe()` does."""
        batch, length = tokens.shape
        no_rank = torch.iinfo(torch.int64).max
        for _ in range(length):
            order = torch.sort((~alive).to(torch.uint8), dim=1, stable=True).indices
            tokens, word_ids, alive = (
                tokens.gather(1, order),
                word_ids.gather(1, order),
                alive.gather(1, order),
            )
            pair_ok = alive[:, :-1] & alive[:, 1:] & (word_ids[:, :-1] == word_ids[:, 1:])
            keys = tokens[:, :-1].clamp(min=0) * self.vocab_size + tokens[:, 1:].clamp(min=0)
            slot = torch.searchsorted(self.bpe_pair_keys, keys).clamp(max=self.bpe_pair_keys.numel() - 1)
            known = pair_ok & (self.bpe_pair_keys[slot] == keys)
            ranks = torch.where(known, self.bpe_pair_ranks[slot].to(torch.int64), no_rank)
            pair_words = word_ids[:, :-1].clamp(min=0)
            best = torch.full((batch, length), no_rank, dtype=torch.int64, device=tokens.device)
            best = best.scatter_reduce(1, pair_words, ranks, reduce="amin")
            chosen = known & (ranks == best.gather(1, pair_words))
            # Overlapping occurrences (a pair of equal tokens in a run) merge left to right: keep every other.
            run_start = chosen & ~F.pad(chosen[:, :-1], (1, 0), value=False)
            positions = torch.arange(length - 1, device=tokens.device).expand(batch, -1)
            start_index = torch.where(run_start, positions, 0).cummax(dim=1).values
            chosen = chosen & ((positions - start_index) % 2 == 0)
            if early_exit and not bool(chosen.any()):
                break
            merged = F.pad(chosen, (0, 1), value=False)
            absorbed = F.pad(chosen, (1, 0), value=False)
            tokens = torch.where(merged, F.pad(ranks, (0, 1), value=0) + _CLIP_FIRST_MERGE_ID, tokens)
            alive = alive & ~absorbed
        order = torch.sort((~alive).to(torch.uint8), dim=1, stable=True).indices
        return torch.where(alive.gather(1, order), tokens.gather(1, order), -1)

    def forward(self, pred_ids: torch.Tensor, early_exit: bool = True) -> torch.Tensor:
        """`(batch, steps)` decoder ids -> `(batch, context_length)` CLIP text ids. `early_exit=False` runs
        every merge round (no host synchronisation: static for compilation)."""
        if not self.has_merges:
            raise RuntimeError(
                "The CLIP BPE merges of the cross-modal branch are not loaded: load a CLIP4STR checkpoint, build "
                "the model with `from_clip`, or install open-clip-torch before creating a model from a config."
            )
        tokens, lengths = self._cut_and_adapt(pred_ids)
        batch, length = tokens.shape
        valid = torch.arange(length, device=tokens.device)[None, :] < lengths[:, None]
        starts = self._word_starts(tokens, valid)
        word_ids = torch.where(valid, starts.cumsum(dim=1) - 1, -1)
        word_ends = valid & F.pad(starts[:, 1:] | ~valid[:, 1:], (0, 1), value=True)
        tokens = torch.where(word_ends, tokens + _CLIP_NUM_BYTE_TOKENS, tokens)
        pieces = self._apply_merges(torch.where(valid, tokens, -1), word_ids, valid, early_exit)

        body = self.context_length - 2
        pieces = F.pad(pieces, (0, max(0, body - pieces.shape[1])), value=-1)[:, :body]
        num_pieces = (pieces >= 0).sum(dim=1)
        ids = torch.zeros(batch, self.context_length, dtype=torch.int64, device=pred_ids.device)
        ids[:, 0] = self.sot_id
        ids[:, 1 : body + 1] = pieces.clamp(min=0)
        ids.scatter_(1, (num_pieces + 1)[:, None], self.eot_id)
        return ids


# ----------------------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------------------


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


class Clip4StrPreTrainedModel(PreTrainedModel):
    config_class = Clip4StrConfig
    config: Clip4StrConfig
    base_model_prefix = "clip4str"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = False
    _supports_sdpa = True
    _no_split_modules = ("CLIPEncoderLayer", "Clip4StrDecoderLayer")
    # The pipelines every saved folder declares in `custom_pipelines` and carries the code of: task -> (file,
    # class). A recognizer answers to `image-to-text` too: custom tasks are looked up before transformers 5
    # remaps that removed task name to `image-text-to-text`.
    saved_pipelines: ClassVar[dict[str, tuple[str, str]]] = {
        "scene-text-recognition": ("pipeline_clip4str.py", "SceneTextRecognitionPipeline"),
        "image-to-text": ("pipeline_clip4str.py", "SceneTextRecognitionPipeline"),
    }

    def save_pretrained(self, save_directory, *args, is_main_process: bool = True, **kwargs) -> None:
        """`PreTrainedModel.save_pretrained`, plus the code of `saved_pipelines` and their `custom_pipelines`
        entry, so that every path writing a folder (Trainer, training loop, conversion, `push_to_hub`) writes a
        complete one (see `pipeline_files_clip4str`)."""
        files = declare_pipelines(self.config, self.saved_pipelines, self.name_or_path)
        super().save_pretrained(save_directory, *args, is_main_process=is_main_process, **kwargs)
        if is_main_process:
            copy_pipeline_files(files, save_directory)

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
            merges_file = _installed_openai_merges_file()
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
    def from_clip(cls, name_or_path: str | Path, **config_kwargs) -> Clip4StrForSceneTextRecognition:
        """Start from a transformers `CLIPModel` checkpoint (Hub id or local folder): both towers and projections
        come from CLIP, the decoders are new, and the official freezing applies (`text_freeze_nlayer`).

        The CLIP BPE merges for the cross-modal branch are read from the checkpoint's tokenizer files
        (`tokenizer.json`, or `vocab.json` + `merges.txt`), else from an installed open-clip-torch.
        Keyword arguments set [`Clip4StrConfig`] fields (e.g. `charset`, `max_label_length`).
        """
        from transformers import CLIPModel
        from transformers.utils import cached_file

        clip = CLIPModel.from_pretrained(name_or_path)
        config = Clip4StrConfig(
            vision_config=clip.config.vision_config.to_dict(),
            text_config=clip.config.text_config.to_dict(),
            projection_dim=clip.config.projection_dim,
            **config_kwargs,
        )
        model = cls(config)
        clip_weights = {k: v for k, v in clip.state_dict().items() if k != "logit_scale"}
        result = model.load_state_dict(clip_weights, strict=False)
        if result.unexpected_keys:
            raise ValueError(f"{name_or_path} has weights CLIP4STR does not use: {result.unexpected_keys}")

        def tokenizer_file(name: str) -> str | None:
            return cached_file(name_or_path, name, _raise_exceptions_for_missing_entries=False)

        if tokenizer_json := tokenizer_file("tokenizer.json"):
            merges, vocab = read_tokenizer_merges(tokenizer_json)
        elif (vocab_json := tokenizer_file("vocab.json")) and (merges_txt := tokenizer_file("merges.txt")):
            vocab = json.loads(Path(vocab_json).read_text(encoding="utf-8"))
            lines = Path(merges_txt).read_text(encoding="utf-8").splitlines()
            merges = [tuple(line.split()) for line in lines if line and not line.startswith("#version")]
        elif merges_file := _installed_openai_merges_file():
            merges, vocab = read_openai_clip_merges(merges_file)
        else:
            raise FileNotFoundError(
                f"{name_or_path} has no tokenizer files and open-clip-torch is not installed: CLIP's BPE merges "
                "are needed by the cross-modal branch"
            )
        model.caption_tokenizer.load_merges(merges, vocab)
        return model

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

    def build_cross_memory(
        self, visual_logits: torch.Tensor, image_memory: torch.Tensor, early_exit: bool = True
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Image memory followed by the projected CLIP text tokens of the visual prediction (all positions,
        padding included: the official cross-attention has no padding mask).

        Returns the memory and `(caption_ids, text_features)`.
        """
        caption_ids, text_features = self.encode_predicted_captions(visual_logits, early_exit)
        if self.config.image_detach:
            image_memory = image_memory.detach()
        memory = torch.cat([image_memory, text_features.to(image_memory.dtype)], dim=1)
        return memory, (caption_ids, text_features)

    def encode_predicted_captions(
        self,
        visual_logits: torch.Tensor,
        early_exit: bool = True,
        previous_captions: tuple[torch.Tensor, torch.Tensor] | None = None,
        deduplicate: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`(caption_ids, text_features)` of the visual prediction.

        The text tower is the largest part of decoding at B/16, and the same ids give the same features, so two
        data-dependent shortcuts skip rows (both need the host to see the ids: not for static shapes). Given
        the previous call's pair, only the samples whose caption changed are encoded — after a refinement most
        captions are unchanged. With `deduplicate`, identical captions in the batch are encoded once.
        """
        caption_ids = self.caption_tokenizer(visual_logits.detach().argmax(dim=-1), early_exit=early_exit)
        if previous_captions is None:
            pending = torch.arange(caption_ids.shape[0], device=caption_ids.device)
            text_features = None
        else:
            previous_ids, text_features = previous_captions
            pending = (caption_ids != previous_ids).any(dim=1).nonzero().squeeze(1)
            if not pending.numel():
                return caption_ids, text_features
        if deduplicate:
            unique_ids, inverse = torch.unique(caption_ids[pending], dim=0, return_inverse=True)
            encoded = self.encode_captions(unique_ids)[inverse]
        else:
            encoded = self.encode_captions(caption_ids[pending])
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
            cross_memory, _ = self.build_cross_memory(visual_logits, image_memory)
            cross_logits, _ = self.cross_decoder(
                context, cross_memory, query_mask=query_mask, content_mask=content_mask
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

    # -- inference -----------------------------------------------------------------------------------------

    def _autoregressive(
        self,
        decoder: Clip4StrDecoder,
        memory: torch.Tensor | list[tuple[torch.Tensor, torch.Tensor]],
        context: torch.Tensor,
        num_steps: int,
        stop_at_eos: bool,
        use_cache: bool,
    ) -> torch.Tensor:
        """Greedy decoding of `num_steps` positions, one query per step; writes each prediction into `context`
        (which starts with [B]) and returns the logits of the steps run.

        `use_cache=False` is the official order of work, kept as the reference: the whole prefix goes through
        the decoder again and the memory is re-projected at every step. With the cache, `memory` is the
        decoder's `project_memory` keys/values, projected once by the caller, and every step only embeds its new
        context token.
        """
        eos_id = self.config.eos_id
        causal = torch.triu(torch.full((num_steps, num_steps), float("-inf"), device=context.device), 1)
        if use_cache:
            memory_key_values = memory
            # Without early stop the loop is static: attend over the whole preallocated cache, future masked.
            cache = Clip4StrDecoderCache(
                decoder, context.shape[0], num_steps, memory_key_values[0][0], full=not stop_at_eos
            )
        steps = []
        for step in range(num_steps):
            if use_cache:
                key_mask = None if stop_at_eos else causal[step][None, None, None, :]
                logits = decoder.step(context[:, step : step + 1], step, memory_key_values, cache, key_mask)
            else:
                queries = decoder.pos_queries[:, step : step + 1].expand(context.shape[0], -1, -1)
                logits, _ = decoder(
                    context[:, : step + 1],
                    memory,
                    queries=queries,
                    content_mask=causal[: step + 1, : step + 1],
                )
            steps.append(logits)
            if step + 1 < num_steps:
                context[:, step + 1] = logits[:, 0].argmax(-1)
                if stop_at_eos and bool((context == eos_id).any(dim=-1).all()):
                    break
        return torch.cat(steps, dim=1)

    def decode(
        self, image_memory: torch.Tensor, use_cache: bool = True, fixed_steps: bool | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The official eval-mode decoding; returns `(cross_logits, visual_logits)`.

        1. visual decoder, autoregressive, stopping once every sample has produced [E];
        2. cross-modal decoder over the same number of steps, its memory built once from step 1;
        3. `refine_iters` cloze refinements of both decoders, the cross memory recomputed from the refined
           visual prediction.

        `use_cache=False` runs the official order of work (see `_autoregressive`), for reference. `fixed_steps`
        (default `config.decode_fixed_steps`) never stops early, so every shape is static (torch.compile, CUDA
        graphs, export); positions after [E] are padding for the refinement, so the outputs are the same.
        With the cache, each decoder projects the image memory's keys/values once for all its stages, and (not
        in the static mode) the text tower encodes each distinct caption once and none the refinement left
        unchanged.
        """
        config = self.config
        fixed_steps = config.decode_fixed_steps if fixed_steps is None else fixed_steps
        batch = image_memory.shape[0]
        device = image_memory.device
        num_steps = config.max_label_length + 1
        causal = torch.triu(torch.full((num_steps, num_steps), float("-inf"), device=device), 1)
        visual_queries = self.visual_decoder.pos_queries[:, :num_steps].expand(batch, -1, -1)
        cross_queries = self.cross_decoder.pos_queries[:, :num_steps].expand(batch, -1, -1)
        bos = torch.full((batch, 1), config.bos_id, dtype=torch.long, device=device)
        # Skipping unchanged and repeated captions needs data-dependent batch subsets: not in the static mode,
        # and not in the reference order of work.
        reuse_captions = use_cache and not fixed_steps

        visual_memory = image_memory
        if use_cache:
            # Every stage of a decoder reads the same image memory: its keys/values are projected once per
            # decoder (contiguous, as every step streams them), and each cross-modal stage projects only the
            # text tokens of its caption.
            visual_memory = [
                (k.contiguous(), v.contiguous()) for k, v in self.visual_decoder.project_memory(image_memory)
            ]
            cross_image_memory = self.cross_decoder.project_memory(image_memory)

        def cross_memory_of(visual_logits, previous_captions=None):
            if not use_cache:
                return self.build_cross_memory(visual_logits, image_memory, not fixed_steps)
            captions = self.encode_predicted_captions(
                visual_logits, not fixed_steps, previous_captions, deduplicate=reuse_captions
            )
            text_features = captions[1].to(image_memory.dtype)
            return self.cross_decoder.extend_memory(cross_image_memory, text_features), captions

        if config.decode_ar:
            context = torch.full((batch, num_steps), config.pad_id, dtype=torch.long, device=device)
            context[:, 0] = config.bos_id
            visual_logits = self._autoregressive(
                self.visual_decoder, visual_memory, context, num_steps, not fixed_steps, use_cache
            )
            # The cross-modal decoder overwrites the same context with its own predictions, as officially.
            cross_memory, captions = cross_memory_of(visual_logits)
            cross_logits = self._autoregressive(
                self.cross_decoder, cross_memory, context, visual_logits.shape[1], False, use_cache
            )
            if fixed_steps:
                # The official loop would have stopped after the step at which every sample had emitted [E];
                # the cross-modal context beyond that step must stay out of the first refinement.
                is_eos = visual_logits.argmax(-1) == config.eos_id
                stopped_at = torch.where(is_eos.any(dim=1), is_eos.int().argmax(dim=1) + 1, num_steps).max()
                beyond_stop = torch.arange(num_steps, device=device)[None, :] >= stopped_at
        else:
            visual_logits, _ = self.visual_decoder(bos, visual_memory, queries=visual_queries)
            cross_memory, captions = cross_memory_of(visual_logits)
            cross_logits, _ = self.cross_decoder(bos, cross_memory, queries=cross_queries)

        # Cloze mask: each position sees the whole context except the character it is asked to predict. The
        # official code edits the shared query/content mask in place, so the content stream gets it too.
        cloze = causal.masked_fill(torch.ones_like(causal, dtype=torch.bool).triu(2), 0.0)

        def refine(decoder, previous_logits, memory, queries, extra_padding=None):
            context = torch.cat([bos, previous_logits[:, :-1].argmax(-1)], dim=1)
            padding = (context == config.eos_id).cumsum(-1) > 0
            if extra_padding is not None:
                padding = padding | extra_padding
            length = context.shape[1]
            logits, _ = decoder(
                context,
                memory,
                queries=queries,
                query_mask=_additive_mask(cloze[:, :length], padding),
                content_mask=_additive_mask(cloze[:length, :length], padding),
            )
            return logits

        for iteration in range(config.refine_iters):
            visual_logits = refine(self.visual_decoder, visual_logits, visual_memory, visual_queries)
            cross_memory, captions = cross_memory_of(visual_logits, captions if reuse_captions else None)
            first_fixed = fixed_steps and config.decode_ar and iteration == 0
            cross_logits = refine(
                self.cross_decoder,
                cross_logits,
                cross_memory,
                cross_queries,
                beyond_stop if first_fixed else None,
            )
        return cross_logits, visual_logits

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
    "Clip4StrCaptionTokenizer",
    "Clip4StrForSceneTextRecognition",
    "Clip4StrOutput",
    "Clip4StrPreTrainedModel",
]
