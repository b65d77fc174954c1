"""CLIP4STR recognizer throughput: cached decoding (ours) against the official order of work, in one run.

The baseline is the reference-style decoding (`decode(use_cache=False)`: prefix recomputed at every step and the
memory's keys/values projected at every step) in fp32; ours is `decode(use_cache=True)` in `--dtype`: `bf16`
runs the whole model with bfloat16 weights (as loaded with `dtype=torch.bfloat16`; faster on this CPU than
autocasting, which re-casts every weight at every decoding step), `int8` runs it with dynamically quantized
linear layers (int8 weights, activations quantized per batch: CPU serving). The encoder and decoding
times are reported separately. Runs alternate (baseline, ours, baseline, ...) so that load from other processes
hits both alike. `ids_agreement` is the share of predicted ids of ours equal to the fp32 reference's.

    python benchmarks/recognizer.py --preset b16 --batch-size 8 --repeats 2 --json recognizer.json
"""

from __future__ import annotations

import copy
import os
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from _common import benchmark_parser, report

from scenetext.modeling.clip4str.configuration_clip4str import Clip4StrConfig, as_pair
from scenetext.modeling.clip4str.modeling_clip4str import Clip4StrForSceneTextRecognition

PRESETS = {"tiny": "tiny", "b16": "vit-b16", "b32": "vit-b32", "l14": "vit-l14", "h14": "vit-h14"}
DTYPES = ("fp32", "bf16", "int8")


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


def run(preset: str, batch_size: int, dtype: str, device: str, repeats: int) -> dict[str, object]:
    """Time encoder and decoding for the baseline and ours, interleaved; returns the measurement record."""
    if preset not in PRESETS:
        raise ValueError(f"--preset must be one of {sorted(PRESETS)}, got {preset!r}")
    if dtype not in DTYPES:
        raise ValueError(f"--dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    if repeats < 1 or batch_size < 1:
        raise ValueError(f"--repeats and --batch-size must be >= 1, got {repeats} and {batch_size}")
    torch.manual_seed(0)
    config = Clip4StrConfig.from_preset(PRESETS[preset])
    model = Clip4StrForSceneTextRecognition(config).eval().to(device)
    pixel_values = torch.randn(batch_size, 3, *as_pair(config.vision_config.image_size), device=device)
    ours_model, ours_pixel_values = model, pixel_values
    if dtype == "int8":
        ours_model = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model), {torch.nn.Linear}, torch.qint8
        )
    elif dtype == "bf16":
        ours_model = copy.deepcopy(model).to(torch.bfloat16)
        ours_pixel_values = pixel_values.to(torch.bfloat16)

    def ours_encoder() -> torch.Tensor:
        return ours_model.encode_image(ours_pixel_values)

    times: dict[str, list[float]] = {"base_enc": [], "base_dec": [], "ours_enc": [], "ours_dec": []}
    with torch.inference_mode():
        memory_fp32 = model.encode_image(pixel_values)  # warm-up
        model.decode(memory_fp32, use_cache=True)
        ours_model.decode(ours_encoder(), use_cache=True)
        for _ in range(repeats):
            times["base_enc"].append(_timed(lambda: model.encode_image(pixel_values)))
            times["base_dec"].append(_timed(lambda: model.decode(memory_fp32, use_cache=False)))
            memory = ours_encoder()
            times["ours_enc"].append(_timed(ours_encoder))
            times["ours_dec"].append(_timed(partial(ours_model.decode, memory, use_cache=True)))
        ids_base = model.decode(memory_fp32, use_cache=False)[0].argmax(-1)
        ids_fp32_cached = model.decode(model.encode_image(pixel_values), use_cache=True)[0].argmax(-1)
        ids_ours = ours_model.decode(ours_encoder(), use_cache=True)[0].argmax(-1)
        caption_rows = _caption_rows_encoded(ours_model, partial(ours_model.decode, memory, use_cache=True))
        baseline_caption_rows = _caption_rows_encoded(
            model, partial(model.decode, memory_fp32, use_cache=False)
        )

    base = [e + d for e, d in zip(times["base_enc"], times["base_dec"], strict=True)]
    ours = [e + d for e, d in zip(times["ours_enc"], times["ours_dec"], strict=True)]
    base_dec = statistics.median(times["base_dec"])
    ours_dec = statistics.median(times["ours_dec"])
    return {
        "preset": preset,
        "batch_size": batch_size,
        "dtype": dtype,
        "device": device,
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
    parser = benchmark_parser(__doc__, PRESETS, batch_size=8, dtypes=DTYPES)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    record = run(args.preset, args.batch_size, args.dtype, args.device, args.repeats)
    results = (
        f"{record['images_per_s']:.2f} img/s vs baseline {record['baseline_images_per_s']:.2f} img/s "
        f"(x{record['speedup']:.2f}; decoding x{record['decoding_speedup']:.2f}, captions encoded "
        f"{record['caption_rows_encoded']} vs {record['baseline_caption_rows_encoded']}; "
        f"load {record['load_average']:.1f})"
    )
    return report(record, results, args.json)


if __name__ == "__main__":
    main()
