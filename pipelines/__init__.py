"""Inference pipelines (`scene-text-recognition`, `scene-text-detection`, `ocr`), the helpers that travel with them
(crop rectification, reading order) and result pictures."""

from .cropping_ocr import crop_polygon, crop_quad, order_quad, polygon_edges, rectify_region
from .drawing_ocr import draw_results, score_color
from .pipeline_ocr import OcrPipeline
from .reading_order_ocr import reading_order

__all__ = [
    "OcrPipeline",
    "crop_polygon",
    "crop_quad",
    "draw_results",
    "order_quad",
    "polygon_edges",
    "reading_order",
    "rectify_region",
    "score_color",
]
