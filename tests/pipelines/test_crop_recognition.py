"""`recognize_crops` / `recognize_regions`: batching does not change readings; regions map back to their image."""

import numpy as np
import pytest
import torch

from scenetext.modeling.clip4str import Clip4StrConfig, Clip4StrForSceneTextRecognition
from scenetext.modeling.clip4str.convert_clip4str import build_processor
from scenetext.pipelines import recognize_crops, recognize_regions, rectify_region
from scenetext.processors.clip4str import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD


@pytest.fixture(scope="module")
def recognizer():
    torch.manual_seed(0)
    config = Clip4StrConfig.from_preset("tiny")
    model = Clip4StrForSceneTextRecognition(config).eval()
    return model, build_processor(config, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)


def _crops(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (20 + 3 * index, 60, 3), dtype=np.uint8) for index in range(count)]


def test_batch_size_does_not_change_the_readings(recognizer):
    model, processor = recognizer
    crops = _crops(5)
    one_by_one = recognize_crops(model, processor, crops, batch_size=1)
    batched = recognize_crops(model, processor, crops, batch_size=3)
    assert [text for text, _ in batched] == [text for text, _ in one_by_one]
    np.testing.assert_allclose([s for _, s in batched], [s for _, s in one_by_one], rtol=1e-4)
    decoded = processor.batch_decode(model(**processor(images=crops[:1])).logits)
    assert one_by_one[0] == (
        decoded["generated_text"][0],
        pytest.approx(float(decoded["scores"][0]), rel=1e-5),
    )
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        recognize_crops(model, processor, crops, batch_size=0)


def test_regions_are_read_in_order_per_image(recognizer):
    model, processor = recognizer
    images = [np.asarray(crop) for crop in _crops(2)]
    quad = np.array([[2, 2], [50, 2], [50, 15], [2, 15]], dtype=np.float64)
    polygons = [[quad, quad + 1], []]
    readings = recognize_regions(model, processor, images, polygons, batch_size=2, crop_margin=0.1)
    crops = [rectify_region(images[0], region, 0.1) for region in polygons[0]]
    assert readings == [recognize_crops(model, processor, crops), []]
    with pytest.raises(ValueError, match="got 2 images but polygons for 1"):
        recognize_regions(model, processor, images, polygons[:1])
