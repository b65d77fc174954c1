"""Training configuration: a dataclass mirrored by the YAML files in `training/configs/`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIGS_DIR = Path(__file__).parent / "configs"


@dataclass
class OptimizerConfig:
    """AdamW with the official recipes' knobs.

    `learning_rate` is the encoder (backbone) rate before batch-size scaling; decoder/head parameters use
    `learning_rate * decoder_lr_multiplier`. With `scale_learning_rate` the rate is multiplied by
    `accumulation x world_size x batch_size / 512` (CLIP4STR's rule).
    """

    learning_rate: float = 8.4e-5
    decoder_lr_multiplier: float = 19.0
    scale_learning_rate: bool = True
    weight_decay: float = 0.2
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    schedule: str = "one_cycle"  # one_cycle | poly | constant
    warmup_fraction: float = 0.075  # one_cycle
    poly_power: float = 0.9  # poly
    min_learning_rate: float = 1e-7  # poly


@dataclass
class TrainingConfig:
    """Everything a run needs. `model`, `processor` and `data` are task-specific mappings documented with each
    task (`training/recognition.py`, `training/detection.py`)."""

    task: str
    output_dir: str
    model: dict[str, Any] = field(default_factory=dict)
    processor: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    seed: int = 0
    max_steps: int = 1000
    batch_size: int = 32  # per process
    gradient_accumulation_steps: int = 1
    mixed_precision: str = "no"  # no | bf16 | fp16
    max_grad_norm: float | None = 20.0
    num_workers: int = 0
    log_every: int = 10
    eval_every: int = 500
    save_every: int = 500
    keep_last_states: int = 2
    cpu: bool = False
    log_with: str | None = "tensorboard"

    def __post_init__(self) -> None:
        if isinstance(self.optimizer, dict):
            self.optimizer = {
                k: _read_value(v) if isinstance(v, str) else v for k, v in self.optimizer.items()
            }
            self.optimizer = dataclass_from_mapping(OptimizerConfig, self.optimizer, "optimizer")
        if self.task not in ("recognizer", "detector"):
            raise ValueError(f"`task` must be 'recognizer' or 'detector', got {self.task!r}")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(f"`mixed_precision` must be no, bf16 or fp16, got {self.mixed_precision!r}")
        for name in ("max_steps", "batch_size", "gradient_accumulation_steps", "log_every", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def dataclass_from_mapping(cls: type, mapping: dict[str, Any] | None, where: str) -> Any:
    """Build a dataclass from YAML with a clear error for unknown keys; YAML lists become tuples."""
    mapping = {k: tuple(v) if isinstance(v, list) else v for k, v in (mapping or {}).items()}
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - names)
    if unknown:
        raise ValueError(f"unknown {where} option(s) {unknown}; expected some of {sorted(names)}")
    return cls(**mapping)


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A YAML path, or the name of a shipped config (`tiny-recognizer` -> training/configs/tiny-recognizer.yaml)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = CONFIGS_DIR / (path.name if path.suffix else f"{path.name}.yaml")
    if shipped.is_file():
        return shipped
    available = ", ".join(sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml")))
    raise FileNotFoundError(f"No training config {name_or_path!r} (shipped configs: {available})")


def apply_override(mapping: dict[str, Any], override: str) -> None:
    """Apply `dotted.key=value` (the value is read as YAML: numbers, booleans, lists work)."""
    if "=" not in override:
        raise ValueError(
            f"override {override!r} must look like key=value (e.g. optimizer.learning_rate=1e-4)"
        )
    key, raw_value = override.split("=", 1)
    *parents, leaf = key.strip().split(".")
    target = mapping
    for part in parents:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise ValueError(f"override {override!r}: {part!r} is not a mapping")
    target[leaf] = _read_value(raw_value)


def _read_value(raw: str) -> Any:
    value = yaml.safe_load(raw)
    if isinstance(value, str):
        # YAML 1.1 reads "3e-3" as a string; a number is what anyone typing it means.
        try:
            return float(value)
        except ValueError:
            return value
    return value


def load_config(name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainingConfig:
    """Read a YAML config, apply `key=value` overrides and validate it."""
    path = resolve_config_path(name_or_path)
    mapping = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(mapping, dict):
        raise ValueError(f"{path} must hold a mapping of options, got {type(mapping).__name__}")
    for override in overrides:
        apply_override(mapping, override)
    try:
        return dataclass_from_mapping(TrainingConfig, mapping, f"training option in {path}")
    except TypeError as error:  # a required field is missing
        raise ValueError(f"{path}: {error}") from error
