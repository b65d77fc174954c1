"""What the papers report: BibTeX entries and the numbers a card's evaluation table is compared with.

Recognition numbers are word accuracy (%) under the 36-character protocol, as in the CLIP4STR README's table
for the OpenAI-CLIP models (the released checkpoints; the arXiv/TIP tables differ by a few tenths on some
sets). Detection numbers are the F-measure (%, IoU hmean) of TCM-DBNet from the TCM README.
"""

from __future__ import annotations

from dataclasses import dataclass

from scenetext.evaluation.benchmarks import BENCHMARK_GROUPS


@dataclass(frozen=True)
class ReportedResults:
    """One column of reported numbers: a model variant and its score per benchmark."""

    label: str
    scores: dict[str, float]


CLIP4STR_BIBTEX = """@article{zhao2024clip4str,
  title         = {{CLIP4STR}: A Simple Baseline for Scene Text Recognition with Pre-trained Vision-Language Model},
  author        = {Zhao, Shuai and Quan, Ruijie and Zhu, Linchao and Yang, Yi},
  journal       = {IEEE Transactions on Image Processing},
  year          = {2024},
  eprint        = {2305.14014},
  archivePrefix = {arXiv}
}"""

TCM_BIBTEX = """@inproceedings{yu2023turning,
  title         = {Turning a {CLIP} Model into a Scene Text Detector},
  author        = {Yu, Wenwen and Liu, Yuliang and Hua, Wei and Jiang, Deqiang and Ren, Bo and Bai, Xiang},
  booktitle     = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year          = {2023},
  eprint        = {2302.14338},
  archivePrefix = {arXiv}
}"""

# The new sets, in the order of the CLIP4STR README's table (after its nine benchmarks).
_CLIP4STR_NEW = ("COCOv1.4", "ArT", "Uber")


def _clip4str_column(label: str, benchmarks: tuple[float, ...], new: tuple[float, ...]) -> ReportedResults:
    return ReportedResults(
        label, dict(zip(BENCHMARK_GROUPS["clip4str"] + _CLIP4STR_NEW, benchmarks + new, strict=True))
    )


CLIP4STR_REPORTED: tuple[ReportedResults, ...] = (
    _clip4str_column(
        "CLIP4STR-B (MJ+ST)",
        (97.70, 95.36, 96.06, 87.47, 84.02, 91.47, 94.44, 80.01, 86.75),
        (66.69, 72.82, 43.52),
    ),
    _clip4str_column(
        "CLIP4STR-L (MJ+ST)",
        (97.57, 95.36, 96.75, 88.02, 84.40, 91.78, 94.44, 81.08, 87.38),
        (67.45, 73.48, 44.59),
    ),
    _clip4str_column(
        "CLIP4STR-B (Real)",
        (99.20, 98.30, 98.23, 91.44, 90.61, 96.90, 99.65, 77.36, 87.87),
        (80.80, 85.74, 86.70),
    ),
    _clip4str_column(
        "CLIP4STR-L (Real)",
        (99.43, 98.15, 98.52, 91.66, 91.14, 97.36, 98.96, 79.22, 89.07),
        (81.97, 85.83, 87.36),
    ),
)

# Keyed by the detector's evaluation preset names (`TcmImageProcessor.from_preset`), which name the datasets.
TCM_REPORTED: tuple[ReportedResults, ...] = (
    ReportedResults(
        "TCM-DBNet (paper)", {"icdar2015": 88.8, "td500": 88.8, "ctw1500": 85.1, "totaltext": 85.9}
    ),
)
