"""`scenetext evaluate recognizer|detector`: run a model on the standard data, or score prediction files.

Both print the paper-style table and write the JSON report described in `reports.py`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from scenetext.cli.errors import UsageError, user_mistakes
from scenetext.evaluation.benchmarks import BENCHMARK_GROUPS, PRESET_NUM_POINTS, preset_num_points
from scenetext.modeling.device_options import add_device_arguments

# The recognition protocols' names; `metrics.recognition.PROTOCOL_CHARSETS` (whose module imports torch, which
# building the parser must not) holds their charsets, and a test keeps the two equal.
PROTOCOLS = ("36", "62", "94", "full")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `evaluate` command and its `recognizer` and `detector` sub-commands."""
    evaluate = subparsers.add_parser(
        "evaluate", help="evaluate a recognizer or detector with the standard protocols"
    )
    tasks = evaluate.add_subparsers(dest="task", required=True)

    recognizer = _add_task(
        tasks,
        "recognizer",
        help="word accuracy and 1-NED on the LMDB benchmarks or a folder of crops, or of a JSON-lines "
        "prediction file",
        description="Either --model with --data (LMDB benchmarks under ROOT, or a folder of word crops with a "
        "labels.txt of <file><TAB><label> lines) or --predictions FILE.jsonl "
        'with one {"prediction": ..., "label": ...} object per line.',
        predictions_help="JSON-lines file of prediction/label records",
    )
    recognizer.add_argument(
        "--data",
        type=Path,
        help="benchmark root (<root>/test/<name> or <root>/<name>), or a folder of crops with a labels.txt",
    )
    recognizer.add_argument(
        "--benchmarks",
        nargs="+",
        metavar="NAME",
        help=f"benchmark or group names ({', '.join([*BENCHMARK_GROUPS, 'all'])}); default: all standard sets",
    )
    recognizer.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="36",
        help="test charset: 36 lowercase alphanumeric (default), 62 case-sensitive, 94 printable ASCII, full: "
        "the model's own charset, case-sensitive (other scripts; a folder of crops)",
    )
    recognizer.add_argument("--batch-size", type=int, default=512)
    add_device_arguments(recognizer, int8=True)
    recognizer.add_argument(
        "--json", type=Path, default=Path("evaluation-recognizer.json"), help="report path"
    )
    recognizer.set_defaults(func=run_recognizer)

    detector = _add_task(
        tasks,
        "detector",
        help="precision/recall/hmean (ICDAR 2015 IoU protocol) of a model or of ICDAR result files",
        description="Either --model, run on the images <name>.<ext> of --data with ground truth "
        "gt_<name>.txt beside them, in --ground-truth, or in a sub-folder of --data (e.g. Imgs/ + Gts/), or "
        "--predictions DIR of res_<name>.txt files scored against the gt_<name>.txt files under --data.",
        predictions_help="folder of res_<name>.txt result files",
    )
    detector.add_argument(
        "--data",
        type=Path,
        required=True,
        help="with --model: folder of images (or of one images and one gt_*.txt sub-folder); with "
        "--predictions: of gt_*.txt",
    )
    detector.add_argument(
        "--ground-truth", type=Path, help="with --model: folder of the gt_<name>.txt files (default: --data)"
    )
    detector.add_argument(
        "--preset",
        choices=list(PRESET_NUM_POINTS),
        default="icdar2015",
        help="dataset settings: ground truth as quadrilaterals (icdar2015, td500) or polygons, and with "
        "--model the test scale and post-processing of TCM's released config",
    )
    thresholds = detector.add_mutually_exclusive_group()
    thresholds.add_argument("--score-threshold", type=float, help="keep detections with score >= this")
    thresholds.add_argument(
        "--best-hmean-sweep",
        action="store_true",
        help="report the best hmean over score thresholds 0.3-0.9, as mmocr and TCM do (tuned on the test set)",
    )
    detector.add_argument(
        "--order-by-score",
        action="store_true",
        help="with --predictions: match detections by descending score, as the official script does with "
        "confidences (default: file order)",
    )
    detector.add_argument(
        "--end-to-end",
        choices=PROTOCOLS,
        metavar="PROTOCOL",
        help="with --predictions: result lines end with a transcription; also score reading (36, 62 or 94)",
    )
    detector.add_argument(
        "--visualize", type=Path, metavar="DIR", help="with --model: draw GT and detections"
    )
    detector.add_argument("--batch-size", type=int, default=1)
    add_device_arguments(detector)
    detector.add_argument("--json", type=Path, default=Path("evaluation-detector.json"), help="report path")
    detector.set_defaults(func=run_detector)
    return evaluate


def _add_task(
    tasks: argparse._SubParsersAction, role: str, help: str, description: str, predictions_help: str
) -> argparse.ArgumentParser:
    """The `evaluate <role>` parser, whose source is either a model it runs or another system's predictions."""
    parser = tasks.add_parser(role, help=help, description=description)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help=f"saved {role} folder or Hub id (loaded with trust_remote_code)")
    source.add_argument("--predictions", type=Path, help=predictions_help)
    return parser


def run_recognizer(args: argparse.Namespace) -> int:
    from scenetext.data.labelled_folder import is_labelled_folder
    from scenetext.evaluation.recognizer import (
        evaluate_recognizer_on_benchmarks,
        evaluate_recognizer_on_folder,
        load_recognizer,
        recognizer_charset,
        score_prediction_file,
    )
    from scenetext.evaluation.reports import write_json

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.predictions is not None and (args.data is not None or args.benchmarks):
        raise UsageError("--data and --benchmarks apply to --model; a prediction file carries its labels")
    if args.predictions is None and args.data is None:
        raise UsageError("--model needs --data ROOT (the benchmark root or a folder with a labels.txt)")
    labelled_folder = args.data is not None and is_labelled_folder(args.data)
    if labelled_folder and args.benchmarks:
        raise UsageError(f"--benchmarks selects LMDB benchmarks; {args.data} is a folder of labelled crops")
    # Evaluation reads the user's files and records throughout; what they get wrong is raised as ValueError
    # or FileNotFoundError naming the file or record.
    if args.protocol == "full" and not labelled_folder:
        raise UsageError(
            "--protocol full compares on the model's own charset: give --model and a folder of crops with a "
            "labels.txt (the LMDB benchmarks are ASCII: 36, 62 or 94)"
        )
    with user_mistakes():
        if args.predictions is not None:
            report = score_prediction_file(args.predictions, args.protocol)
        else:
            predict = load_recognizer(args.model, args.device, args.dtype)
            if labelled_folder:
                charset = recognizer_charset(args.model) if args.protocol == "full" else None
                report = evaluate_recognizer_on_folder(
                    predict, args.data, args.protocol, args.batch_size, model_name=args.model, charset=charset
                )
            else:
                report = evaluate_recognizer_on_benchmarks(
                    predict, args.data, args.benchmarks, args.protocol, args.batch_size, model_name=args.model
                )
    print(report.format_tables())
    print(f"\nJSON report: {write_json(report, args.json)}")
    return 0


def run_detector(args: argparse.Namespace) -> int:
    from scenetext.evaluation.detector import evaluate_detector, load_detector, score_result_files
    from scenetext.evaluation.reports import write_json

    if args.predictions is not None and (args.visualize is not None or args.ground_truth is not None):
        raise UsageError(
            "--visualize and --ground-truth apply to --model; with --predictions, --data is the ground truth"
        )
    if args.predictions is None and args.end_to_end is not None:
        raise UsageError("--end-to-end scores result files with transcriptions; use it with --predictions")
    with user_mistakes():
        if args.predictions is not None:
            report = score_result_files(
                args.predictions,
                args.data,
                preset_num_points(args.preset),
                args.score_threshold,
                args.best_hmean_sweep,
                args.end_to_end,
                args.order_by_score,
            )
        else:
            predict = load_detector(args.model, args.preset, args.device, args.dtype)
            report = evaluate_detector(
                predict,
                args.data,
                args.ground_truth,
                args.preset,
                args.batch_size,
                args.score_threshold,
                args.best_hmean_sweep,
                args.visualize,
                model_name=args.model,
            )
    print(report.format_table())
    print(f"\nJSON report: {write_json(report, args.json)}")
    return 0
