"""Inference pipelines (`scene-text-recognition`, `scene-text-detection`, `ocr`), the helpers that travel with them
(image loading, crop rectification and recognition, reading order) and result pictures."""

from .crop_recognition import DEFAULT_CROP_MARGIN, recognize_crops, recognize_regions
from .cropping_ocr import crop_polygon, crop_quad, order_quad, polygon_edges, rectify_region
from .drawing_ocr import draw_results, score_color
from .image_loading import load_rgb_image
from .pipeline_ocr import OcrPipeline
from .reading_order_ocr import reading_order

__all__ = [
    "DEFAULT_CROP_MARGIN",
    "OcrPipeline",
    "crop_polygon",
    "crop_quad",
    "draw_results",
    "load_rgb_image",
    "order_quad",
    "polygon_edges",
    "reading_order",
    "recognize_crops",
    "recognize_regions",
    "rectify_region",
    "score_color",
]
