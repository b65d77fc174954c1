"""`scenetext export recognizer|detector FOLDER OUT`: an ONNX file checked against PyTorch, for ONNX Runtime."""

from __future__ import annotations

import argparse
from pathlib import Path

from scenetext.cli.errors import UsageError, user_mistakes


def run(args: argparse.Namespace) -> int:
    try:
        from scenetext.export.onnx_export import export_detector, export_recognizer
        from scenetext.export.quantization import quantize_detector_int8, quantize_int8
    except ImportError as error:
        raise UsageError(
            f"exporting needs the [onnx] extra: pip install 'scenetext[onnx]' ({error})"
        ) from error
    if not Path(args.folder).is_dir():
        raise UsageError(f"{args.folder} is not a folder written by save_pretrained")
    if args.calibration is not None and (args.model != "detector" or not args.int8):
        raise UsageError("--calibration is for exporting a detector with --int8 (its static quantisation)")
    calibration = None
    if args.calibration is not None:
        from scenetext.cli.ocr import collect_images
        from scenetext.pipelines.image_loading import load_rgb_image

        with user_mistakes():
            calibration = [load_rgb_image(path) for path in collect_images([args.calibration]).images]
    export = export_recognizer if args.model == "recognizer" else export_detector
    check = export(args.folder, args.output)
    print(
        f"wrote {Path(args.output) / 'model.onnx'} (opset {check.opset}): largest difference to PyTorch "
        f"{check.max_abs_difference:.2e}" + (", same ids" if args.model == "recognizer" else "")
    )
    if args.int8 and args.model == "recognizer":
        print(f"wrote {quantize_int8(args.output)} (dynamic int8 quantisation, for CPUs)")
    elif args.int8:
        source = (
            "synthetic scenes" if calibration is None else f"{len(calibration)} images of {args.calibration}"
        )
        path = quantize_detector_int8(args.output, calibration)
        print(f"wrote {path} (static int8 quantisation calibrated on {source}, head in float; for CPUs)")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a recognizer or detector folder to ONNX, checked against PyTorch"
    )
    parser.add_argument("model", choices=["recognizer", "detector"])
    parser.add_argument("folder", help="the model folder (save_pretrained)")
    parser.add_argument("output", help="folder for model.onnx and the processor files")
    parser.add_argument(
        "--int8",
        action="store_true",
        help="also write model.int8.onnx (recognizer: dynamic quantisation; detector: static, calibrated)",
    )
    parser.add_argument(
        "--calibration",
        metavar="IMAGE_DIR",
        help="images that calibrate the detector's int8 ranges (default: synthetic scenes); use ones like those "
        "it will read",
    )
    parser.set_defaults(func=run)
