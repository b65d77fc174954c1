"""Training configuration: a dataclass mirrored by the YAML files in `training/configs/`, validated at load.

Every key is checked when the config is read, at any depth: top-level and optimizer options against the
dataclasses below (types and ranges), the task sections (`model`, `processor`, `data`) against the schema their
task module declares (`CONFIG_SCHEMA` in `training/recognition.py` / `training/detection.py`), and model config
overrides against the attributes of the model's config class. A typo fails before any work starts, with a
`ValueError` naming the full key (`data.augmentt`) and what was expected.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIGS_DIR = Path(__file__).parent / "configs"
TASKS = ("recognizer", "detector")


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

    def __post_init__(self) -> None:
        _check_type_hints(self, "optimizer")
        _require(
            self.schedule in ("one_cycle", "poly", "constant"),
            "optimizer.schedule",
            "one_cycle, poly or constant",
            self.schedule,
        )
        for name in ("learning_rate", "decoder_lr_multiplier", "eps", "poly_power"):
            _require(getattr(self, name) > 0, f"optimizer.{name}", "a number > 0", getattr(self, name))
        for name in ("weight_decay", "min_learning_rate"):
            _require(getattr(self, name) >= 0, f"optimizer.{name}", "a number >= 0", getattr(self, name))
        _require(
            all(0 <= beta < 1 for beta in self.betas), "optimizer.betas", "two numbers in [0, 1)", self.betas
        )
        _require(
            0 < self.warmup_fraction < 1,
            "optimizer.warmup_fraction",
            "a number in (0, 1)",
            self.warmup_fraction,
        )


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
    cpu: bool = False  # force the CPU even where a GPU is available
    log_with: str | None = "tensorboard"

    def __post_init__(self) -> None:
        if isinstance(self.optimizer, Mapping):
            self.optimizer = dataclass_from_mapping(OptimizerConfig, self.optimizer, "optimizer")
        _check_type_hints(self, "")
        _require(self.task in TASKS, "task", "'recognizer' or 'detector'", self.task)
        _require(
            self.mixed_precision in ("no", "bf16", "fp16"),
            "mixed_precision",
            "no, bf16 or fp16",
            self.mixed_precision,
        )
        positive = (
            "max_steps",
            "batch_size",
            "gradient_accumulation_steps",
            "log_every",
            "eval_every",
            "save_every",
            "keep_last_states",
        )
        for name in positive:
            _require(getattr(self, name) >= 1, name, "an integer >= 1", getattr(self, name))
        _require(self.num_workers >= 0, "num_workers", "an integer >= 0", self.num_workers)
        _require(self.seed >= 0, "seed", "an integer >= 0", self.seed)
        _require(
            self.max_grad_norm is None or self.max_grad_norm > 0,
            "max_grad_norm",
            "a number > 0 or null (no clipping)",
            self.max_grad_norm,
        )
        schema = _task_schema(self.task)
        for section in ("model", "processor", "data"):
            setattr(self, section, check_options(getattr(self, section), schema[section], section))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# -- validation ------------------------------------------------------------------------------------------------
#
# A schema is a mapping `key -> rule`; a rule is a type (int, float, bool, str, list, dict: checked with
# `isinstance`, ints accepted as floats), a tuple of types, a nested schema (a dict), a dataclass (its fields),
# a transformers config class (its attributes; values are left to the class) or a callable
# `rule(value, key) -> value` for anything else (e.g. data sources, whose keys depend on `source`).


def check_options(value: Any, rule: Any, key: str) -> Any:
    """`value` checked against `rule` (see above); returns it with numbers read from strings where the rule
    wants a float (YAML 1.1 reads `1e-3` as a string)."""
    if isinstance(rule, dict):
        mapping = _mapping(value, key)
        _reject_unknown(mapping, rule, key)
        return {name: check_options(item, rule[name], f"{key}.{name}") for name, item in mapping.items()}
    if _is_model_config(rule):
        return _check_model_config(_mapping(value, key), rule(), key)
    if isinstance(rule, type) and dataclasses.is_dataclass(rule):
        mapping = _mapping(value, key)
        _reject_unknown(mapping, {f.name for f in dataclasses.fields(rule)}, key)
        hints = typing.get_type_hints(rule)
        return {name: _check_hint(item, hints[name], f"{key}.{name}") for name, item in mapping.items()}
    if isinstance(rule, (type, tuple)):
        return _check_hint(value, rule if isinstance(rule, type) else typing.Union[rule], key)  # noqa: UP007
    return rule(value, key)


def signature_keys(function: Callable, supplied: tuple[str, ...] = ()) -> dict[str, Any]:
    """A schema accepting the keyword arguments of `function` (values unchecked: the function checks them),
    less those the caller supplies itself."""
    return {
        name: lambda value, key: value
        for name in inspect.signature(function).parameters
        if name not in supplied
    }


def variant_by(field_name: str, variants: dict[str, dict[str, Any]]) -> Callable[[Any, str], Any]:
    """A rule for mappings whose keys depend on one of their values (data sources: `source`)."""

    def check(value: Any, key: str) -> Any:
        mapping = _mapping(value, key)
        kind = mapping.get(field_name)
        if kind not in variants:
            raise ValueError(f"{key}.{field_name}: expected one of {', '.join(variants)}, got {kind!r}")
        return check_options(mapping, {field_name: str, **variants[kind]}, key)

    return check


def _check_model_config(mapping: dict[str, Any], defaults: Any, key: str) -> dict[str, Any]:
    # transformers configs accept any keyword silently; a typo would train the default instead.
    known = set(defaults.to_dict()) | set(inspect.signature(type(defaults).__init__).parameters)
    _reject_unknown(mapping, known - {"self", "kwargs"}, key)
    for name, item in mapping.items():
        nested = getattr(defaults, name, None)
        if isinstance(item, Mapping) and _is_model_config(type(nested)):
            _check_model_config(dict(item), nested, f"{key}.{name}")
    return mapping


def _is_model_config(rule: Any) -> bool:
    # Checked by duck type: this module stays importable without transformers.
    return isinstance(rule, type) and hasattr(rule, "model_type") and hasattr(rule, "to_dict")


def _check_hint(value: Any, hint: Any, key: str) -> Any:
    """`value` against a type annotation of the config dataclasses (scalars, optionals, tuples, mappings)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _check_hint(value, option, key)
            except ValueError:
                continue
        raise ValueError(f"{key}: expected {_describe(hint)}, got {value!r}")
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key}: expected a list, got {value!r}")
        return tuple(_check_hint(item, args[0], f"{key}[{i}]") for i, item in enumerate(value))
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ValueError(f"{key}: expected a list of {len(args)} numbers, got {value!r}")
        return tuple(
            _check_hint(item, arg, f"{key}[{i}]")
            for i, (item, arg) in enumerate(zip(value, args, strict=True))
        )
    if origin is dict or hint is dict:
        return _mapping(value, key)
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        return dataclass_from_mapping(hint, value, key)
    if hint is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    raise ValueError(f"{key}: expected {_describe(hint)}, got {value!r}")


def _check_type_hints(instance: Any, prefix: str) -> None:
    for name, hint in typing.get_type_hints(type(instance)).items():
        key = f"{prefix}.{name}" if prefix else name
        setattr(instance, name, _check_hint(getattr(instance, name), hint, key))


def _describe(hint: Any) -> str:
    names = {
        int: "an integer",
        float: "a number",
        bool: "true or false",
        str: "a string",
        dict: "a mapping",
        list: "a list",
        type(None): "null",
    }
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in typing.get_args(hint))
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{key}: expected a mapping of options, got {value!r}")
    return dict(value)


def _reject_unknown(mapping: Mapping[str, Any], known: Any, key: str) -> None:
    for name in mapping:
        if name not in known:
            full = f"{key}.{name}" if key else str(name)
            close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1)
            if close:
                raise ValueError(f"unknown option {full}: did you mean {full[: -len(str(name))]}{close[0]}?")
            raise ValueError(f"unknown option {full}: expected one of {', '.join(sorted(map(str, known)))}")


def _require(condition: bool, key: str, expected: str, value: Any) -> None:
    if not condition:
        raise ValueError(f"{key}: expected {expected}, got {value!r}")


def _task_schema(task: str) -> dict[str, Any]:
    # The task modules own their sections; imported here, late, because they import this module.
    if task == "recognizer":
        from .recognition import CONFIG_SCHEMA
    else:
        from .detection import CONFIG_SCHEMA
    return CONFIG_SCHEMA


# -- reading ---------------------------------------------------------------------------------------------------


def dataclass_from_mapping(cls: type, mapping: Mapping[str, Any] | None, where: str) -> Any:
    """Build a dataclass from YAML, naming `where` in the error for an unknown key or a wrong type; YAML lists
    become tuples."""
    checked = check_options(mapping, cls, where)
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in checked.items()})


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
    """Read a YAML config, apply `key=value` overrides and validate it (see the module docstring)."""
    path = resolve_config_path(name_or_path)
    mapping = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(mapping, dict):
        raise ValueError(f"{path} must hold a mapping of options, got {type(mapping).__name__}")
    for override in overrides:
        apply_override(mapping, override)
    try:
        _reject_unknown(mapping, {f.name for f in dataclasses.fields(TrainingConfig)}, "")
        return TrainingConfig(**mapping)
    except TypeError as error:  # a required option is missing
        raise ValueError(f"{path}: {error}") from error
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error
