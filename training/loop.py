"""The Accelerate training loop shared by the recognizer and the detector.

Devices, mixed precision, DDP and gradient accumulation come from Accelerate; one process or several, started by
`torchrun` / `python -m torch.distributed.run` or `accelerate launch` (NCCL on GPUs, gloo on CPUs: see
`training/launch.py`). Only the main process logs, evaluates and writes, except each process's RNG state. A run
writes into its output folder, which must be empty unless the run resumes or is told to overwrite:
- `checkpoints/step_XXXXXXXX/`: the training state (model, optimizer, grad scaler, RNG states, data position;
  see `training/checkpoint.py`: atomic, no pickles) every `save_every` steps; `resume` continues from the
  newest complete one;
- `best/` and `last/`: Hub-style folders (model + processor + code) written with `save_pretrained`;
- `train_log.jsonl`: one line per optimizer step (loss, learning rate) and per evaluation;
- TensorBoard logs through Accelerate's trackers.

Resuming with a larger `max_steps` than the saved run's extends it: the learning-rate schedule is rebuilt for
the new `max_steps` (`training/schedule.py`) and the run continues from the step it reached.

Exact resumption: the data stream is a pure function of the seed and the epoch (DataLoader generator seeded per
epoch, augmentation seeded per sample by the task), so a resumed run re-creates the epoch's stream from its first
unconsumed example (see `Trainer._batches`); model-side randomness (dropout, permutations) continues from the
saved RNG states.
"""

from __future__ import annotations

import json
import math
import shutil
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import torch

try:
    from accelerate import Accelerator
except ImportError as error:
    raise ImportError('training needs accelerate: pip install "scenetext[train]"') from error
from accelerate.utils import ProjectConfiguration, set_seed
from datasets import IterableDataset
from datasets.distributed import split_dataset_by_node
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, newest_complete_checkpoint, remove_old_checkpoints, save_checkpoint
from .config import TrainingConfig
from .launch import check_requested_processes, use_cpu
from .schedule import LearningRateSchedule

# What a run writes into its output folder (`--overwrite-output-dir` removes these and nothing else).
RUN_OUTPUTS = ("checkpoints", "best", "last", "train_log.jsonl", "corrupt_records", "train")


class TrainingTask(Protocol):
    """What a task (recognizer, detector) gives the loop."""

    metric_name: str  # the evaluation metric that selects the best checkpoint
    greater_is_better: bool

    def build_model(self) -> torch.nn.Module: ...

    def train_dataset(self, start: int = 0) -> IterableDataset:
        """The training stream, beginning at its example `start` (resuming an epoch)."""
        ...

    def collate(self, samples: list[dict], seed: int) -> dict[str, Any]:
        """Batch raw samples; any randomness (augmentation) must derive from `seed` and the samples alone."""
        ...

    def parameter_groups(self, model: torch.nn.Module, learning_rate: float) -> list[dict[str, Any]]: ...

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]: ...

    def save_pretrained(self, model: torch.nn.Module, folder: Path) -> None: ...

    def skipped_records(self) -> int: ...


@dataclass
class TrainingProgress:
    """Where the run is; saved with the training state so a resumed run knows what data it consumed."""

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    best_metric: float | None = None
    best_step: int | None = None

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)


@dataclass
class TrainingSummary:
    steps: int
    seconds: float
    skipped_records: int
    best_metric: float | None
    best_step: int | None
    metric_name: str
    output_dir: Path

    def __str__(self) -> str:
        best = "n/a" if self.best_metric is None else f"{self.best_metric:.4f} at step {self.best_step}"
        return (
            f"Trained {self.steps} steps in {self.seconds / 60:.1f} min; skipped records: {self.skipped_records}; "
            f"best {self.metric_name}: {best}; outputs in {self.output_dir}"
        )


def train_stream(
    data: dict[str, Any],
    build_source: Callable[[dict[str, Any], str], IterableDataset],
    seed: int,
    start: int = 0,
) -> IterableDataset:
    """The `data.train` source of a task config, shuffled through a buffer when `data.shuffle_buffer` > 0,
    beginning at example `start` of the stream (resuming): synthetic sources start there without rendering
    what comes before; other sources skip examples before they are decoded, augmented or collated."""
    if "train" not in data:
        raise ValueError("the training config needs data.train")
    spec = data["train"]
    buffer = int(data.get("shuffle_buffer", 0))
    if start and buffer == 0 and spec.get("source") == "synthetic":
        return build_source({**spec, "start": start}, "data.train")
    dataset = build_source(spec, "data.train")
    if buffer > 0:
        dataset = dataset.shuffle(seed=seed, buffer_size=buffer)
    return dataset.skip(start) if start else dataset


def sample_seed(sample: dict[str, Any], seed: int) -> int:
    """Augmentation seed of one sample: a function of its source location and the epoch seed only, so the
    stream is the same whichever worker, rank or resumed run produces it."""
    return zlib.crc32(sample["source"].encode()) ^ seed


def backbone_and_head_groups(
    model: torch.nn.Module,
    learning_rate: float,
    weight_decay: float,
    head_lr_multiplier: float,
    is_backbone: Callable[[str], bool],
    no_weight_decay: Callable[[str, torch.Tensor], bool],
) -> list[dict[str, Any]]:
    """Optimizer groups backbone / head, each with and without weight decay: the backbone learns at
    `learning_rate`, the rest `head_lr_multiplier` times faster. Frozen parameters are left out."""
    groups: dict[tuple[bool, bool], list[torch.Tensor]] = {}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            key = (is_backbone(name), no_weight_decay(name, parameter))
            groups.setdefault(key, []).append(parameter)
    return [
        {
            "params": parameters,
            "lr": learning_rate if backbone else learning_rate * head_lr_multiplier,
            "weight_decay": 0.0 if no_decay else weight_decay,
        }
        for (backbone, no_decay), parameters in sorted(groups.items(), reverse=True)
    ]


def learning_rate_scale(config: TrainingConfig, num_processes: int) -> float:
    """CLIP4STR's rule: the configured rate is for a total batch of 512."""
    if not config.optimizer.scale_learning_rate:
        return 1.0
    return config.gradient_accumulation_steps * num_processes * config.batch_size / 512


def build_optimizer(
    task, model: torch.nn.Module, config: TrainingConfig, num_processes: int
) -> torch.optim.AdamW:
    """AdamW over the task's parameter groups at the (batch-size scaled) configured rate."""
    scale = learning_rate_scale(config, num_processes)
    return torch.optim.AdamW(
        task.parameter_groups(model, config.optimizer.learning_rate * scale),
        betas=config.optimizer.betas,
        eps=config.optimizer.eps,
    )


def move_to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {key: move_to_device(value, device) for key, value in batch.items()}
    return batch


def _seed_worker(worker_id: int) -> None:
    # Workers inherit a torch seed from the DataLoader generator; numpy gets one derived from it too.
    import numpy as np

    np.random.seed(torch.initial_seed() % 2**32)


class _LogFile:
    """`train_log.jsonl`, truncated to the resumed step so a resumed log reads like an uninterrupted one."""

    def __init__(self, path: Path, resume_step: int | None, enabled: bool):
        self.path = path
        self.enabled = enabled
        if not enabled:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            path.write_text("")
        elif path.exists():
            kept = [
                line
                for line in path.read_text().splitlines()
                if line and json.loads(line).get("step", 0) <= resume_step
            ]
            path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with self.path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")


class Trainer:
    """Runs a `TrainingTask` under a `TrainingConfig` (see the module docstring)."""

    def __init__(self, config: TrainingConfig, task: TrainingTask):
        self.config = config
        self.task = task
        self.output_dir = Path(config.output_dir)
        check_requested_processes()
        self.accelerator = Accelerator(
            mixed_precision=config.mixed_precision,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            cpu=use_cpu(config.cpu),
            log_with=config.log_with,
            project_config=ProjectConfiguration(
                project_dir=str(self.output_dir), logging_dir=str(self.output_dir)
            ),
        )
        self.progress = TrainingProgress()

    # -- data ----------------------------------------------------------------------------------------------

    def _batches(self) -> Iterator[dict[str, Any]]:
        """Micro-batches forever, epoch after epoch, starting where `self.progress` says.

        A resumed epoch of a single stream (one process, at most one DataLoader worker) starts the dataset at
        the first unconsumed example, so resuming costs no data work. With several workers or processes the
        batches interleave across streams, so the epoch is replayed from its start and the consumed
        micro-batches are dropped (exact, but it re-reads and re-collates them)."""
        config = self.config
        accelerator = self.accelerator
        single_stream = config.num_workers <= 1 and accelerator.num_processes == 1
        while True:
            epoch = self.progress.epoch
            already_consumed = self.progress.batches_in_epoch
            start = already_consumed * config.batch_size if single_stream else 0
            dataset = self.task.train_dataset(start=start)
            if accelerator.num_processes > 1:
                dataset = split_dataset_by_node(dataset, accelerator.process_index, accelerator.num_processes)
            if start:
                already_consumed = 0
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
            loader = DataLoader(
                dataset,
                batch_size=config.batch_size,
                collate_fn=partial(self.task.collate, seed=config.seed * 1_000_003 + epoch),
                num_workers=config.num_workers,
                generator=torch.Generator().manual_seed(config.seed * 7_919 + epoch),
                worker_init_fn=_seed_worker,
                persistent_workers=False,
            )
            produced = 0
            for index, batch in enumerate(loader):
                produced += 1
                if index < already_consumed:
                    continue
                yield batch
            # A resumed epoch that had been consumed to its end yields nothing; a fresh one must yield.
            if produced == 0 and not start:
                raise ValueError(
                    "the training dataset produced no batch (empty dataset or every sample skipped)"
                )
            self.progress.epoch += 1
            self.progress.batches_in_epoch = 0

    # -- checkpoints ---------------------------------------------------------------------------------------

    def _prepare_output_dir(self, resume: bool, overwrite: bool) -> None:
        """Refuse to write into a folder holding anything unless resuming or told to overwrite; overwriting
        removes the previous run's outputs first, so neither its checkpoints nor its log mix with this run's."""
        accelerator = self.accelerator
        existing = sorted(p.name for p in self.output_dir.iterdir()) if self.output_dir.is_dir() else []
        if existing and not resume and not overwrite:
            raise FileExistsError(
                f"output folder {self.output_dir} is not empty ({', '.join(existing[:5])}"
                f"{', ...' if len(existing) > 5 else ''}): resume the run in it, or overwrite it on purpose "
                f"(--resume / --overwrite-output-dir), or choose another output_dir"
            )
        accelerator.wait_for_everyone()
        if overwrite and not resume and accelerator.is_main_process:
            for name in RUN_OUTPUTS:
                path = self.output_dir / name
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
        accelerator.wait_for_everyone()

    def _resume(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        accelerator = self.accelerator
        root = self.output_dir / "checkpoints"
        folder, skipped = newest_complete_checkpoint(root)
        for line in skipped:
            accelerator.print(line)
        if folder is None:
            raise FileNotFoundError(f"--resume: no complete training state under {root}")
        self.progress.load_state_dict(load_checkpoint(folder, accelerator, model, optimizer))
        accelerator.print(f"Resumed from {folder} (step {self.progress.step})")

    def _save_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        root = self.output_dir / "checkpoints"
        accelerator = self.accelerator
        save_checkpoint(root, self.progress.step, accelerator, model, optimizer, self.progress.state_dict())
        if accelerator.is_main_process:
            remove_old_checkpoints(root, self.config.keep_last_states)
        accelerator.wait_for_everyone()

    def _export(self, model: torch.nn.Module, name: str) -> None:
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            folder = self.output_dir / name
            if folder.exists():
                shutil.rmtree(folder)
            self.task.save_pretrained(self.accelerator.unwrap_model(model), folder)
        self.accelerator.wait_for_everyone()

    def _evaluate(self, model: torch.nn.Module, log: _LogFile) -> None:
        accelerator = self.accelerator
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            unwrapped = accelerator.unwrap_model(model)
            was_training = unwrapped.training
            unwrapped.eval()
            with torch.no_grad(), accelerator.autocast():
                metrics = self.task.evaluate(unwrapped)
            unwrapped.train(was_training)
            value = metrics[self.task.metric_name]
            best = self.progress.best_metric
            improved = best is None or (value > best if self.task.greater_is_better else value < best)
            if improved:
                self.progress.best_metric, self.progress.best_step = value, self.progress.step
            accelerator.log({f"eval/{k}": v for k, v in metrics.items()}, step=self.progress.step)
            log.write({"step": self.progress.step, "eval": metrics})
            tqdm.write(f"step {self.progress.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        # Every process needs the same best-metric bookkeeping in its saved state.
        shared = [self.progress.best_metric, self.progress.best_step]
        shared = _broadcast(shared, accelerator)
        self.progress.best_metric, self.progress.best_step = shared
        if self.progress.best_step == self.progress.step:
            self._export(model, "best")

    # -- the loop ------------------------------------------------------------------------------------------

    def train(
        self,
        resume: bool = False,
        on_step: Callable[[Trainer, float], None] | None = None,
        overwrite_output_dir: bool = False,
    ) -> TrainingSummary:
        """Train to `max_steps`. `resume`: continue from the newest complete checkpoint in the output folder
        (a damaged newer one is reported and skipped). `overwrite_output_dir`: replace a previous run's outputs
        instead of refusing a non-empty folder. `on_step(trainer, loss)` is called after each optimizer step."""
        config, accelerator, task = self.config, self.accelerator, self.task
        self._prepare_output_dir(resume, overwrite_output_dir)
        set_seed(config.seed)
        model = task.build_model()
        optimizer = build_optimizer(task, model, config, accelerator.num_processes)
        schedule = LearningRateSchedule(optimizer, config.optimizer, config.max_steps)
        model, optimizer = accelerator.prepare(model, optimizer)
        self.model = model
        if resume:
            self._resume(model, optimizer)
        if accelerator.is_main_process and config.log_with:
            accelerator.init_trackers("train", config=_flat_hparams(config.to_dict()))
        log = _LogFile(
            self.output_dir / "train_log.jsonl",
            self.progress.step if resume else None,
            accelerator.is_main_process,
        )

        batches = self._batches()
        model.train()
        started = time.time()
        bar = tqdm(
            total=config.max_steps,
            initial=self.progress.step,
            desc=f"train {config.task}",
            disable=not accelerator.is_local_main_process,
        )
        loss_sum, micro_batches, samples, window_start = 0.0, 0, 0, time.time()
        while self.progress.step < config.max_steps:
            batch = next(batches)
            if batch is None:  # every sample of the micro-batch was filtered out by the task
                self.progress.batches_in_epoch += 1
                continue
            batch = move_to_device(batch, accelerator.device)
            learning_rate = schedule.apply(self.progress.step)
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            self.progress.batches_in_epoch += 1
            loss_sum += loss.detach().float()
            micro_batches += 1
            samples += batch["pixel_values"].shape[0]
            if not accelerator.sync_gradients:
                continue
            self.progress.step += 1
            step_loss = accelerator.gather(loss_sum / micro_batches).mean().item()
            loss_sum, micro_batches = 0.0, 0
            log.write({"step": self.progress.step, "loss": step_loss, "lr": learning_rate})
            if on_step is not None:
                on_step(self, step_loss)
            if self.progress.step % config.log_every == 0 or self.progress.step == config.max_steps:
                elapsed = time.time() - window_start
                rate = samples * accelerator.num_processes / max(elapsed, 1e-9)
                accelerator.log(
                    {"train/loss": step_loss, "train/lr": learning_rate, "train/samples_per_s": rate},
                    step=self.progress.step,
                )
                bar.set_postfix(loss=f"{step_loss:.4f}", lr=f"{learning_rate:.2e}", samples_s=f"{rate:.1f}")
                samples, window_start = 0, time.time()
            bar.update(1)
            if self.progress.step % config.eval_every == 0 or self.progress.step == config.max_steps:
                self._evaluate(model, log)
            if self.progress.step % config.save_every == 0 or self.progress.step == config.max_steps:
                self._save_state(model, optimizer)
        bar.close()
        self._export(model, "last")
        accelerator.end_training()
        summary = TrainingSummary(
            steps=self.progress.step,
            seconds=time.time() - started,
            skipped_records=task.skipped_records(),
            best_metric=self.progress.best_metric,
            best_step=self.progress.best_step,
            metric_name=task.metric_name,
            output_dir=self.output_dir,
        )
        accelerator.print(str(summary))
        return summary


def _broadcast(values: list[Any], accelerator: Accelerator) -> list[Any]:
    if accelerator.num_processes == 1:
        return values
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list(values, from_process=0)


def _flat_hparams(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """TensorBoard hparams take scalars and strings only."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat_hparams(value, f"{name}."))
        elif isinstance(value, (int, float, str, bool)) and not (
            isinstance(value, float) and math.isnan(value)
        ):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat
