"""TCM detector throughput at the ICDAR2015 test scale: ours against the official order of work, in one run.

One synthetic 720x1280 scene (dark words on a light background) goes through the icdar2015 image processor
(1024x1820, padded to 1024x1824), the model and DB post-processing. The baseline runs the plain model, which
keeps the official order of work (in `--dtype` as ours: fp32, or bf16 autocast, the official code's best mode on
a bf16-capable CPU; default memory format, batch norms as separate passes, upsampled maps in the neck, threshold
branch computed) and post-processes each image with the per-contour loop; ours runs the same weights after
`TcmForSceneTextDetection.optimize_for_inference()` in `--dtype` (channels-last, batch norms folded once,
oneDNN convolutions with fused ReLUs and in-place residual sums, no upsampled maps in the neck, per-pixel
products for the head's transposed convolutions), skips the threshold branch and post-processes the batch with
one-pass scoring in threads. Both post-process the same
maps: the word boxes of the scene drawn as a blurred probability map (a random-weight model's own map has no
text structure). Runs alternate (baseline, ours, baseline, ...) so that load from other processes hits both
alike; wall time and this process's CPU time are both reported, the CPU time being the steadier on a shared
machine.

With `--onnx`, two more sides run the same weights exported with `scenetext.export` (checked against PyTorch)
in ONNX Runtime (as many threads as torch), with ours' pre- and post-processing, in the same alternating run: the
fp32 file and its static int8 copy (`quantize_detector_int8`, calibrated on the benchmark's scene; its accuracy is
measured by `onnx_accuracy.py`, not here).

    python benchmarks/detector.py --preset rn50 --batch-size 1 --repeats 2 --json detector.json
    python benchmarks/detector.py --preset rn50 --batch-size 1 --repeats 2 --onnx --json detector-onnx.json

With `--head pan` or `--head fcenet`, the run compares detection heads instead: the plain TCM-DBNet and the plain
TCM with that head (the same backbone weights; each head in the official order of work, in `--dtype`) time their
forward pass on the same pixels, alternating. Their post-processing is not timed: with random weights the PAN and
FCENet maps have no text structure, and FCENet's post-processing cost grows with the pixels above its threshold.

    python benchmarks/detector.py --preset rn50 --head pan --repeats 2 --json detector-pan.json
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable

import cv2
import numpy as np
import torch
from _common import benchmark_parser, onnx_runtimes, report

from scenetext.modeling.devices import resolve_device, resolve_precision
from scenetext.modeling.tcm.configuration_tcm import TcmConfig
from scenetext.modeling.tcm.modeling_tcm import TcmForSceneTextDetection
from scenetext.processors.tcm import TcmImageProcessor, extract_text_boundaries_per_contour

PRESETS = {"tiny": "tiny", "rn50": "rn50"}
SCENE_SIZE = (720, 1280)  # ICDAR2015 images
STAGES = ("preprocess", "model", "postprocess")
ALLOCATOR_ENV = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "LD_PRELOAD", "THP_MEM_ALLOC_ENABLE")


def synthetic_scene(seed: int = 0, words: int = 40) -> tuple[np.ndarray, list[np.ndarray]]:
    """A 720x1280 RGB scene with `words` dark rotated word blocks on a textured background, and their boxes."""
    rng = np.random.default_rng(seed)
    height, width = SCENE_SIZE
    image = rng.integers(150, 256, (height, width, 3), dtype=np.uint8)
    boxes = []
    for _ in range(words):
        center = (float(rng.uniform(60, width - 60)), float(rng.uniform(20, height - 20)))
        size = (float(rng.uniform(30, 160)), float(rng.uniform(10, 36)))
        box = cv2.boxPoints((center, size, float(rng.uniform(-15, 15))))
        cv2.fillPoly(image, [box.astype(np.int32)], tuple(int(v) for v in rng.integers(0, 90, 3)))
        boxes.append(box)
    return image, boxes


def word_probability_map(
    boxes: list[np.ndarray], scale: tuple[float, float], padded: tuple[int, int]
) -> torch.Tensor:
    """What a trained detector outputs for the scene: the word kernels (shrunk like DB's targets) at the
    processor's scale, blurred, with some speckle -- contours of text and of noise, as in real maps."""
    rng = np.random.default_rng(1)
    prob = np.zeros(padded, dtype=np.float32)
    for box in boxes:
        (cx, cy), (w, h), angle = cv2.minAreaRect((box * scale).astype(np.float32))
        kernel = cv2.boxPoints(((cx, cy), (w * 0.8, h * 0.6), angle)).astype(np.int32)
        cv2.fillPoly(prob, [kernel], float(rng.uniform(0.6, 0.95)))
    prob = cv2.GaussianBlur(prob, (0, 0), 2.0)
    speckle = rng.random(padded) < 0.002
    prob[speckle] = rng.uniform(0, 0.6, int(speckle.sum())).astype(np.float32)
    return torch.from_numpy(prob)


def _timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    """(wall seconds, this process's CPU seconds, result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def _cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as handle:
            flags = next((line.split(":", 1)[1].split() for line in handle if line.startswith("flags")), [])
    except OSError:
        return []
    return sorted(flag for flag in flags if flag.startswith(("avx", "amx", "fma")))


def _same_detections(ours: list[dict], reference: list[dict]) -> bool:
    return all(
        len(a["polygons"]) == len(b["polygons"])
        and all(torch.equal(p, q) for p, q in zip(a["polygons"], b["polygons"], strict=True))
        and torch.allclose(a["scores"], b["scores"], rtol=0, atol=1e-6)
        for a, b in zip(ours, reference, strict=True)
    )


def _onnx_detectors(
    model: TcmForSceneTextDetection, processor: TcmImageProcessor, folder: str, calibration_images: list
) -> dict[str, Callable[[torch.Tensor], object]]:
    """The model exported to `folder` (checked against PyTorch) and its static int8 copy calibrated on
    `calibration_images`, each as a callable on pixel values returning an output with `.prob_map`."""
    from scenetext.export.onnx_export import export_detector_model
    from scenetext.export.quantization import quantize_detector_int8
    from scenetext.pipelines.onnx_backend import OnnxDetector

    export_detector_model(model, folder)
    processor.save_pretrained(folder)  # calibration prepares its images as inference does
    quantize_detector_int8(folder, calibration_images)
    return onnx_runtimes(OnnxDetector, folder, ("onnx", "onnx_int8"))


def run(
    preset: str, batch_size: int, dtype: str, device: str, repeats: int, onnx: bool = False
) -> dict[str, object]:
    """Time pre-processing, model and post-processing for the baseline and ours (and ONNX Runtime with
    `onnx`), interleaved; returns the measurement record."""
    if preset not in PRESETS:
        raise ValueError(f"--preset must be one of {sorted(PRESETS)}, got {preset!r}")
    precision = resolve_precision(dtype)
    if precision.dynamic_int8:
        raise ValueError("--dtype int8 quantizes linear layers; the detector's time is in convolutions")
    device = resolve_device(device)
    if repeats < 1 or batch_size < 1:
        raise ValueError(f"--repeats and --batch-size must be >= 1, got {repeats} and {batch_size}")
    torch.manual_seed(0)
    model = TcmForSceneTextDetection(TcmConfig.from_preset(PRESETS[preset])).eval().to(device)
    optimized = model.optimize_for_inference()  # a copy: `model` stays the plain baseline
    processor = TcmImageProcessor.from_preset("icdar2015")
    settings = processor.post_processing
    scene, boxes = synthetic_scene()
    images = [scene] * batch_size
    load_before = os.getloadavg()[0]

    inputs = processor(images)
    original_sizes, resized_sizes = inputs["original_sizes"], inputs["resized_sizes"]
    resized_height, resized_width = resized_sizes[0].tolist()
    word_map = word_probability_map(
        boxes,
        (resized_width / SCENE_SIZE[1], resized_height / SCENE_SIZE[0]),
        tuple(inputs["pixel_values"].shape[-2:]),
    )
    word_maps = word_map.expand(batch_size, 1, *word_map.shape)
    pixel_values = inputs["pixel_values"].to(device)

    def autocast() -> torch.autocast:
        return torch.autocast(
            device_type=device.type, dtype=precision.dtype, enabled=precision.dtype != torch.float32
        )

    # Both sides run in `--dtype`: the official code's best mode on a bf16-capable CPU is bf16 autocast.
    def baseline_model() -> torch.Tensor:
        with autocast():
            return model(pixel_values).prob_map.float()

    def ours_model() -> torch.Tensor:
        with autocast():
            return optimized(pixel_values, output_threshold_maps=False).prob_map.float()

    def baseline_postprocess() -> list[dict]:
        # the processor's own bookkeeping around the official per-contour loop, one image after the other
        results = []
        for prob, (height, width) in zip(word_maps[:, 0].numpy(), original_sizes.tolist(), strict=True):
            boundaries = extract_text_boundaries_per_contour(prob, **settings)
            scale = np.array([width / resized_width, height / resized_height])
            results.append(TcmImageProcessor._to_original_pixels(boundaries, scale, (height, width)))
        return results

    def ours_postprocess() -> list[dict]:
        return processor.post_process_text_detection(
            word_maps, target_sizes=original_sizes, resized_sizes=resized_sizes
        )

    steps = {
        "baseline": (lambda: processor(images), baseline_model, baseline_postprocess),
        "ours": (lambda: processor(images), ours_model, ours_postprocess),
    }
    export_folder = None
    if onnx:
        if precision.dtype != torch.float32 or device.type != "cpu":
            raise ValueError("--onnx runs the fp32 export on the CPU: use it with --dtype fp32 --device cpu")
        export_folder = tempfile.TemporaryDirectory()
        for side, onnx_detector in _onnx_detectors(model, processor, export_folder.name, [scene]).items():
            steps[side] = (
                lambda: processor(images),
                lambda onnx_detector=onnx_detector: onnx_detector(pixel_values).prob_map,
                ours_postprocess,
            )
    wall = {f"{side}_{stage}": [] for side in steps for stage in STAGES}
    cpu = {key: [] for key in wall}
    outputs = {}
    with torch.inference_mode():
        for side, functions in steps.items():  # warm-up, and the outputs compared below
            outputs[side] = [function() for function in functions]
        for _ in range(repeats):
            for side, functions in steps.items():
                for stage, function in zip(STAGES, functions, strict=True):
                    seconds, cpu_seconds, _ = _timed(function)
                    wall[f"{side}_{stage}"].append(seconds)
                    cpu[f"{side}_{stage}"].append(cpu_seconds)

    if export_folder is not None:
        export_folder.cleanup()

    def total(times: dict[str, list[float]], side: str) -> float:
        return sum(statistics.median(times[f"{side}_{stage}"]) for stage in STAGES)

    base_prob, ours_prob = outputs["baseline"][1], outputs["ours"][1]
    record: dict[str, object] = {
        "preset": preset,
        "batch_size": batch_size,
        "dtype": dtype,
        "device": str(device),
        "repeats": repeats,
        "input_size": list(pixel_values.shape[-2:]),
        "images_per_s": batch_size / total(wall, "ours"),
        "baseline_images_per_s": batch_size / total(wall, "baseline"),
        "speedup": total(wall, "baseline") / total(wall, "ours"),
        "cpu_images_per_s": batch_size / total(cpu, "ours"),
        "baseline_cpu_images_per_s": batch_size / total(cpu, "baseline"),
        "cpu_speedup": total(cpu, "baseline") / total(cpu, "ours"),
    }
    for side in ("onnx", "onnx_int8") if onnx else ():
        record[f"{side}_images_per_s"] = batch_size / total(wall, side)
        record[f"{side}_speedup"] = total(wall, "baseline") / total(wall, side)
        record[f"{side}_cpu_speedup"] = total(cpu, "baseline") / total(cpu, side)
        record[f"{side}_max_abs_prob_map_difference"] = float(
            (base_prob.float() - outputs[side][1]).abs().max()
        )
    for kind, times in (("s", wall), ("cpu_s", cpu)):
        for key, values in times.items():
            side, stage = key.split("_", 1)
            record[f"{stage}_{kind}" if side == "ours" else f"{side}_{stage}_{kind}"] = statistics.median(
                values
            )
    record.update(
        {
            "max_abs_prob_map_difference": float((base_prob.float() - ours_prob).abs().max()),
            "detections": sum(len(result["polygons"]) for result in outputs["ours"][2]),
            "postprocess_identical": _same_detections(outputs["ours"][2], outputs["baseline"][2]),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg()[0],
            "torch_threads": torch.get_num_threads(),
            "torch_version": torch.__version__,
            "cpu": platform.processor() or platform.machine(),
            "cpu_flags": _cpu_flags(),
            # glibc returns tensors above 32 MB to the OS on free, so every large activation is first-touch
            # page-faulted again; these settings (or another allocator) change the absolute numbers a lot
            "allocator_env": {key: os.environ[key] for key in ALLOCATOR_ENV if key in os.environ},
        }
    )
    return record


def run_heads(
    preset: str, head: str, batch_size: int, dtype: str, device: str, repeats: int
) -> dict[str, object]:
    """Time the forward pass of TCM-DBNet and TCM with `head`, alternating, on the ICDAR2015-scale scene;
    returns the measurement record (`speed_relative_to_dbnet` > 1: the head is faster)."""
    if preset not in PRESETS:
        raise ValueError(f"--preset must be one of {sorted(PRESETS)}, got {preset!r}")
    if head not in ("pan", "fcenet"):
        raise ValueError(f"--head must be dbnet, pan or fcenet, got {head!r}")
    if repeats < 1 or batch_size < 1:
        raise ValueError(f"--repeats and --batch-size must be >= 1, got {repeats} and {batch_size}")
    precision = resolve_precision(dtype)
    device = resolve_device(device)
    models = {}
    for name in ("dbnet", head):
        torch.manual_seed(0)  # the same backbone and prompt weights for both
        config = TcmConfig.from_preset(PRESETS[preset], head_type=name)
        models[name] = TcmForSceneTextDetection(config).eval().to(device)
    scene, _ = synthetic_scene()
    pixel_values = TcmImageProcessor.from_preset("icdar2015")([scene] * batch_size)["pixel_values"].to(device)
    load_before = os.getloadavg()[0]
    wall, cpu = {name: [] for name in models}, {name: [] for name in models}
    autocast = torch.autocast(
        device_type=device.type, dtype=precision.dtype, enabled=precision.dtype != torch.float32
    )
    with torch.inference_mode(), autocast:
        for model in models.values():  # warm-up
            model(pixel_values)
        for _ in range(repeats):
            for name, model in models.items():
                seconds, cpu_seconds, _ = _timed(lambda model=model: model(pixel_values))
                wall[name].append(seconds)
                cpu[name].append(cpu_seconds)
    model_s = {name: statistics.median(times) for name, times in wall.items()}
    model_cpu_s = {name: statistics.median(times) for name, times in cpu.items()}
    return {
        "preset": preset,
        "head": head,
        "batch_size": batch_size,
        "dtype": dtype,
        "device": str(device),
        "repeats": repeats,
        "input_size": list(pixel_values.shape[-2:]),
        "dbnet_model_s": model_s["dbnet"],
        f"{head}_model_s": model_s[head],
        "dbnet_model_cpu_s": model_cpu_s["dbnet"],
        f"{head}_model_cpu_s": model_cpu_s[head],
        "speed_relative_to_dbnet": model_s["dbnet"] / model_s[head],
        "cpu_speed_relative_to_dbnet": model_cpu_s["dbnet"] / model_cpu_s[head],
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = benchmark_parser(__doc__, PRESETS, batch_size=1, repeats=2, onnx=True)
    parser.add_argument(
        "--head",
        choices=("dbnet", "pan", "fcenet"),
        default="dbnet",
        help="pan / fcenet: time that head's model against TCM-DBNet's in the same run",
    )
    args = parser.parse_args(argv)
    if args.head != "dbnet":
        if args.onnx:
            parser.error("--onnx times the DBNet export; it does not combine with --head")
        record = run_heads(args.preset, args.head, args.batch_size, args.dtype, args.device, args.repeats)
        results = (
            f"at {record['input_size']}, {args.head} model {record[f'{args.head}_model_s']:.3f} s vs dbnet "
            f"{record['dbnet_model_s']:.3f} s: x{record['speed_relative_to_dbnet']:.2f} the speed of DBNet "
            f"(x{record['cpu_speed_relative_to_dbnet']:.2f} in CPU time; load {record['load_average_before']:.1f})"
        )
        return report(record, results, args.json)
    record = run(args.preset, args.batch_size, args.dtype, args.device, args.repeats, args.onnx)
    splits = ", ".join(
        f"{stage} {record[f'{stage}_cpu_s']:.3f} vs {record[f'baseline_{stage}_cpu_s']:.3f} s"
        for stage in STAGES
    )
    results = (
        f"at {record['input_size']}, {record['images_per_s']:.3f} img/s "
        f"vs baseline {record['baseline_images_per_s']:.3f} img/s "
        f"(x{record['speedup']:.2f} wall, x{record['cpu_speedup']:.2f} CPU time; {splits} CPU; "
        f"load {record['load_average_before']:.1f})"
    )
    for side in ("onnx", "onnx_int8") if args.onnx else ():
        results += (
            f"; {side} {record[f'{side}_images_per_s']:.3f} img/s (x{record[f'{side}_speedup']:.2f} wall, "
            f"x{record[f'{side}_cpu_speedup']:.2f} CPU time vs the baseline)"
        )
    return report(record, results, args.json)


if __name__ == "__main__":
    main()
