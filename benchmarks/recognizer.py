"""CLIP4STR recognizer throughput: cached decoding (ours) against the official order of work, in one run.

The baseline is the official order of work (`reference_clip4str.reference_decode`: prefix recomputed at every step,
the memory's keys/values projected at every step, every caption encoded) in fp32; ours is `decode` in `--dtype`: `bf16`
runs the whole model with bfloat16 weights (as loaded with `dtype=torch.bfloat16`; faster on this CPU than
autocasting, which re-casts every weight at every decoding step), `int8` runs it with dynamically quantized
linear layers (int8 weights, activations quantized per batch: CPU serving). The encoder and decoding
times are reported separately. Runs alternate (baseline, ours, baseline, ...) so that load from other processes
hits both alike. `ids_agreement` is the share of predicted ids of ours equal to the fp32 reference's.

With `--onnx`, the same model is also exported (`scenetext.export`) and its ONNX Runtime fp32 and dynamic
int8 files are timed in the same alternating run (whole forward, with ORT using as many threads as torch).

    python benchmarks/recognizer.py --preset b16 --batch-size 8 --repeats 2 --json recognizer.json
    python benchmarks/recognizer.py --preset b16 --batch-size 8 --repeats 3 --onnx --json recognizer-onnx.json
"""

from __future__ import annotations

import copy
import importlib.util
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from _common import benchmark_parser, onnx_runtimes, report

from scenetext.modeling.clip4str.configuration_clip4str import Clip4StrConfig, as_pair
from scenetext.modeling.clip4str.modeling_clip4str import Clip4StrForSceneTextRecognition
from scenetext.modeling.devices import (
    Precision,
    place_model,
    resolve_device,
    resolve_precision,
)


def _load_reference_decode() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    # benchmarks/ is not a package, and runpy (the tests) does not put this folder on sys.path: load by path.
    path = Path(__file__).with_name("reference_clip4str.py")
    spec = importlib.util.spec_from_file_location("reference_clip4str", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference_decode


reference_decode = _load_reference_decode()

PRESETS = {"tiny": "tiny", "b16": "vit-b16", "b32": "vit-b32", "l14": "vit-l14", "h14": "vit-h14"}


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _agreement(ids: torch.Tensor, reference: torch.Tensor) -> float:
    steps = min(ids.shape[1], reference.shape[1])  # early stop may end at different steps
    return float((ids[:, :steps] == reference[:, :steps]).float().mean())


def _caption_rows_encoded(model: Clip4StrForSceneTextRecognition, decode: Callable[[], object]) -> int:
    """How many captions the text tower encodes during `decode()`: the cached decoding skips unchanged and
    repeated captions, and with random weights captions repeat far more than real words do."""
    rows = []
    encode_captions = model.encode_captions

    def counting(caption_ids: torch.Tensor) -> torch.Tensor:
        rows.append(caption_ids.shape[0])
        return encode_captions(caption_ids)

    model.encode_captions = counting
    try:
        decode()
    finally:
        del model.encode_captions
    return sum(rows)


def _onnx_recognizers(model: Clip4StrForSceneTextRecognition, folder: str) -> dict[str, Callable]:
    """The model exported to `folder` (checked against PyTorch) and quantised, each file as a callable on
    pixel values returning the logits."""
    from scenetext.export.onnx_export import export_recognizer_model
    from scenetext.export.quantization import quantize_int8
    from scenetext.pipelines.onnx_backend import OnnxRecognizer

    export_recognizer_model(model, folder)
    quantize_int8(folder)
    return onnx_runtimes(OnnxRecognizer, folder, ("onnx_fp32", "onnx_int8"))


def run(
    preset: str, batch_size: int, dtype: str, device: str, repeats: int, onnx: bool = False
) -> dict[str, object]:
    """Time encoder and decoding for the baseline and ours, interleaved (and the ONNX Runtime files' whole
    forwards with `onnx`); returns the measurement record."""
    if preset not in PRESETS:
        raise ValueError(f"--preset must be one of {sorted(PRESETS)}, got {preset!r}")
    precision = resolve_precision(dtype)
    device = resolve_device(device)
    if repeats < 1 or batch_size < 1:
        raise ValueError(f"--repeats and --batch-size must be >= 1, got {repeats} and {batch_size}")
    torch.manual_seed(0)
    config = Clip4StrConfig.from_preset(PRESETS[preset])
    model = Clip4StrForSceneTextRecognition(config).eval().to(device)
    pixel_values = torch.randn(batch_size, 3, *as_pair(config.vision_config.image_size), device=device)
    ours_model, ours_pixel_values = model, pixel_values
    if precision != Precision():
        ours_model = place_model(copy.deepcopy(model), device, precision)
        ours_pixel_values = pixel_values.to(precision.dtype)

    def ours_encoder() -> torch.Tensor:
        return ours_model.encode_image(ours_pixel_values)

    times: dict[str, list[float]] = {"base_enc": [], "base_dec": [], "ours_enc": [], "ours_dec": []}
    export_folder = tempfile.TemporaryDirectory() if onnx else None
    onnx_backends = _onnx_recognizers(model, export_folder.name) if onnx else {}
    onnx_ids = {}
    with torch.inference_mode():
        for name, backend in onnx_backends.items():
            times[name] = []
            onnx_ids[name] = backend(pixel_values.cpu()).logits.argmax(-1)  # warm-up
        memory_fp32 = model.encode_image(pixel_values)  # warm-up
        model.decode(memory_fp32)
        ours_model.decode(ours_encoder())
        for _ in range(repeats):
            times["base_enc"].append(_timed(lambda: model.encode_image(pixel_values)))
            times["base_dec"].append(_timed(lambda: reference_decode(model, memory_fp32)))
            memory = ours_encoder()
            times["ours_enc"].append(_timed(ours_encoder))
            times["ours_dec"].append(_timed(partial(ours_model.decode, memory)))
            for name, backend in onnx_backends.items():
                times[name].append(_timed(partial(backend, pixel_values.cpu())))
        ids_base = reference_decode(model, memory_fp32)[0].argmax(-1)
        ids_fp32_cached = model.decode(model.encode_image(pixel_values))[0].argmax(-1)
        ids_ours = ours_model.decode(ours_encoder())[0].argmax(-1)
        caption_rows = _caption_rows_encoded(ours_model, partial(ours_model.decode, memory))
        baseline_caption_rows = _caption_rows_encoded(model, partial(reference_decode, model, memory_fp32))

    if export_folder is not None:
        export_folder.cleanup()
    base = [e + d for e, d in zip(times["base_enc"], times["base_dec"], strict=True)]
    ours = [e + d for e, d in zip(times["ours_enc"], times["ours_dec"], strict=True)]
    base_dec = statistics.median(times["base_dec"])
    ours_dec = statistics.median(times["ours_dec"])
    onnx_record = {}
    for name in onnx_backends:
        onnx_record[f"{name}_images_per_s"] = batch_size / statistics.median(times[name])
        onnx_record[f"{name}_speedup"] = statistics.median(base) / statistics.median(times[name])
        onnx_record[f"{name}_ids_agreement"] = _agreement(onnx_ids[name], ids_base)
    return {
        **onnx_record,
        "preset": preset,
        "batch_size": batch_size,
        "dtype": dtype,
        "device": str(device),
        "repeats": repeats,
        "decoding_steps": config.max_label_length + 1,
        "images_per_s": batch_size / statistics.median(ours),
        "baseline_images_per_s": batch_size / statistics.median(base),
        "speedup": statistics.median(base) / statistics.median(ours),
        "latency_p50_s": float(np.percentile(ours, 50, method="nearest")),
        "latency_p95_s": float(np.percentile(ours, 95, method="nearest")),
        "encoder_s": statistics.median(times["ours_enc"]),
        "decoding_s": ours_dec,
        "baseline_encoder_s": statistics.median(times["base_enc"]),
        "baseline_decoding_s": base_dec,
        "decoding_speedup": base_dec / ours_dec,
        "caption_rows_encoded": caption_rows,
        "baseline_caption_rows_encoded": baseline_caption_rows,
        "fp32_ids_identical": bool(torch.equal(ids_base, ids_fp32_cached)),
        "ids_agreement": _agreement(ids_ours, ids_base),
        "load_average": os.getloadavg()[0],
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = benchmark_parser(__doc__, PRESETS, batch_size=8, int8=True, repeats=3, onnx=True)
    args = parser.parse_args(argv)
    record = run(args.preset, args.batch_size, args.dtype, args.device, args.repeats, args.onnx)
    results = (
        f"{record['images_per_s']:.2f} img/s vs baseline {record['baseline_images_per_s']:.2f} img/s "
        f"(x{record['speedup']:.2f}; decoding x{record['decoding_speedup']:.2f}, captions encoded "
        f"{record['caption_rows_encoded']} vs {record['baseline_caption_rows_encoded']}; "
        f"load {record['load_average']:.1f})"
    )
    for name in ("onnx_fp32", "onnx_int8"):
        if f"{name}_images_per_s" in record:
            results += (
                f"; {name} {record[f'{name}_images_per_s']:.2f} img/s (x{record[f'{name}_speedup']:.2f} the "
                f"baseline, ids agreement {record[f'{name}_ids_agreement']:.2f})"
            )
    return report(record, results, args.json)


if __name__ == "__main__":
    main()
