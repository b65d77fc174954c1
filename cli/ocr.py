"""`scenetext ocr IMAGE_OR_DIR...` reads scenes into JSON files and pictures; `scenetext demo` reads the sample
scenes shipped in `assets/samples/` with the embedded default checkpoints."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scenetext.assets import DEFAULTS_DIR, SAMPLES_DIR
from scenetext.cli.errors import UsageError, user_mistakes
from scenetext.modeling.device_options import add_device_arguments

# How each embedded checkpoint is produced (the training configs name the same commands).
_DEFAULT_RECIPES = {
    "recognizer": "scenetext train recognizer --config recognizer-embedded, then --config "
    "recognizer-embedded-2, then copy runs/recognizer-embedded-2/best to assets/defaults/recognizer",
    "detector": "scenetext train detector with the embedded detector's config, then copy its best folder to "
    "assets/defaults/detector",
}


def default_checkpoints() -> tuple[Path, Path]:
    """The embedded default (recognizer, detector) folders, `assets/defaults/{recognizer,detector}`.

    Raises:
        FileNotFoundError: a folder (or its config.json) is missing; the message names the folder and the
            command that produces it.
    """
    folders = {kind: DEFAULTS_DIR / kind for kind in ("recognizer", "detector")}
    missing = [kind for kind, folder in folders.items() if not (folder / "config.json").is_file()]
    if missing:
        lines = [f"  {folders[kind]} (make it with: {_DEFAULT_RECIPES[kind]})" for kind in missing]
        raise FileNotFoundError("the embedded default checkpoints are missing:\n" + "\n".join(lines))
    return folders["recognizer"], folders["detector"]


BACKENDS = ("pytorch", "onnx")


def load_ocr_pipeline(
    detector: str | Path,
    recognizer: str | Path,
    device: str | None = "auto",
    dtype: str = "float32",
    backend: str = "pytorch",
    detector_size: str | None = None,
    max_aspect_ratio: float | None = None,
):
    """An `OcrPipeline` over a detector and a recognizer folder, built from this package's own classes (no
    folder code is run).

    Args:
        backend: `pytorch` (save_pretrained folders; `device` and `dtype` are resolved by
            `scenetext.modeling.devices`: `auto` is CUDA when available; float32, bfloat16 or float16) or `onnx`
            (folders written by `scenetext export`, run by ONNX Runtime on the CPU: `model.onnx` for float32,
            `model.int8.onnx` for int8).
        detector_size: the detector's resize in `parse_size`'s text forms (`icdar2015`, `1280`, `1024:4068`,
            `736x1280`); default the detector folder's own `size`.
        max_aspect_ratio: images longer than this many times their height (or the reverse) are read in tiles;
            default the pipeline's (8).

    Raises:
        FileNotFoundError: a folder without config.json, or without the ONNX file the backend runs.
        ValueError: a folder holding another model type than its role's (checked before any weight is read),
            an unknown device, dtype, backend or detector size.
    """
    from scenetext.modeling.clip4str import Clip4StrConfig
    from scenetext.modeling.model_types import require_model_type
    from scenetext.modeling.tcm import TcmConfig
    from scenetext.pipelines import OcrPipeline
    from scenetext.processors.clip4str import Clip4StrProcessor
    from scenetext.processors.tcm import TcmImageProcessor, parse_size

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    call_defaults = {}
    if detector_size is not None:
        call_defaults["size"] = parse_size(detector_size)
    if max_aspect_ratio is not None:
        call_defaults["max_aspect_ratio"] = max_aspect_ratio
    for role, folder, model_type in (
        ("detector", detector, TcmConfig.model_type),
        ("recognizer", recognizer, Clip4StrConfig.model_type),
    ):
        if not (Path(folder) / "config.json").is_file():
            raise FileNotFoundError(
                f"{role} folder {folder} has no config.json: expected a "
                + ("save_pretrained folder" if backend == "pytorch" else "folder written by scenetext export")
            )
        require_model_type(folder, model_type, role)
    models = _onnx_models if backend == "onnx" else _pytorch_models
    detector_model, recognizer_model, torch_device = models(detector, recognizer, device, dtype)
    return OcrPipeline(
        model=detector_model,
        image_processor=TcmImageProcessor.from_pretrained(detector),
        recognizer=recognizer_model,
        recognizer_processor=Clip4StrProcessor.from_pretrained(recognizer),
        device=torch_device,
        **call_defaults,
    )


def _pytorch_models(detector: str | Path, recognizer: str | Path, device: str | None, dtype: str):
    from scenetext.modeling.clip4str import Clip4StrForSceneTextRecognition
    from scenetext.modeling.devices import place_model, resolve_device, resolve_precision
    from scenetext.modeling.tcm import TcmForSceneTextDetection

    torch_device, precision = resolve_device(device), resolve_precision(dtype)
    if precision.dynamic_int8:
        raise ValueError(
            "scenetext ocr runs PyTorch models in float32, bfloat16 or float16; int8 is for --backend onnx "
            "(folders exported with scenetext export --int8)"
        )
    return (
        place_model(TcmForSceneTextDetection.from_pretrained(detector), torch_device, precision),
        place_model(Clip4StrForSceneTextRecognition.from_pretrained(recognizer), torch_device, precision),
        torch_device,
    )


def _onnx_models(detector: str | Path, recognizer: str | Path, device: str | None, dtype: str):
    from scenetext.modeling.device_options import DTYPE_ALIASES, INT8
    from scenetext.pipelines.onnx_backend import INT8_ONNX_FILE, ONNX_FILE, OnnxDetector, OnnxRecognizer

    if device not in (None, "auto", "cpu"):
        raise ValueError(f"--backend onnx runs on the CPU (ONNX Runtime's CPU provider), not on {device}")
    if dtype != INT8 and DTYPE_ALIASES.get(dtype) != "float32":
        # ONNX Runtime's CPU provider has no bfloat16 or float16 kernels for most operators of these graphs
        # (convolutions, layer norms); benchmarks/RESULTS.md has the check.
        raise ValueError(f"--backend onnx runs float32 (model.onnx) or int8 (model.int8.onnx), not {dtype}")
    file_name = INT8_ONNX_FILE if dtype == INT8 else ONNX_FILE
    for role, folder in (("detector", detector), ("recognizer", recognizer)):
        if not (Path(folder) / file_name).is_file():
            raise FileNotFoundError(
                f"{role} folder {folder} has no {file_name}: write it with scenetext export {role} FOLDER "
                f"{folder}" + (" --int8" if dtype == INT8 else "")
            )
    return OnnxDetector(detector, file_name), OnnxRecognizer(recognizer, file_name), "cpu"


@dataclass
class ImageInputs:
    """The files `scenetext ocr` reads, and the folder entries it passed over."""

    images: list[Path]
    skipped: list[Path]


def collect_images(inputs: Iterable[str | Path]) -> ImageInputs:
    """Files named on the command line (read whatever their name: a file that is no image is reported when
    it is read) and, of each named folder, the files whose extension is an image format's (sorted, not
    recursive; hidden files are ignored, other entries are listed as skipped).

    Raises:
        FileNotFoundError: an input does not exist.
        ValueError: no image at all among the inputs.
    """
    from scenetext.data.icdar_folder import IMAGE_SUFFIXES

    images, skipped = [], []
    for entry in map(Path, inputs):
        if entry.is_dir():
            for path in sorted(entry.iterdir()):
                if path.name.startswith("."):
                    continue
                is_image = path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
                (images if is_image else skipped).append(path)
        elif entry.is_file():
            images.append(entry)
        else:
            raise FileNotFoundError(f"{entry} does not exist")
    if not images:
        raise ValueError(
            f"no image files in {', '.join(map(str, inputs))} (looked for {' '.join(IMAGE_SUFFIXES)})"
        )
    return ImageInputs(images, skipped)


def output_names(paths: Sequence[Path], out_dir: Path) -> list[str]:
    """The file stem each input's `<stem>.json` and `<stem>.png` get in `out_dir`: the input's own, numbered
    when two inputs share one.

    Raises:
        ValueError: an output would replace one of the inputs (`--out` is a folder of input PNGs).
    """
    used: set[str] = set()
    names = [_unique_name(path.stem, used) for path in paths]
    inputs = {path.resolve() for path in paths}
    for name in names:
        for output in (out_dir / f"{name}.json", out_dir / f"{name}.png"):
            if output.resolve() in inputs:
                raise ValueError(
                    f"--out {out_dir} would write {output.name} over the input {output}: choose another folder"
                )
    return names


@dataclass
class FileReport:
    """What happened to one input file."""

    path: Path
    results: list[dict] = field(default_factory=list)
    json_path: Path | None = None
    picture_path: Path | None = None
    error: str | None = None


def read_files(paths: Sequence[Path], ocr, out_dir: Path, progress: bool = True) -> list[FileReport]:
    """Run `ocr` on each file and write `<out_dir>/<name>.json` (the results) and `<name>.png` (the drawn
    picture), names from `output_names` (which refuses to write over an input). A file that fails gets its
    error in its report and the others go on."""
    from tqdm.auto import tqdm

    from scenetext.pipelines import draw_results
    from scenetext.pipelines.image_loading import load_rgb_image

    names = output_names(paths, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    reports = []
    for path, name in tqdm(
        list(zip(paths, names, strict=True)), desc="ocr", unit="image", disable=not progress or len(paths) < 2
    ):
        report = FileReport(path)
        reports.append(report)
        try:
            picture = load_rgb_image(path)
            report.results = ocr(picture)
        except Exception as error:  # per-file isolation: one bad file must not stop the batch
            report.error = f"{type(error).__name__}: {error}"
            continue
        report.json_path = out_dir / f"{name}.json"
        report.json_path.write_text(json.dumps(report.results, indent=1) + "\n", encoding="utf-8")
        report.picture_path = out_dir / f"{name}.png"
        draw_results(picture, report.results).save(report.picture_path)
    return reports


def _unique_name(stem: str, used: set[str]) -> str:
    name, number = stem, 1
    while name in used:
        number += 1
        name = f"{stem}-{number}"
    used.add(name)
    return name


def _print_report(report: FileReport) -> None:
    if report.error is not None:
        print(f"{report.path}: failed: {report.error}", file=sys.stderr)
    elif not report.results:
        print(f"{report.path}: no text found -> {report.picture_path}")
    else:
        words = " ".join(result["text"] for result in report.results)
        print(f"{report.path}: {words} -> {report.picture_path}")


def _run_ocr(args: argparse.Namespace) -> int:
    with user_mistakes():
        inputs = collect_images(args.inputs)
        output_names(inputs.images, Path(args.out))  # refused before the models load
    if inputs.skipped:
        names = ", ".join(path.name + ("/" if path.is_dir() else "") for path in inputs.skipped)
        print(f"skipped {len(inputs.skipped)} entries that are not image files: {names}", file=sys.stderr)
    if args.backend == "onnx" and (args.detector is None or args.recognizer is None):
        raise UsageError(
            "--backend onnx needs --detector and --recognizer folders written by scenetext export (the embedded "
            "defaults are PyTorch folders: scenetext export detector|recognizer FOLDER OUT)"
        )
    try:
        if args.detector is None or args.recognizer is None:
            recognizer, detector = default_checkpoints()
            args.recognizer, args.detector = args.recognizer or recognizer, args.detector or detector
        with user_mistakes():
            ocr = load_ocr_pipeline(
                args.detector,
                args.recognizer,
                args.device,
                args.dtype,
                args.backend,
                args.detector_size,
                args.max_aspect_ratio,
            )
    except FileNotFoundError as error:
        raise UsageError(f"{error} (or pass --detector and --recognizer folders of your own)") from error
    reports = read_files(inputs.images, ocr, Path(args.out))
    for report in reports:
        _print_report(report)
    failed = sum(report.error is not None for report in reports)
    print(f"{len(reports) - failed}/{len(reports)} images read; results in {args.out}")
    return 1 if failed else 0


def _run_demo(args: argparse.Namespace) -> int:
    try:
        recognizer, detector = default_checkpoints()
    except FileNotFoundError as error:
        raise UsageError(f"the demo needs the embedded checkpoints: {error}") from error
    samples = sorted(SAMPLES_DIR.glob("*.png"))
    labels = json.loads((SAMPLES_DIR / "labels.json").read_text(encoding="utf-8"))
    with user_mistakes():  # --out among the samples, an unknown --device
        output_names(samples, Path(args.out))
        ocr = load_ocr_pipeline(detector, recognizer, args.device)
    print(f"reading {len(samples)} sample scenes from {SAMPLES_DIR}")
    reports = read_files(samples, ocr, Path(args.out), progress=False)
    # a recognizer without capitals in its charset reads every word in lower case
    caseless = not any(character.isupper() for character in ocr.recognizer_processor.tokenizer.charset)
    exact = total = 0
    for report in reports:
        _print_report(report)
        expected = [word.lower() if caseless else word for word in labels.get(report.path.name, [])]
        read = [result["text"] for result in report.results]
        total += len(expected)
        exact += sum(min(read.count(word), expected.count(word)) for word in set(expected))
    print(f"{exact}/{total} words of the samples read exactly; pictures in {args.out}")
    return 1 if any(report.error for report in reports) else 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    ocr = subparsers.add_parser(
        "ocr", help="read the text of images or folders of images", description=__doc__
    )
    ocr.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    ocr.add_argument("--detector", help="detector folder (default: the embedded assets/defaults/detector)")
    ocr.add_argument("--recognizer", help="recognizer folder (default: assets/defaults/recognizer)")
    ocr.add_argument("--out", default="ocr-results", help="where the JSON files and pictures go")
    ocr.add_argument(
        "--backend",
        default="pytorch",
        choices=BACKENDS,
        help="pytorch (save_pretrained folders) or onnx (folders written by scenetext export, run by ONNX Runtime "
        "on the CPU; --dtype int8 reads their model.int8.onnx)",
    )
    ocr.add_argument(
        "--detector-size",
        metavar="SIZE",
        help="the detector's resize: a preset (icdar2015, td500, ctw1500, totaltext: the official test scales), "
        "N (long side to N, ratio kept), S:L (short side to S, long side at most L) or HxW (fixed); default the "
        "detector folder's own",
    )
    ocr.add_argument(
        "--max-aspect-ratio",
        type=float,
        metavar="R",
        help="images more than R times longer than high (or higher than long) are read in overlapping tiles "
        "(default 8; inf reads every image whole)",
    )
    add_device_arguments(ocr, int8=True)
    ocr.set_defaults(func=_run_ocr)

    demo = subparsers.add_parser(
        "demo", help="read the shipped sample scenes with the embedded checkpoints", description=__doc__
    )
    demo.add_argument("--out", default="demo-results", help="where the pictures go")
    demo.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N or mps")
    demo.set_defaults(func=_run_demo)
