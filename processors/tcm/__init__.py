"""TCM text detection: image processor (resize / normalise / pad, DB targets, DB post-processing)."""

from .db_geometry_tcm import (
    DbTargets,
    extract_text_boundaries,
    extract_text_boundaries_per_contour,
    make_db_targets,
)
from .image_processing_tcm import POST_PROCESSING_PRESETS, TEST_SIZES, TcmImageProcessor

__all__ = [
    "POST_PROCESSING_PRESETS",
    "TEST_SIZES",
    "DbTargets",
    "TcmImageProcessor",
    "extract_text_boundaries",
    "extract_text_boundaries_per_contour",
    "make_db_targets",
]
