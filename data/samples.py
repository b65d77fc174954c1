"""The sample schemas that every data source yields, and the checks they share.

Recognition sample (`RECOGNITION_FEATURES`)::

    {"image": PIL.Image (RGB), "label": str, "source": "<file or database>:<index>"}

Detection sample (`DETECTION_FEATURES`)::

    {"image": PIL.Image (RGB), "polygons": [[x1, y1, x2, y2, ...], ...] (image pixels, float64),
     "texts": [str, ...], "ignore": [bool, ...], "source": "<file>:<index or line>"}

``polygons``, ``texts`` and ``ignore`` are parallel lists, one entry per text region; ``ignore`` marks
don't-care regions (``###``). Coordinates are float64 so that the exact synthetic quadrilaterals survive.
Images are declared as ``datasets.Image(mode="RGB")``; sources hand over validated encoded bytes (decoded
once by the source to catch corrupt images, once more by `datasets` on access).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import PIL
import PIL.Image
from datasets import Features, Image, List, Value

from scenetext.pipelines.image_loading import load_rgb_image
from scenetext.processors.clip4str.tokenization_clip4str import preprocess_label

RECOGNITION_FEATURES = Features(
    {"image": Image(mode="RGB"), "label": Value("string"), "source": Value("string")}
)

DETECTION_FEATURES = Features(
    {
        "image": Image(mode="RGB"),
        "polygons": List(List(Value("float64"))),
        "texts": List(Value("string")),
        "ignore": List(Value("bool")),
        "source": Value("string"),
    }
)

_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class LabelPreprocessing:
    """The official CLIP4STR / parseq ground-truth pipeline, as a picklable setting of a source.

    See `scenetext.processors.clip4str.tokenization_clip4str.preprocess_label`: whitespace removal,
    NFKD-to-ASCII, drop if longer than ``max_label_length`` (before charset filtering), charset adapter,
    drop if empty. Dropped samples are filtered, not corrupt: they are not reported.
    """

    charset: str
    max_label_length: int = 25
    remove_whitespace: bool = True
    normalize_unicode: bool = True

    def __call__(self, label: str) -> str | None:
        return preprocess_label(
            label, self.charset, self.max_label_length, self.remove_whitespace, self.normalize_unicode
        )


def decode_stored_image(data: bytes) -> tuple[PIL.Image.Image, dict | PIL.Image.Image]:
    """Encoded image bytes -> (the RGB image in its stored orientation, what a source yields for its ``image``
    column). Raises `ValueError` when the bytes are not a readable image.

    The bytes are passed on as they are (no re-encoding) when `datasets`, which decodes them with PIL's
    `convert("RGB")` and applies EXIF orientation, gets the same pixels as `load_rgb_image`. Otherwise the
    decoded image is handed over: an EXIF orientation tag (the official pipelines read stored orientation, and
    annotations are given in it), 16-bit or float pixels (`convert` clips them), or transparency (`convert`
    drops it where `load_rgb_image` composites on white).
    """
    image = load_rgb_image(data, apply_exif_orientation=False)
    with PIL.Image.open(io.BytesIO(data)) as stored:
        # Only what the header holds: `getexif()` would decode a PNG's pixels a second time to look for tags
        # stored after them (formats put EXIF before the pixels).
        exif = PIL.Image.Exif()
        if stored.info.get("exif"):
            exif.load(stored.info["exif"])
        decoded_alike = stored.mode in ("RGB", "L") and exif.get(_EXIF_ORIENTATION) is None
    return image, ({"bytes": data, "path": None} if decoded_alike else image)


def encode_png(image: PIL.Image.Image) -> dict:
    """An ``image`` column value holding ``image`` as quickly compressed PNG bytes.

    Handing `datasets` a PIL image makes it encode PNG at the default (slow) level; for generated images,
    which are large and noisy, that costs more than drawing them. Level 1 is lossless all the same.
    """
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return {"bytes": buffer.getvalue(), "path": None}


def check_detection_sample(sample: dict, position: int) -> None:
    """Raise `TypeError`/`ValueError` naming sample ``position`` unless it has a PIL image and parallel
    ``polygons`` / ``texts`` / ``ignore`` lists (what the writers need)."""
    if not isinstance(sample.get("image"), PIL.Image.Image):
        raise TypeError(f"sample {position} needs a PIL 'image', got keys {sorted(sample)}")
    lengths = {key: len(sample.get(key) or ()) for key in ("polygons", "texts", "ignore")}
    if len(set(lengths.values())) != 1:
        raise ValueError(
            f"sample {position}: polygons, texts and ignore must be parallel lists, got {lengths}"
        )


def flatten_polygon(polygon: object) -> list[float]:
    """A polygon given as flat coordinates or as ``[x, y]`` pairs, as a flat list of floats.

    Raises `ValueError` unless it has at least 3 points of finite numbers.
    """
    if isinstance(polygon, (list, tuple)) and polygon and all(isinstance(p, (list, tuple)) for p in polygon):
        if not all(len(point) == 2 for point in polygon):
            raise ValueError(f"a polygon given as points needs [x, y] pairs, got {polygon}")
        polygon = [value for point in polygon for value in point]
    if not isinstance(polygon, (list, tuple)) or len(polygon) < 6 or len(polygon) % 2:
        raise ValueError(f"a polygon needs an even number (>= 6) of coordinates, got {polygon}")
    if not all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in polygon):
        raise ValueError(f"polygon coordinates must be numbers, got {polygon}")
    if not all(math.isfinite(value) for value in polygon):
        raise ValueError(f"polygon coordinates must be finite, got {polygon}")
    return [float(value) for value in polygon]
