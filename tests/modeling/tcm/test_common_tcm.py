"""TCM through the checks every model passes (tests/modeling/test_modeling_common.py)."""

import torch

from scenetext.modeling.tcm import TcmConfig, TcmForSceneTextDetection

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
