"""Parameter-efficient fine-tuning of CLIP4STR with the `peft` library: LoRA (or another `peft` tuner of linear
layers) on the CLIP towers and the decoders, configured by the `model.peft` section of a training YAML:

    model:
      from_pretrained: assets/defaults/recognizer
      config: {charset: "0123456789abc...äöüß"}   # optional: a new charset (see `resize_charset`)
      peft:
        method: lora           # a peft tuner of linear layers (peft's `PeftType` names; tested: lora,
                               # loha, lokr, ia3)
        r: 8                   # every other key is an argument of that tuner's config class (`LoraConfig` ...)
        lora_alpha: 16
        target_modules: [q_proj, k_proj, v_proj, out_proj]   # the default: every attention projection

Only the adapter's weights train (and `modules_to_save`). When the run changes the charset, the decoders'
character embeddings and heads are added to `modules_to_save`: new characters need rows of their own, which no
low-rank update of the other layers can give. A run's `best/` and `last/` folders are then adapter folders
(`adapter_config.json`, `adapter_model.safetensors` and the processor, whose tokenizer holds the charset) that
`from_pretrained`, the pipelines and `PeftModel.from_pretrained` load on top of the base checkpoint named in
`adapter_config.json`; `merge_adapter` writes a plain model folder with the adapter folded in.

peft's prompt-learning methods (prompt, prefix and p-tuning) are not offered: they prepend virtual tokens to the
input embeddings of a language model that `peft` drives itself, and CLIP4STR's decoders read image memory
through their own decoding loop, not through such a model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

try:
    import peft
except ImportError:  # the `peft` extra is optional: only a run with `model.peft` needs it
    peft = None

# Every attention projection of the CLIP towers (CLIPAttention) and of both decoders (Clip4StrAttention).
DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "out_proj")
# What a new charset changes: the rows of the characters in both decoders.
CHARSET_MODULES = (
    "visual_decoder.text_embed",
    "visual_decoder.head",
    "cross_decoder.text_embed",
    "cross_decoder.head",
)
# peft's prompt-learning methods, refused (see the module docstring).
_PROMPT_LEARNING = (
    "PROMPT_TUNING",
    "PREFIX_TUNING",
    "P_TUNING",
    "MULTITASK_PROMPT_TUNING",
    "ADAPTION_PROMPT",
)


def require_peft() -> Any:
    if peft is None:
        raise ImportError('PEFT fine-tuning needs the peft library: pip install "scenetext[peft]"')
    return peft


def peft_config(options: dict[str, Any], charset_changed: bool) -> Any:
    """The `peft` config of a `model.peft` section: `method` names the tuner, the other keys are its arguments.

    Defaults: `target_modules` every attention projection (LoRA-like tuners), and the decoders' character rows
    in `modules_to_save` when `charset_changed`."""
    library = require_peft()
    options = dict(options)
    method = str(options.pop("method", "lora"))
    peft_type = method.upper()
    if peft_type in _PROMPT_LEARNING:
        raise ValueError(
            f"model.peft.method: {method} is a prompt-learning method, which needs a language model driven by "
            "peft; CLIP4STR takes tuners of its linear layers (lora, loha, lokr, ia3, oft, ...)"
        )
    if peft_type not in library.PEFT_TYPE_TO_CONFIG_MAPPING:
        known = sorted(t.lower() for t in library.PEFT_TYPE_TO_CONFIG_MAPPING if t not in _PROMPT_LEARNING)
        raise ValueError(
            f"model.peft.method: unknown peft method {method!r}; expected one of {', '.join(known)}"
        )
    config_class = library.PEFT_TYPE_TO_CONFIG_MAPPING[peft_type]
    fields = set(config_class.__dataclass_fields__)
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ValueError(f"model.peft: {config_class.__name__} has no option {', '.join(unknown)}")
    if "target_modules" in fields:
        options.setdefault("target_modules", list(DEFAULT_TARGET_MODULES))
    if charset_changed:
        saved = list(options.get("modules_to_save") or [])
        options["modules_to_save"] = saved + [name for name in CHARSET_MODULES if name not in saved]
    if peft_type == "IA3" and "feedforward_modules" not in options:
        options["feedforward_modules"] = []  # IA3 scales the targets' inputs only where told to
    return config_class(**options)


def add_adapter(model: torch.nn.Module, options: dict[str, Any], charset_changed: bool) -> torch.nn.Module:
    """`model` wrapped as a `PeftModel` with the tuner of `options` (see `peft_config`); only the adapter (and
    `modules_to_save`) trains."""
    return require_peft().get_peft_model(model, peft_config(options, charset_changed))


def base_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model under a `PeftModel`'s wrappers (its parameter names are the plain model's, adapter ones added)."""
    return model.get_base_model() if peft is not None and isinstance(model, peft.PeftModel) else model


def is_adapter_folder(folder: str | Path) -> bool:
    return (Path(folder) / "adapter_config.json").is_file()


def merge_adapter(
    adapter_folder: str | Path, output_folder: str | Path, base_model_path: str | Path | None = None
) -> Path:
    """Write a plain CLIP4STR folder (model + processor) with the adapter of `adapter_folder` merged into the
    weights: the same outputs without `peft` at inference, at the base model's size and speed.

    The base is the checkpoint named in `adapter_config.json` unless `base_model_path` is given; it is resized
    to the adapter's charset first when they differ (`resize_charset`)."""
    from transformers import AutoProcessor

    from scenetext.modeling.clip4str import Clip4StrForSceneTextRecognition

    library = require_peft()
    adapter_folder = Path(adapter_folder)
    if not is_adapter_folder(adapter_folder):
        raise FileNotFoundError(f"{adapter_folder} is not a PEFT adapter folder (no adapter_config.json)")
    if base_model_path is None:
        base_model_path = json.loads((adapter_folder / "adapter_config.json").read_text())[
            "base_model_name_or_path"
        ]
    processor = AutoProcessor.from_pretrained(adapter_folder)
    model = Clip4StrForSceneTextRecognition.from_pretrained(base_model_path)
    model.resize_charset(processor.tokenizer.charset)
    merged = library.PeftModel.from_pretrained(model, adapter_folder).merge_and_unload()
    output_folder = Path(output_folder)
    merged.save_pretrained(output_folder)
    processor.save_pretrained(output_folder)
    return output_folder
