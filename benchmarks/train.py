"""Training samples/s and peak memory of the recognizer or the detector, stepped as `scenetext train` steps.

A step is the training loop's (`training/loop.py`): the model's own loss (CLIP4STR's permuted language modelling
loss with the recipe's `perm_num`; TCM's DB loss plus matching loss on the recipe's crops), backward through
Accelerate, gradient clipping when the recipe clips, and the AdamW step over the task's parameter groups. Model,
groups, loss options and clipping come from a training recipe (a shipped config, or the `TrainingConfig`
defaults, which are CLIP4STR's official recipe); the batch is random images with random words, put through the
task's own collate (augmentation, DB targets, label tokenisation) once, before timing. `--dtype bf16` runs the
steps under Accelerate's bf16 mixed precision, the autocast of `mixed_precision: bf16` training.

Warm-up steps are not timed; peak memory covers the timed steps only (optimizer state included, model building
not): on CUDA `torch.cuda.max_memory_allocated`, on a Linux CPU the process's peak resident set size (VmHWM of
/proc/self/status, reset after warm-up through /proc/self/clear_refs).

    python benchmarks/train.py --task recognizer --preset b16 --batch-size 8 --steps 3 --json train.json
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import accelerate
import numpy as np
import torch
from _common import benchmark_parser, report
from accelerate import Accelerator
from accelerate.utils import set_seed
from PIL import Image

from scenetext.training.config import TrainingConfig, load_config
from scenetext.training.detection import DetectionTask
from scenetext.training.loop import build_optimizer, move_to_device
from scenetext.training.recognition import RecognitionTask

# Training recipe per (task, preset): a shipped config name, or a Clip4StrConfig preset trained with the
# TrainingConfig defaults (CLIP4STR's official optimizer recipe; no shipped config trains the official sizes).
RECIPES: dict[str, dict[str, str]] = {
    "recognizer": {
        "tiny": "tiny-recognizer",
        "b16": "vit-b16",
        "b32": "vit-b32",
        "l14": "vit-l14",
        "h14": "vit-h14",
    },
    "detector": {"tiny": "tiny-detector", "rn50": "tcm-rn50-icdar2015"},
}
MIXED_PRECISION = {"fp32": "no", "bf16": "bf16"}
GB = 1024**3
PROC_STATUS = Path("/proc/self/status")
PROC_CLEAR_REFS = Path("/proc/self/clear_refs")


def training_config(task: str, preset: str, output_dir: str) -> TrainingConfig:
    """The recipe `task`/`preset` is measured under, writing nothing outside `output_dir`."""
    if task not in RECIPES:
        raise ValueError(f"--task must be one of {sorted(RECIPES)}, got {task!r}")
    if preset not in RECIPES[task]:
        raise ValueError(f"--preset for the {task} must be one of {sorted(RECIPES[task])}, got {preset!r}")
    recipe = RECIPES[task][preset]
    if recipe.startswith("vit-"):
        return TrainingConfig(task=task, output_dir=output_dir, model={"preset": recipe}, log_with=None)
    config = load_config(recipe, [f"output_dir={output_dir}", "log_with=null"])
    # The RN50 recipe starts from OpenAI's CLIP file; random weights of the same shapes cost the same.
    config.model = {key: value for key, value in config.model.items() if key != "from_clip"}
    return config


def _noise_image(rng: np.random.Generator, height: int, width: int) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def recognition_rows(
    task: RecognitionTask, batch_size: int, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """Word crops with labels of `max_label_length` characters: a real batch is padded to its longest word,
    so the longest possible bounds the decoders' work."""
    charset = list(task.processor.tokenizer.charset)
    length = task.model_config.max_label_length
    return [
        {
            "image": _noise_image(rng, 32, 128),
            "label": "".join(rng.choice(charset, length)),
            "source": f"benchmark/{index}",
        }
        for index in range(batch_size)
    ]


def scene_rows(batch_size: int, rng: np.random.Generator, num_words: int = 10) -> list[dict[str, Any]]:
    """ICDAR 2015-like scenes (1280 x 720, about ten word quadrilaterals) for the task's crop augmentation."""
    height, width = 720, 1280
    rows = []
    for index in range(batch_size):
        polygons = []
        for _ in range(num_words):
            word_width, word_height = rng.uniform(60, 240), rng.uniform(20, 60)
            left, top = rng.uniform(0, width - word_width), rng.uniform(0, height - word_height)
            right, bottom = left + word_width, top + word_height
            polygons.append([left, top, right, top, right, bottom, left, bottom])
        rows.append(
            {
                "image": _noise_image(rng, height, width),
                "polygons": polygons,
                "texts": ["word"] * num_words,
                "ignore": [False] * num_words,
                "source": f"benchmark/{index}",
            }
        )
    return rows


def _memory_in_use(device: torch.device) -> int:
    """Bytes in use now: allocated CUDA tensors, or the process's resident set on a CPU."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    if PROC_STATUS.exists():
        return _proc_status_bytes("VmRSS")
    return 0


def _proc_status_bytes(field: str) -> int:
    for line in PROC_STATUS.read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024  # reported in kB
    raise ValueError(f"{PROC_STATUS} has no {field} line")


def _reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    elif PROC_CLEAR_REFS.exists():
        # "5" resets the kernel's peak-RSS mark to the current RSS (Linux >= 4.0), so the peak is that of the
        # timed steps, not of model building or the first step's allocations.
        PROC_CLEAR_REFS.write_text("5")


def _peak_memory(device: torch.device) -> tuple[int, str]:
    """Peak bytes since `_reset_peak_memory`, and what was measured."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device), "torch.cuda.max_memory_allocated after warm-up"
    if PROC_CLEAR_REFS.exists():
        return _proc_status_bytes("VmHWM"), "process peak RSS (VmHWM, reset after warm-up via clear_refs)"
    # Elsewhere only the process's lifetime peak is known: bytes on macOS, kilobytes on other systems.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return peak, "process lifetime peak RSS (getrusage ru_maxrss)"


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def run(
    task: str,
    preset: str,
    batch_size: int,
    dtype: str,
    device: str,
    steps: int,
    warmup_steps: int = 1,
) -> dict[str, object]:
    """Time `steps` optimizer steps after `warmup_steps` untimed ones; returns the measurement record."""
    if dtype not in MIXED_PRECISION:
        raise ValueError(f"--dtype must be one of {sorted(MIXED_PRECISION)}, got {dtype!r}")
    if steps < 1 or batch_size < 1 or warmup_steps < 0:
        raise ValueError(
            f"--steps and --batch-size must be >= 1 and --warmup-steps >= 0, got {steps}, {batch_size} "
            f"and {warmup_steps}"
        )
    target = torch.device(device)
    if target.type == "cuda" and target.index is not None:
        # Accelerate places a single process on the current CUDA device.
        torch.cuda.set_device(target)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="trainbench_") as output_dir:
        config = training_config(task, preset, output_dir)
        config.mixed_precision = MIXED_PRECISION[dtype]
        config.batch_size = batch_size
        accelerator = Accelerator(mixed_precision=config.mixed_precision, cpu=target.type == "cpu")
        if accelerator.device.type != target.type:
            raise ValueError(f"--device {device}: Accelerate placed the run on {accelerator.device}")
        set_seed(config.seed)
        training_task = RecognitionTask(config) if task == "recognizer" else DetectionTask(config)
        rng = np.random.default_rng(config.seed)
        rows = (
            recognition_rows(training_task, batch_size, rng)
            if task == "recognizer"
            else scene_rows(batch_size, rng)
        )
        batch = move_to_device(training_task.collate(rows, seed=config.seed), accelerator.device)
        memory_before_model = _memory_in_use(accelerator.device)

        # Model and optimizer exactly as `Trainer.train` builds them (one process).
        model = training_task.build_model()
        optimizer = build_optimizer(training_task, model, config, num_processes=1)
        model, optimizer = accelerator.prepare(model, optimizer)
        model.train()

        def train_step() -> tuple[float, float]:
            """One optimizer step of `Trainer.train` (one micro-batch per step); returns its duration in
            seconds and its loss."""
            start = time.perf_counter()
            loss = model(**batch).loss
            accelerator.backward(loss)
            if config.max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad()
            if accelerator.device.type == "cuda":
                torch.cuda.synchronize(accelerator.device)
            loss_value = loss.item()
            return time.perf_counter() - start, loss_value

        for _ in range(warmup_steps):
            train_step()
        _reset_peak_memory(accelerator.device)
        measured = [train_step() for _ in range(steps)]
        peak_memory, peak_memory_source = _peak_memory(accelerator.device)

    times = [seconds for seconds, _ in measured]
    pixel_values = batch["pixel_values"]
    record: dict[str, object] = {
        "task": task,
        "preset": preset,
        "recipe": RECIPES[task][preset],
        "batch_size": batch_size,
        "dtype": dtype,
        "device": str(accelerator.device),
        "steps": steps,
        "warmup_steps": warmup_steps,
        "input_shape": list(pixel_values.shape),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "parameter_groups": len(optimizer.param_groups),
        "max_grad_norm": config.max_grad_norm,
        "samples_per_s": batch_size / statistics.median(times),
        "step_time_p50_s": statistics.median(times),
        "step_time_p95_s": float(np.percentile(times, 95, method="nearest")),
        "step_times_s": times,
        "peak_memory_gb": peak_memory / GB,
        "peak_memory_source": peak_memory_source,
        "memory_before_model_gb": memory_before_model / GB,
        "final_loss": measured[-1][1],
    }
    if task == "recognizer":
        record["perm_num"] = training_task.model_config.perm_num
        record["label_length"] = batch["labels"].shape[1] - 2  # without [B] and [E]
    return record | {
        "load_average_before": load_before,
        "load_average": os.getloadavg()[0],
        "torch_threads": torch.get_num_threads(),
        "environment": {
            "device_name": _device_name(accelerator.device),
            "torch": torch.__version__,
            "accelerate": accelerate.__version__,
            "python": platform.python_version(),
        },
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = benchmark_parser(
        __doc__,
        {preset for recipes in RECIPES.values() for preset in recipes},
        batch_size=8,
        mixed_precision=MIXED_PRECISION,
        preset_help="; ".join(f"{task}: {', '.join(recipes)}" for task, recipes in RECIPES.items()),
    )
    parser.add_argument("--task", default="recognizer", choices=sorted(RECIPES))
    parser.add_argument("--steps", type=int, default=5, help="timed optimizer steps")
    parser.add_argument("--warmup-steps", type=int, default=1, help="untimed optimizer steps before timing")
    args = parser.parse_args(argv)
    record = run(
        args.task, args.preset, args.batch_size, args.dtype, args.device, args.steps, args.warmup_steps
    )
    results = (
        f"{record['task']} training, {record['samples_per_s']:.2f} samples/s, step p50 {record['step_time_p50_s']:.2f} s / "
        f"p95 {record['step_time_p95_s']:.2f} s, peak memory {record['peak_memory_gb']:.2f} GB "
        f"(load {record['load_average']:.1f})"
    )
    return report(record, results, args.json)


if __name__ == "__main__":
    main()
