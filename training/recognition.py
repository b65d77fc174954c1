"""Recognizer (CLIP4STR) training task for the Accelerate loop (`training/loop.py`).

YAML sections read here:

    model:
      preset: tiny              # a Clip4StrConfig preset, random initialisation ...
      from_clip: PATH_OR_ID     # ... or both towers from a transformers CLIP checkpoint ...
      from_pretrained: PATH     # ... or fine-tune a CLIP4STR folder
      config: {}                # Clip4StrConfig fields (charset, max_label_length, decoder_num_heads, ...)
      sincos_position_init: 0.0 # > 0 (random initialisation only): start the ViT's position embeddings as
                                # 2-D sine-cosine codes of this amplitude instead of noise
    processor:
      image_mean: [...]         # default: CLIP's mean/std, the official training normalisation
      image_std: [...]
    data:
      train: {source: synthetic, num_samples: 100000, seed: 0, word: {...}}   # or lmdb / hub / mix, see below
      eval: {source: synthetic, num_samples: 500, seed: 1000}
      augment: true             # the official RandAugment
      eval_protocol: 36         # 36 | 62 | 94
      eval_batch_size: 64
      shuffle_buffer: 0         # > 0: shuffle the stream with a buffer of this size

Sources: `synthetic` (`num_samples`, `seed`, `word`: SyntheticWordConfig fields, `text`: TextSampling fields),
`lmdb` (`root`: one or more folders searched for data.mdb, `min_image_dim`), `hub` (`dataset`, `split`,
`image_column`, `text_column`, `config_name`), `folder` (`folder`: crops listed in its `labels.txt`, one
`file<TAB>label` per line); `data.train` may also be a mixture
`{source: mix, sources: [...], weights: [...]}` (see `SourcedTask`).
"""

from __future__ import annotations

from typing import Any

import torch
from datasets import IterableDataset

from scenetext.data.augment_recognition import WordCropRandAugment
from scenetext.data.collators import recognition_batch
from scenetext.data.hub import hub_recognition_dataset
from scenetext.data.labelled_folder import labelled_folder_dataset
from scenetext.data.lmdb import lmdb_recognition_dataset
from scenetext.data.synthetic import SyntheticWordConfig, synthetic_word_dataset
from scenetext.data.synthetic_text import TextSampling
from scenetext.evaluation.metrics.recognition import RecognitionScores
from scenetext.evaluation.recognizer import crop_predictor, evaluate_recognition_samples
from scenetext.modeling.clip4str import Clip4StrConfig, Clip4StrForSceneTextRecognition
from scenetext.modeling.clip4str.convert_clip4str import build_processor
from scenetext.processors.clip4str import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, Clip4StrProcessor

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
    },
    "processor": {"image_mean": list, "image_std": list},
    "data": {
        "train": with_mixtures(_SOURCE),
        "eval": _SOURCE,
        "augment": bool,
        "eval_protocol": int,
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
    greater_is_better = True
    logged_scores = ("accuracy", "one_minus_ned", "mean_confidence")

    def __init__(self, config: TrainingConfig):
        super().__init__(config)
        self.model_config = self._model_config()
        processor_options = config.processor
        self.processor: Clip4StrProcessor = build_processor(
            self.model_config,
            image_mean=tuple(processor_options.get("image_mean", OPENAI_CLIP_MEAN)),
            image_std=tuple(processor_options.get("image_std", OPENAI_CLIP_STD)),
        )
        self.augment = WordCropRandAugment() if self.data.get("augment", True) else None

    # -- model ---------------------------------------------------------------------------------------------

    def _model_config(self) -> Clip4StrConfig:
        options = self.config.model
        overrides = dict(options.get("config", {}))
        if "from_pretrained" in options:
            return Clip4StrConfig.from_pretrained(options["from_pretrained"], **overrides)
        if "from_clip" in options:
            from transformers import CLIPConfig

            return Clip4StrConfig.from_clip_config(
                CLIPConfig.from_pretrained(options["from_clip"]), **overrides
            )
        return Clip4StrConfig.from_preset(options.get("preset", "tiny"), **overrides)

    def build_model(self) -> Clip4StrForSceneTextRecognition:
        options = self.config.model
        overrides = dict(options.get("config", {}))
        if "from_pretrained" in options:
            return Clip4StrForSceneTextRecognition.from_pretrained(options["from_pretrained"], **overrides)
        if "from_clip" in options:
            return Clip4StrForSceneTextRecognition.from_clip(options["from_clip"], **overrides)
        model = Clip4StrForSceneTextRecognition(self.model_config)
        if amplitude := float(options.get("sincos_position_init", 0.0)):
            embeddings = model.vision_model.embeddings
            codes = sincos_position_codes(embeddings.grid, embeddings.embed_dim)
            with torch.no_grad():
                embeddings.position_embedding.weight[1:] = amplitude * codes
        return model

    def parameter_groups(self, model: torch.nn.Module, learning_rate: float) -> list[dict[str, Any]]:
        options = self.config.optimizer
        return clip4str_parameter_groups(
            model, learning_rate, options.weight_decay, options.decoder_lr_multiplier
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
        if source == "lmdb":
            return lmdb_recognition_dataset(
                spec.pop("root"), charset, max_length, corrupt_records=self.corrupt_records, **spec
            )
        if source == "hub":
            return hub_recognition_dataset(
                spec.pop("dataset"),
                charset=charset,
                max_label_length=max_length,
                corrupt_records=self.corrupt_records,
                **spec,
            )
        if source == "folder":
            return labelled_folder_dataset(
                spec.pop("folder"),
                charset=charset,
                max_label_length=max_length,
                corrupt_records=self.corrupt_records,
                **spec,
            )
        raise ValueError(f"{where}.source must be synthetic, lmdb, hub or folder, got {source!r}")

    def collate(self, samples: list[dict], seed: int) -> dict[str, torch.Tensor] | None:
        """Official label preprocessing, augmentation seeded by (seed, sample), then the processor."""
        seeds = [sample_seed(sample, seed) for sample in samples]
        return recognition_batch(samples, self.processor, self.augment, seeds)

    # -- evaluation ----------------------------------------------------------------------------------------

    def score(self, model: torch.nn.Module, samples: IterableDataset) -> RecognitionScores:
        return evaluate_recognition_samples(
            crop_predictor(model, self.processor),
            samples,
            protocol=self.data.get("eval_protocol", 36),
            batch_size=int(self.data.get("eval_batch_size", 64)),
            max_label_length=self.model_config.max_label_length,
            description="eval",
        )
