"""TCM text detection: image processor (resize / normalise / pad, targets and post-processing of the DBNet, PAN and
FCENet heads)."""

from .db_geometry_tcm import (
    DbTargets,
    extract_text_boundaries,
    extract_text_boundaries_per_contour,
    make_db_targets,
)
from .fce_geometry_tcm import extract_fce_boundaries, make_fce_targets
from .image_processing_tcm import (
    POST_PROCESSING_PRESETS,
    SIZE_FORMS,
    TEST_SIZES,
    TcmImageProcessor,
    check_size,
    parse_size,
)
from .pan_geometry_tcm import extract_pan_boundaries, make_pan_targets

__all__ = [
    "POST_PROCESSING_PRESETS",
    "SIZE_FORMS",
    "TEST_SIZES",
    "DbTargets",
    "TcmImageProcessor",
    "check_size",
    "extract_fce_boundaries",
    "extract_pan_boundaries",
    "extract_text_boundaries",
    "extract_text_boundaries_per_contour",
    "make_db_targets",
    "make_fce_targets",
    "make_pan_targets",
    "parse_size",
]
