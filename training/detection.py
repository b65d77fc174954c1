"""Detector (TCM with a DBNet, PAN or FCENet head) training task for the Accelerate loop (`training/loop.py`).

YAML sections read here:

    model:
      preset: tiny              # a TcmConfig preset (random initialisation) ...
      from_clip: PATH           # ... or both towers from an OpenAI CLIP ResNet file (RN50.pt; with preset)
      from_pretrained: PATH     # ... or fine-tune a TCM folder
      config: {}                # TcmConfig fields (head_type, layers, width, freeze_text_encoder, ...)
    processor: {}               # TcmImageProcessor options (size, post_processing, ...) used for evaluation;
                                # its head_type (which targets to build) is always the model's
    data:
      train: {source: synthetic, num_samples: 100000, seed: 0, scene: {...}}   # or icdar / jsonl / hub
      eval: {source: synthetic, num_samples: 100, seed: 1000}
      augment: {crop_size: [640, 640], ...}   # SceneAugment fields; false: no augmentation (only resizing)
      eval_batch_size: 8
      shuffle_buffer: 0

Sources: `synthetic` (`num_samples`, `seed`, `samples_per_shard`, `scene`: SyntheticSceneConfig fields,
`text`: TextSampling fields), `icdar` (`images`, `ground_truth`, `num_points`), `jsonl` (`paths`), `hub`
(`dataset`, `split`, `image_column`, `polygons_column`, `texts_column`, `ignore_column`, `config_name`).

Optimiser groups follow the official fine-tuning recipe: the image encoder (backbone) learns at
`optimizer.learning_rate`, everything else at `learning_rate * decoder_lr_multiplier` (the recipe's backbone
x0.1 is learning_rate 1e-5 with multiplier 10); a frozen text encoder is left out, and normalisation gains and
biases get no weight decay (the recipe's `norm_decay_mult=0`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import IterableDataset

from scenetext.data.augment_detection import SceneAugment
from scenetext.data.collators import STORED_ORIENTATION, detection_batch
from scenetext.data.hub import hub_detection_dataset
from scenetext.data.icdar_folder import icdar_detection_dataset
from scenetext.data.jsonl import jsonl_detection_dataset
from scenetext.data.synthetic import SyntheticSceneConfig, synthetic_scene_dataset
from scenetext.data.synthetic_text import TextSampling
from scenetext.evaluation.metrics.detection import TextRegions, score_detection
from scenetext.modeling.checkpoints import load_foreign_checkpoint
from scenetext.modeling.tcm import TcmConfig, TcmForSceneTextDetection
from scenetext.modeling.tcm.configuration_tcm import TCM_PRESETS
from scenetext.pipelines.image_loading import load_rgb_image
from scenetext.processors.tcm import TcmImageProcessor

from .config import TrainingConfig, check_options, dataclass_from_mapping, signature_keys, variant_by
from .loop import backbone_and_head_groups, sample_seed
from .task import SourcedTask, with_mixtures

# The YAML sections above, checked when the config is loaded (`training/config.py`).
_SOURCE = variant_by(
    "source",
    {
        "synthetic": {
            **signature_keys(synthetic_scene_dataset, supplied=("config",)),
            "scene": SyntheticSceneConfig,
            "text": TextSampling,
        },
        "icdar": signature_keys(icdar_detection_dataset, supplied=("corrupt_records",)),
        "jsonl": signature_keys(jsonl_detection_dataset, supplied=("corrupt_records",)),
        "hub": signature_keys(hub_detection_dataset, supplied=("corrupt_records",)),
    },
)


def _augment_options(value: Any, key: str) -> Any:
    """`data.augment`: true/false, or SceneAugment fields."""
    return value if isinstance(value, bool) else check_options(value, SceneAugment, key)


CONFIG_SCHEMA = {
    "model": {"preset": str, "from_clip": str, "from_pretrained": str, "config": TcmConfig},
    "processor": signature_keys(TcmImageProcessor.__init__, supplied=("self", "kwargs")),
    "data": {
        "train": with_mixtures(_SOURCE),
        "eval": _SOURCE,
        "augment": _augment_options,
        "eval_batch_size": int,
        "shuffle_buffer": int,
    },
}


def load_openai_clip_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The weights of an OpenAI CLIP ResNet file: the released TorchScript archive (`RN50.pt`), a saved state
    dict, or a safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"model.from_clip: no CLIP checkpoint at {path} (expected e.g. OpenAI's RN50.pt)"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    try:
        return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
    except RuntimeError:  # not TorchScript: a plain state dict
        state = load_foreign_checkpoint(path)
    if not isinstance(state, dict):
        raise ValueError(f"model.from_clip: {path} holds a {type(state).__name__}, expected a state dict")
    return state


def tcm_parameter_groups(
    model: torch.nn.Module, learning_rate: float, weight_decay: float, head_lr_multiplier: float
) -> list[dict[str, Any]]:
    """Backbone (image encoder) at `learning_rate`, the rest at `learning_rate * head_lr_multiplier`; each with
    and without weight decay (1-d parameters: norms and biases). Frozen parameters are left out."""
    return backbone_and_head_groups(
        model,
        learning_rate,
        weight_decay,
        head_lr_multiplier,
        lambda name: name.startswith("image_encoder."),
        lambda name, parameter: parameter.ndim < 2,
    )


class DetectionTask(SourcedTask):
    metric_name = "hmean"
    logged_scores = ("hmean", "precision", "recall")

    def __init__(self, config: TrainingConfig):
        super().__init__(config)
        self.processor = TcmImageProcessor(**dict(config.processor))
        augment = self.data.get("augment", {})
        if augment is False:
            self.augment = None
        else:
            self.augment = dataclass_from_mapping(
                SceneAugment, {} if augment is True else augment, "data.augment"
            )

    # -- model ---------------------------------------------------------------------------------------------

    def build_model(self) -> TcmForSceneTextDetection:
        model = self._build_model()
        # The targets follow the head (DB maps, PAN kernels or FCENet level maps), and so do the defaults of the
        # normalisation and test scale (the PAN and FCENet configs' own).
        self.processor = TcmImageProcessor(
            **{**dict(self.config.processor), "head_type": model.config.head_type}
        )
        return model

    def _build_model(self) -> TcmForSceneTextDetection:
        options = self.config.model
        overrides = dict(options.get("config", {}))
        if "from_pretrained" in options:
            return TcmForSceneTextDetection.from_pretrained(options["from_pretrained"], **overrides)
        if "from_clip" in options:
            config = TcmConfig.from_preset(options.get("preset", "rn50"), **overrides)
            state = load_openai_clip_state_dict(options["from_clip"])
            return TcmForSceneTextDetection.from_clip(config, openai_state_dict=state)
        preset = options.get("preset", "tiny")
        if preset not in TCM_PRESETS:
            raise ValueError(f"model.preset must be one of {sorted(TCM_PRESETS)}, got {preset!r}")
        if "text_config" in overrides:
            # A partial text tower override changes some sizes of the preset's, not all of them.
            overrides["text_config"] = {
                **TCM_PRESETS[preset].get("text_config", {}),
                **overrides["text_config"],
            }
        return TcmForSceneTextDetection(TcmConfig.from_preset(preset, **overrides))

    def parameter_groups(self, model: torch.nn.Module, learning_rate: float) -> list[dict[str, Any]]:
        options = self.config.optimizer
        return tcm_parameter_groups(model, learning_rate, options.weight_decay, options.decoder_lr_multiplier)

    # -- data ----------------------------------------------------------------------------------------------

    def _source(self, spec: dict[str, Any], where: str) -> IterableDataset:
        spec = dict(spec)
        source = spec.pop("source", None)
        if source == "synthetic":
            scene_options = dict(spec.pop("scene", {}))
            if "text" in spec:
                scene_options["text"] = dataclass_from_mapping(
                    TextSampling, spec.pop("text"), f"{where}.text"
                )
            scene = dataclass_from_mapping(SyntheticSceneConfig, scene_options, f"{where}.scene")
            return synthetic_scene_dataset(
                spec.pop("num_samples"), seed=spec.pop("seed", 0), config=scene, **spec
            )
        if source == "icdar":
            return icdar_detection_dataset(spec.pop("images"), corrupt_records=self.corrupt_records, **spec)
        if source == "jsonl":
            return jsonl_detection_dataset(spec.pop("paths"), corrupt_records=self.corrupt_records, **spec)
        if source == "hub":
            return hub_detection_dataset(spec.pop("dataset"), corrupt_records=self.corrupt_records, **spec)
        raise ValueError(f"{where}.source must be synthetic, icdar, jsonl or hub, got {source!r}")

    def collate(self, samples: list[dict], seed: int) -> dict[str, Any] | None:
        """Augmentation seeded by (seed, sample) -- crops of one size, not resized again -- then DB targets.
        Without augmentation the processor resizes each scene to its test scale."""
        if not samples:
            return None
        seeds = [sample_seed(sample, seed) for sample in samples]
        return detection_batch(samples, self.processor, self.augment, seeds)

    # -- evaluation ----------------------------------------------------------------------------------------

    @torch.no_grad()
    def score(self, model: torch.nn.Module, samples: IterableDataset):
        """Detect text in every scene at the processor's test scale and its post-processing; match with the
        ICDAR 2015 IoU protocol (all detections the post-processing keeps, no score sweep)."""
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        batch_size = int(self.data.get("eval_batch_size", 8))
        pairs: list[tuple[TextRegions, TextRegions]] = []
        batch: list[dict] = []

        def flush() -> None:
            inputs = self.processor(
                images=[load_rgb_image(sample["image"], **STORED_ORIENTATION) for sample in batch]
            )
            outputs = model(pixel_values=inputs["pixel_values"].to(device))
            results = self.processor.post_process_text_detection(
                outputs,
                target_sizes=inputs["original_sizes"],
                resized_sizes=inputs["resized_sizes"],
            )
            for sample, result in zip(batch, results, strict=True):
                ground_truth = TextRegions(
                    [np.asarray(p, dtype=float).reshape(-1).tolist() for p in sample["polygons"]],
                    [
                        "###" if flag else text
                        for flag, text in zip(sample["ignore"], sample["texts"], strict=True)
                    ],
                )
                detected = TextRegions(
                    [p.reshape(-1).tolist() for p in result["polygons"]], scores=result["scores"].tolist()
                )
                pairs.append((ground_truth, detected))
            batch.clear()

        for sample in samples:
            batch.append(sample)
            if len(batch) == batch_size:
                flush()
        if batch:
            flush()
        model.train(was_training)
        if not pairs:
            raise ValueError("data.eval produced no scene: an empty set has no precision or recall")
        return score_detection(pairs)
