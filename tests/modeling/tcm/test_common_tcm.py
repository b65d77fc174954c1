"""TCM through the checks every model passes (tests/modeling/test_modeling_common.py)."""

import torch

from scenetext.modeling.tcm import TcmConfig, TcmForSceneTextDetection
from scenetext.processors.tcm import TcmImageProcessor

from ..test_modeling_common import ModelTesterMixin


class TcmModelTester:
    height, width = 64, 96

    def get_config(self) -> TcmConfig:
        return TcmConfig.from_preset("tiny")

    def prepare_inputs(self, batch_size: int) -> dict[str, object]:
        """Random pixels and the DB targets of one text rectangle per image."""
        generator = torch.Generator().manual_seed(batch_size)
        shape = (batch_size, self.height, self.width)
        shrink, border = torch.zeros(shape), torch.zeros(shape)
        shrink[:, 24:40, 16:-16] = 1
        border[:, 20:44, 12:-12] = 1
        return {
            "pixel_values": torch.randn(batch_size, 3, self.height, self.width, generator=generator),
            "labels": {
                "shrink_map": shrink,
                "shrink_mask": torch.ones(shape),
                "threshold_map": 0.3 + 0.4 * border * (1 - shrink),
                "threshold_mask": border,
            },
        }


class TestTcmCommon(ModelTesterMixin):
    model_class = TcmForSceneTextDetection
    model_tester = TcmModelTester()
    compared_outputs = ("prob_map", "thresh_map", "binary_map", "matching_map", "text_embeddings")
    # The binary map, sigmoid(50 (P - T)), multiplies the maps' rounding differences by up to 12.5.
    bf16_atol = 0.2


class TcmHeadTester(TcmModelTester):
    """A tiny TCM with another head, its labels made by the image processor from two text polygons per image."""

    def __init__(self, head_type: str):
        self.head_type = head_type

    def get_config(self) -> TcmConfig:
        return TcmConfig.from_preset("tiny", head_type=self.head_type)

    def prepare_inputs(self, batch_size: int) -> dict[str, object]:
        generator = torch.Generator().manual_seed(batch_size)
        processor = TcmImageProcessor(head_type=self.head_type)
        polygons = [[[8, 8], [80, 8], [80, 24], [8, 24]], [[12, 36], [60, 34], [62, 56], [14, 58]]]
        targets = [processor.prepare_targets(polygons, (self.height, self.width)) for _ in range(batch_size)]
        return {
            "pixel_values": torch.randn(batch_size, 3, self.height, self.width, generator=generator),
            "labels": {key: torch.stack([target[key] for target in targets]) for key in targets[0]},
        }


class TestTcmPanCommon(ModelTesterMixin):
    model_class = TcmForSceneTextDetection
    model_tester = TcmHeadTester("pan")
    compared_outputs = ("pan_maps", "matching_map", "text_embeddings")
    bf16_atol = 0.2


class TestTcmFcenetCommon(ModelTesterMixin):
    model_class = TcmForSceneTextDetection
    model_tester = TcmHeadTester("fcenet")
    compared_outputs = ("fce_classification", "fce_regression", "matching_map", "text_embeddings")
    # The FPN has no normalisation: its maps reach magnitudes near 10, where bf16's 3 significant digits leave
    # absolute differences of a few tenths (and fp32 ones of a few 1e-5).
    bf16_atol = 0.6
    fp32_atol = 1e-4
