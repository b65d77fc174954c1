"""`evaluate` metric: precision, recall and hmean of scene text detection under the ICDAR 2015 IoU protocol.
A thin wrapper over `scenetext.evaluation.metrics.detection.score_detection`, loaded with
`evaluate.load(<this folder>)`; the numbers are that function's.
"""

import datasets
import evaluate

from scenetext.evaluation.metrics.detection import (
    DONT_CARE_AREA_THRESHOLD,
    IOU_THRESHOLD,
    TextRegions,
    score_detection,
)
from scenetext.evaluation.metrics.metric_info import metric_info

_DESCRIPTION = """Dataset precision, recall and hmean from summed counts, as the ICDAR 2015 script: greedy one-to-one
matching at IoU > 0.5; ground truth transcribed `###` is don't care and removes the detections it covers by more
than half."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[polygon]]`): per image, the detected polygons ([[x, y], ...]).
    references (`list[dict]`): per image, `{"polygons": [...], "transcriptions": [...]}`.
    iou_threshold (`float`, defaults to 0.5), dont_care_threshold (`float`, defaults to 0.5).
Returns:
    precision, recall, hmean (in [0, 1]), num_gt_care, num_det_care, num_matched.
"""

_POLYGONS = datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Value("float64"))))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SceneTextDetection(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return metric_info(
            _DESCRIPTION,
            _KWARGS_DESCRIPTION,
            {
                "predictions": _POLYGONS,
                "references": {
                    "polygons": _POLYGONS,
                    "transcriptions": datasets.Sequence(datasets.Value("string")),
                },
            },
        )

    def _compute(
        self,
        predictions,
        references,
        iou_threshold=IOU_THRESHOLD,
        dont_care_threshold=DONT_CARE_AREA_THRESHOLD,
    ):
        images = (
            (TextRegions(reference["polygons"], reference["transcriptions"]), TextRegions(detected))
            for detected, reference in zip(predictions, references, strict=True)
        )
        counts = score_detection(images, iou_threshold, dont_care_threshold)
        return {
            "precision": counts.precision,
            "recall": counts.recall,
            "hmean": counts.hmean,
            "num_gt_care": counts.num_gt_care,
            "num_det_care": counts.num_det_care,
            "num_matched": counts.num_matched,
        }
