"""TCM text detection: image processor (resize / normalise / pad, DB targets, DB post-processing)."""

from .db_geometry_tcm import (
    DbTargets,
    extract_text_boundaries,
    extract_text_boundaries_per_contour,
    make_db_targets,
)
from .image_processing_tcm import (
    POST_PROCESSING_PRESETS,
    SIZE_FORMS,
    TEST_SIZES,
    TcmImageProcessor,
    check_size,
    parse_size,
)

__all__ = [
    "POST_PROCESSING_PRESETS",
    "SIZE_FORMS",
    "TEST_SIZES",
    "DbTargets",
    "TcmImageProcessor",
    "check_size",
    "extract_text_boundaries",
    "extract_text_boundaries_per_contour",
    "make_db_targets",
    "parse_size",
]
