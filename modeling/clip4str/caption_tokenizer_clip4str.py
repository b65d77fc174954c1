"""The predicted caption of CLIP4STR's cross-modal branch as CLIP BPE ids, computed on tensors.

The cross-modal branch turns every prediction into CLIP BPE ids. Every caption character maps to a fixed
sequence of byte-level tokens (its UTF-8 bytes: one for ASCII, up to four for other scripts) and a class of
CLIP's pre-tokenizer regex (letter, number, other), so the whole tokenizer — the word split and the merges — can
run batched on the model's device, with the merge table stored in the weights. That keeps a checkpoint folder self-contained and decoding free of Python work per sample.

The merge table comes from CLIP's own files; the readers for them live here too.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_clip4str import Clip4StrConfig

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


def _byte_token_ids() -> list[int]:
    """CLIP's token id of each byte value 0..255 (its position in the byte-to-unicode table)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    order = printable + [byte for byte in range(256) if byte not in printable]
    ids = [0] * 256
    for position, byte in enumerate(order):
        ids[byte] = position
    return ids


def _regex_class(character: str) -> int:
    """The class of CLIP's pre-tokenizer regex: 0 letter (`\\p{L}`), 1 number (`\\p{N}`), 2 anything else."""
    category = unicodedata.category(character)
    return 0 if category.startswith("L") else 1 if category.startswith("N") else 2


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


def read_vocab_and_merges_files(
    vocab_json: str | Path, merges_txt: str | Path
) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """Read merges and vocabulary from the slow CLIP tokenizer's `vocab.json` and `merges.txt`."""
    vocab = json.loads(Path(vocab_json).read_text(encoding="utf-8"))
    lines = Path(merges_txt).read_text(encoding="utf-8").splitlines()
    merges = [tuple(line.split()) for line in lines if line and not line.startswith("#version")]
    return merges, vocab


def installed_openai_merges_file() -> Path | None:
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
    zero-padded to the context length, truncation keeping [EOT] in the last slot. Any script may be in the caption
    charset; two steps of CLIP's text cleaning are not reproduced, as they rewrite no character of an ordinary
    charset: ftfy's repairs (curly quotes, ligatures and full-width forms made plain) and a lower case of more
    than one character ("İ"), of which the first is kept.
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

        self.caption_charset = config.caption_charset
        self.set_charset(config.charset)
        self.apostrophe = _ascii_token_id("'", end_of_word=False)
        self.contraction_tokens = [
            [_ascii_token_id(c, False) for c in suffix] for suffix in _CLIP_CONTRACTIONS
        ]

    def set_charset(self, charset: str) -> None:
        """Read decoder ids of `charset` (`[E]`, the charset, `[B]`, `[P]`), as after
        `Clip4StrForSceneTextRecognition.resize_charset`."""
        self.charset = charset
        # Lookup tables derived from the config (not saved); `reset_lookup_tables` fills them, also after loading.
        # Per decoder id: the byte tokens of its caption character, -1-padded to the longest (columns), and the
        # character's regex class.
        device = self.bpe_pair_keys.device
        width = max([len(_caption_form(c, self.caption_charset).encode()) for c in charset] + [1])
        self.register_buffer(
            "byte_tokens_of_id",
            torch.empty(len(charset) + 3, width, dtype=torch.int64, device=device),
            persistent=False,
        )
        self.register_buffer(
            "class_of_id", torch.empty(len(charset) + 3, dtype=torch.int64, device=device), persistent=False
        )
        self.reset_lookup_tables()
        # The official caption is a *string* cut at the first "[E]", so the three characters "[", "E", "]"
        # predicted in a row end it just like the [E] token does.
        char_to_id = {char: index for index, char in enumerate(charset, start=1)}
        self.literal_eos_ids = [char_to_id[c] for c in "[E]"] if all(c in char_to_id for c in "[E]") else None

    @torch.no_grad()
    def reset_lookup_tables(self) -> None:
        byte_ids = _byte_token_ids()
        byte_tokens = torch.full_like(self.byte_tokens_of_id, -1, device="cpu")
        classes = torch.full_like(self.class_of_id, 2, device="cpu")
        for index, char in enumerate(self.charset, start=1):
            caption = _caption_form(char, self.caption_charset)
            if caption:
                encoded = [byte_ids[byte] for byte in caption.encode()]
                byte_tokens[index, : len(encoded)] = torch.tensor(encoded, device="cpu")
                classes[index] = _regex_class(caption)
        self.byte_tokens_of_id.copy_(byte_tokens)
        self.class_of_id.copy_(classes)

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

    def _cut_and_adapt(
        self, pred_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Byte tokens of each caption, left-aligned, with their characters' regex classes and whether each is a
        character's first byte; and the captions' lengths in bytes."""
        ends = pred_ids == self.eos_id
        if self.literal_eos_ids is not None and pred_ids.shape[1] >= 3:
            open_id, e_id, close_id = self.literal_eos_ids
            literal = (
                (pred_ids[:, :-2] == open_id) & (pred_ids[:, 1:-1] == e_id) & (pred_ids[:, 2:] == close_id)
            )
            ends[:, :-2] |= literal
        before_end = ends.cumsum(dim=1) == 0
        tokens = self.byte_tokens_of_id[pred_ids]  # (batch, steps, bytes per character)
        width = tokens.shape[2]
        keep = (before_end[:, :, None] & (tokens >= 0)).flatten(1)
        classes = self.class_of_id[pred_ids][:, :, None].expand(-1, -1, width).flatten(1)
        first_byte = (torch.arange(width, device=pred_ids.device) == 0).expand_as(tokens).flatten(1)
        tokens = tokens.flatten(1)
        # A stable sort on "dropped" moves the kept bytes to the front in their order.
        order = torch.sort((~keep).to(torch.uint8), dim=1, stable=True).indices
        return tokens.gather(1, order), classes.gather(1, order), first_byte.gather(1, order), keep.sum(dim=1)

    def _word_starts(
        self, tokens: torch.Tensor, char_class: torch.Tensor, first_byte: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """Where CLIP's regex starts a new piece: letter runs, single numbers, runs of other characters and the
        contractions 's 't 're 've 'm 'll 'd, which the regex tries first at the start of such a run. Pieces
        start at a character's first byte."""
        previous_class = F.pad(char_class[:, :-1], (1, 0), value=-1)
        starts = first_byte & ((char_class != previous_class) | (char_class == 1))
        punctuation_start = first_byte & (char_class == 2) & (previous_class != 2)
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
        # Under torch.export the check would read a buffer's values while tracing; the exporter checks it first.
        if not torch.compiler.is_exporting() and not self.has_merges:
            raise RuntimeError(
                "The CLIP BPE merges of the cross-modal branch are not loaded: load a CLIP4STR checkpoint, build "
                "the model with `from_clip`, or install open-clip-torch before creating a model from a config."
            )
        tokens, char_class, first_byte, lengths = self._cut_and_adapt(pred_ids)
        batch, length = tokens.shape
        valid = torch.arange(length, device=tokens.device)[None, :] < lengths[:, None]
        starts = self._word_starts(tokens, char_class, first_byte, valid)
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


def _caption_form(character: str, caption_charset: str) -> str:
    """What `character` becomes in a caption: the official charset adapter of the caption charset (case folded
    for a caseless charset, removed when outside it), then CLIP's lower-casing; "" when it is dropped."""
    lowercase_only = caption_charset == caption_charset.lower()
    uppercase_only = caption_charset == caption_charset.upper()
    adapted = character.lower() if lowercase_only else character.upper() if uppercase_only else character
    if len(adapted) != 1 or adapted not in caption_charset:
        return ""
    return adapted.lower()[:1]


__all__ = [
    "Clip4StrCaptionTokenizer",
    "clip_bpe_merge_table",
    "installed_openai_merges_file",
    "read_openai_clip_merges",
    "read_tokenizer_merges",
    "read_vocab_and_merges_files",
]
