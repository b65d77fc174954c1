"""Recognizer (CLIP4STR) training task for the Accelerate loop (`training/loop.py`).

YAML sections read here:

    model:
      preset: tiny              # a Clip4StrConfig preset, random initialisation ...
      from_clip: PATH_OR_ID     # ... or both towers from a transformers CLIP checkpoint ...
      from_pretrained: PATH     # ... or fine-tune a CLIP4STR folder
      config: {}                # Clip4StrConfig fields (charset, max_label_length, decoder_num_heads, ...);
                                # a charset other than from_pretrained's resizes it (`resize_charset`)
      charset_from_data: false  # true: the charset is every character of the data.train labels
      charset_scan_limit: 1000000  # labels read per source (lmdb, hub, folder; a synthetic source gives its
                                # text.charset, a mix each of its sources')
      peft: {method: lora, r: 8}  # optional: train a PEFT adapter only (`training/adapters.py`)
      sincos_position_init: 0.0 # > 0 (random initialisation only): start the ViT's position embeddings as
                                # 2-D sine-cosine codes of this amplitude instead of noise
    processor:
      image_mean: [...]         # default: CLIP's mean/std, the official training normalisation
      image_std: [...]
      normalize_unicode: true   # labels' Unicode step: true = the official NFKD-to-ASCII folding (it erases
                                # every non-ASCII character); NFC / NFKC / NFD / NFKD / none for other scripts
    data:
      train: {source: synthetic, num_samples: 100000, seed: 0, word: {...}}   # or lmdb / hub / mix, see below
      eval: {source: synthetic, num_samples: 500, seed: 1000}
      augment: true             # the official RandAugment
      eval_protocol: 36         # 36 | 62 | 94 | full (the model's charset, case-sensitive)
      eval_normalize_unicode: null  # the evaluation's Unicode step; default: the protocol's (36/62/94:
                                # ASCII folding; full: processor.normalize_unicode)
      eval_batch_size: 64
      shuffle_buffer: 0         # > 0: shuffle the stream with a buffer of this size

Sources: `synthetic` (`num_samples`, `seed`, `word`: SyntheticWordConfig fields, `text`: TextSampling fields),
`lmdb` (`root`: one or more folders searched for data.mdb, `min_image_dim`), `hub` (`dataset`, `split`,
`image_column`, `text_column`, `config_name`), `folder` (`folder`: crops listed in its `labels.txt`, one
`file<TAB>label` per line); `data.train` may also be a mixture
`{source: mix, sources: [...], weights: [...]}` (see `SourcedTask`).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain, islice
from pathlib import Path
from typing import Any

import torch
from datasets import IterableDataset

from scenetext.data.augment_recognition import WordCropRandAugment
from scenetext.data.collators import recognition_batch
from scenetext.data.hub import hub_recognition_dataset
from scenetext.data.labelled_folder import labelled_folder_dataset, read_labels_file
from scenetext.data.lmdb import lmdb_recognition_dataset, read_lmdb_labels
from scenetext.data.synthetic import SyntheticWordConfig, synthetic_word_dataset
from scenetext.data.synthetic_text import TextSampling
from scenetext.evaluation.metrics.recognition import FULL_PROTOCOL, RecognitionScores
from scenetext.evaluation.recognizer import crop_predictor, evaluate_recognition_samples
from scenetext.modeling.clip4str import CHARSET_94, Clip4StrConfig, Clip4StrForSceneTextRecognition
from scenetext.modeling.clip4str.convert_clip4str import build_processor
from scenetext.processors.clip4str import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    Clip4StrProcessor,
    charset_from_labels,
)
from scenetext.processors.clip4str.tokenization_clip4str import unicode_normalization

from .adapters import add_adapter, base_model
from .config import TrainingConfig, dataclass_from_mapping, signature_keys, variant_by
from .loop import backbone_and_head_groups, sample_seed
from .task import SourcedTask, with_mixtures

# The YAML sections above, checked when the config is loaded (`training/config.py`).
_SOURCE = variant_by(
    "source",
    {
        "synthetic": {
            **signature_keys(synthetic_word_dataset, supplied=("config",)),
            "word": SyntheticWordConfig,
            "text": TextSampling,
        },
        "lmdb": {
            "root": (str, list),
            **signature_keys(
                lmdb_recognition_dataset, supplied=("roots", "charset", "max_label_length", "corrupt_records")
            ),
        },
        "hub": signature_keys(
            hub_recognition_dataset, supplied=("charset", "max_label_length", "corrupt_records")
        ),
        "folder": signature_keys(
            labelled_folder_dataset, supplied=("charset", "max_label_length", "corrupt_records")
        ),
    },
)
CONFIG_SCHEMA = {
    "model": {
        "preset": str,
        "from_clip": str,
        "from_pretrained": str,
        "config": Clip4StrConfig,
        "sincos_position_init": float,
        "charset_from_data": bool,
        "charset_scan_limit": int,
        "peft": dict,
    },
    "processor": {"image_mean": list, "image_std": list, "normalize_unicode": (bool, str)},
    "data": {
        "train": with_mixtures(_SOURCE),
        "eval": _SOURCE,
        "augment": bool,
        "eval_protocol": (int, str),
        "eval_normalize_unicode": (bool, str),
        "eval_batch_size": int,
        "shuffle_buffer": int,
    },
}


def _shared_encoder_parameters(name: str) -> bool:
    return name.startswith(("vision_model.", "visual_projection.", "text_model.", "text_projection."))


def _no_weight_decay(name: str, parameter: torch.Tensor) -> bool:
    # The official (open_clip) rule: gains, biases, position queries and the character embedding.
    return parameter.ndim < 2 or "pos_queries" in name or "text_embed" in name or "bias" in name


def clip4str_parameter_groups(
    model: torch.nn.Module, learning_rate: float, weight_decay: float, decoder_lr_multiplier: float
) -> list[dict[str, Any]]:
    """The official four groups: CLIP towers / decoders, each with and without weight decay; the decoders
    learn `decoder_lr_multiplier` (19) times faster. Frozen parameters are left out."""
    return backbone_and_head_groups(
        model,
        learning_rate,
        weight_decay,
        decoder_lr_multiplier,
        _shared_encoder_parameters,
        _no_weight_decay,
    )


def sincos_position_codes(grid: tuple[int, int], width: int) -> torch.Tensor:
    """`(rows * columns, width)` 2-D sine-cosine position codes (MAE's) of a `(rows, columns)` patch grid, in
    patch order.

    Why: from random initialisation, noise position embeddings give the decoder nothing smooth to align its
    character queries with, and a from-scratch recognizer sits at its language-prior loss for thousands of
    steps; smooth codes (half the channels for x, half for y) are a start it can learn from.
    """
    if width % 4:
        raise ValueError(f"sine-cosine position codes need a width divisible by 4, got {width}")
    frequencies = 1.0 / 10000 ** (torch.arange(width // 4, dtype=torch.float64) / (width // 4))
    ys, xs = torch.meshgrid(
        torch.arange(grid[0], dtype=torch.float64), torch.arange(grid[1], dtype=torch.float64), indexing="ij"
    )
    angles_x = xs.reshape(-1, 1) * frequencies
    angles_y = ys.reshape(-1, 1) * frequencies
    codes = torch.cat([angles_x.sin(), angles_x.cos(), angles_y.sin(), angles_y.cos()], dim=1)
    return codes.float()


class RecognitionTask(SourcedTask):
    metric_name = "accuracy"
    logged_scores = ("accuracy", "one_minus_ned", "mean_confidence")

    def __init__(self, config: TrainingConfig):
        super().__init__(config)
        self.model_config = self._model_config()
        processor_options = config.processor
        self.normalize_unicode = processor_options.get("normalize_unicode", True)
        _check_normalization_keeps_charset(self.model_config.charset, self.normalize_unicode)
        self.processor: Clip4StrProcessor = build_processor(
            self.model_config,
            image_mean=tuple(processor_options.get("image_mean", OPENAI_CLIP_MEAN)),
            image_std=tuple(processor_options.get("image_std", OPENAI_CLIP_STD)),
            normalize_unicode=self.normalize_unicode,
        )
        self.augment = WordCropRandAugment() if self.data.get("augment", True) else None

    # -- model ---------------------------------------------------------------------------------------------

    def _model_config(self) -> Clip4StrConfig:
        options = self.config.model
        overrides = dict(options.get("config", {}))
        if options.get("charset_from_data"):
            if "charset" in overrides:
                raise ValueError(
                    "model.charset_from_data and model.config.charset both set the charset; keep one"
                )
            overrides["charset"] = self._charset_from_data()
        if "from_pretrained" in options:
            return Clip4StrConfig.from_pretrained(_local_path(options["from_pretrained"]), **overrides)
        if "from_clip" in options:
            from transformers import CLIPConfig

            return Clip4StrConfig.from_clip_config(
                CLIPConfig.from_pretrained(options["from_clip"]), **overrides
            )
        return Clip4StrConfig.from_preset(options.get("preset", "tiny"), **overrides)

    def build_model(self) -> torch.nn.Module:
        """The model to train: `_new_model`, wrapped with a PEFT adapter when `model.peft` is set."""
        model, charset_changed = self._new_model()
        if "peft" in self.config.model:
            return add_adapter(model, self.config.model["peft"], charset_changed)
        return model

    def _new_model(self) -> tuple[Clip4StrForSceneTextRecognition, bool]:
        """The model before any adapter, and whether a pretrained one was resized onto a new charset."""
        options = self.config.model
        overrides = dict(options.get("config", {}))
        charset = self.model_config.charset
        if "from_pretrained" in options:
            # Loaded with its own charset, then resized: the known characters keep their rows.
            overrides.pop("charset", None)
            model = Clip4StrForSceneTextRecognition.from_pretrained(
                _local_path(options["from_pretrained"]), **overrides
            )
            changed = model.config.charset != charset
            model.resize_charset(charset)
            return model, changed
        overrides["charset"] = charset
        if "from_clip" in options:
            return Clip4StrForSceneTextRecognition.from_clip(options["from_clip"], **overrides), False
        model = Clip4StrForSceneTextRecognition(self.model_config)
        if amplitude := float(options.get("sincos_position_init", 0.0)):
            embeddings = model.vision_model.embeddings
            codes = sincos_position_codes(embeddings.grid, embeddings.embed_dim)
            with torch.no_grad():
                embeddings.position_embedding.weight[1:] = amplitude * codes
        return model, False

    def parameter_groups(self, model: torch.nn.Module, learning_rate: float) -> list[dict[str, Any]]:
        options = self.config.optimizer
        # Under a PEFT wrapper the names that sort parameters into groups are the plain model's.
        return clip4str_parameter_groups(
            base_model(model), learning_rate, options.weight_decay, options.decoder_lr_multiplier
        )

    # -- data ----------------------------------------------------------------------------------------------

    def _source(self, spec: dict[str, Any], where: str) -> IterableDataset:
        spec = dict(spec)
        source = spec.pop("source", None)
        charset = self.model_config.charset
        max_length = self.model_config.max_label_length
        if source == "synthetic":
            text = dataclass_from_mapping(TextSampling, spec.pop("text", None), f"{where}.text")
            word = dataclass_from_mapping(
                SyntheticWordConfig, {**spec.pop("word", {}), "text": text}, f"{where}.word"
            )
            return synthetic_word_dataset(
                spec.pop("num_samples"), seed=spec.pop("seed", 0), config=word, **spec
            )
        spec.setdefault("normalize_unicode", self.normalize_unicode)
        if source == "lmdb":
            return lmdb_recognition_dataset(
                spec.pop("root"), charset, max_length, corrupt_records=self.corrupt_records, **spec
            )
        # Sources named by one location (a dataset id, a folder) that take the charset rules as keywords.
        located = {"hub": (hub_recognition_dataset, "dataset"), "folder": (labelled_folder_dataset, "folder")}
        if source in located:
            build, location = located[source]
            return build(
                spec.pop(location),
                charset=charset,
                max_label_length=max_length,
                corrupt_records=self.corrupt_records,
                **spec,
            )
        raise ValueError(f"{where}.source must be synthetic, lmdb, hub or folder, got {source!r}")

    def _charset_from_data(self) -> str:
        """Every character of the `data.train` labels after the processor's normalisation, the characters of
        the checkpoint being fine-tuned first in its order (`charset_from_labels`)."""
        options = self.config.model
        base_charset = (
            Clip4StrConfig.from_pretrained(_local_path(options["from_pretrained"])).charset
            if "from_pretrained" in options
            else CHARSET_94
        )
        limit = int(options.get("charset_scan_limit", 1_000_000))
        labels = self._training_labels(dict(self.data.get("train") or {}), limit)
        normalize_unicode = self.config.processor.get("normalize_unicode", True)
        charset = charset_from_labels(labels, base_charset, normalize_unicode=normalize_unicode)
        if not charset:
            raise ValueError("model.charset_from_data: the data.train labels hold no character")
        return charset

    def _training_labels(self, spec: dict[str, Any], limit: int) -> Iterable[str]:
        """The raw labels of one `data.train` source (at most `limit`), read without decoding an image. A
        synthetic source draws from its `text.charset`, which then stands for its labels."""
        source = spec.pop("source", None)
        if source == "mix":
            return chain.from_iterable(self._training_labels(dict(item), limit) for item in spec["sources"])
        if source == "synthetic":
            return [dataclass_from_mapping(TextSampling, spec.get("text"), "data.train.text").charset]
        if source == "lmdb":
            return read_lmdb_labels(spec["root"], limit)
        if source == "folder":
            return [crop.label for crop in read_labels_file(spec["folder"])[:limit]]
        if source == "hub":
            spec.pop("normalize_unicode", None)
            rows = hub_recognition_dataset(spec.pop("dataset"), **spec).select_columns(["label"])
            return (row["label"] for row in islice(rows, limit))
        raise ValueError(f"model.charset_from_data cannot read the labels of a {source!r} source")

    def collate(self, samples: list[dict], seed: int) -> dict[str, torch.Tensor] | None:
        """Official label preprocessing, augmentation seeded by (seed, sample), then the processor."""
        seeds = [sample_seed(sample, seed) for sample in samples]
        return recognition_batch(samples, self.processor, self.augment, seeds)

    # -- evaluation ----------------------------------------------------------------------------------------

    def score(self, model: torch.nn.Module, samples: IterableDataset) -> RecognitionScores:
        protocol = str(self.data.get("eval_protocol", 36))
        full = protocol == FULL_PROTOCOL
        normalize_unicode = self.data.get("eval_normalize_unicode", self.normalize_unicode if full else None)
        return evaluate_recognition_samples(
            crop_predictor(model, self.processor),
            samples,
            protocol=protocol,
            batch_size=int(self.data.get("eval_batch_size", 64)),
            max_label_length=self.model_config.max_label_length,
            description="eval",
            charset=self.model_config.charset if full else None,
            normalize_unicode=normalize_unicode,
        )


def _local_path(name_or_path: str) -> str:
    """An existing folder as an absolute path, so that the adapters a run saves name their base model in a
    form that loads from any working directory; a Hub id as it is."""
    path = Path(name_or_path)
    return str(path.resolve()) if path.is_dir() else name_or_path


def _check_normalization_keeps_charset(charset: str, normalize_unicode: bool | str) -> None:
    """Refuse a run whose label normalisation would erase characters of its own charset: with the official
    ASCII folding no label can ever hold "ä" or "Ж", and the model would never be shown them."""
    if unicode_normalization(normalize_unicode) != "ascii":
        return
    erased = "".join(c for c in charset if not c.isascii())
    if erased:
        raise ValueError(
            f"the charset has non-ASCII characters ({erased!r}) but processor.normalize_unicode is the official "
            "NFKD-to-ASCII folding, which removes them from every label: set processor.normalize_unicode to "
            "NFC (or NFKC, NFD, NFKD, none)"
        )
