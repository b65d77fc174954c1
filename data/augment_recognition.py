"""Word-crop augmentation of the official recipe (parseq / CLIP4STR `rand_augment_transform`).

timm's RandAugment at magnitude 5 with 3 operations drawn without replacement from timm's "increasing"
transforms, without SharpnessIncreasing (it fights the blur), plus Gaussian blur and Poisson noise; rotation up
to 30 degrees, shear 0.9 / 0.2, translation 0.10 / 0.30. timm's operations draw from Python's and numpy's global
generators, so every application is seeded per sample and the global states are put back afterwards: the
result depends on the sample alone, never on the order the data loader produced it in.
"""

from __future__ import annotations

import random
from contextlib import contextmanager

import numpy as np
from PIL import Image, ImageFilter
from timm.data import auto_augment

from scenetext.pipelines.image_loading import load_rgb_image

_HPARAMS = {
    "rotate_deg": 30,
    "shear_x_pct": 0.9,
    "shear_y_pct": 0.2,
    "translate_x_pct": 0.10,
    "translate_y_pct": 0.30,
}


class _WordCropOp:
    """One extra operation with timm `AugmentOp`'s contract: applied with probability `prob`; `magnitude` on
    timm's 0-10 scale sets the strength, capped relative to the image size (parseq's `_get_param`)."""

    def __init__(self, name: str, magnitude: float, prob: float = 0.5):
        self.name = name
        self.magnitude = magnitude
        self.prob = prob

    def __call__(self, image: Image.Image) -> Image.Image:
        if random.random() > self.prob:
            return image
        level = self.magnitude / 10
        longest = max(image.size)
        if self.name == "GaussianBlur":
            radius = round(min(4 * level, max(1, 0.02 * longest)))
            return image.filter(ImageFilter.GaussianBlur(radius))
        lam = round(min(40 * level, max(1, 0.2 * longest))) | 1
        pixels = np.asarray(image, dtype=np.int32)
        noise = np.random.poisson(lam, size=pixels.shape) - lam
        return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))


class WordCropRandAugment:
    """The official recognition augmentation; `__call__(image, seed)` is a pure function of its inputs."""

    def __init__(self, magnitude: float = 5, num_layers: int = 3):
        transforms = [t for t in auto_augment._RAND_INCREASING_TRANSFORMS if t != "SharpnessIncreasing"]
        ops = auto_augment.rand_augment_ops(magnitude, hparams=_HPARAMS, transforms=transforms)
        ops += [_WordCropOp("GaussianBlur", magnitude), _WordCropOp("PoissonNoise", magnitude)]
        # Equal weights make timm choose without replacement: no operation twice on one crop.
        self.transform = auto_augment.RandAugment(ops, num_layers, choice_weights=[1 / len(ops)] * len(ops))

    def __call__(self, image: Image.Image, seed: int) -> Image.Image:
        with _seeded_global_generators(seed):
            return self.transform(load_rgb_image(image, apply_exif_orientation=False))


@contextmanager
def _seeded_global_generators(seed: int):
    python_state, numpy_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
