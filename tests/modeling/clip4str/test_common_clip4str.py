"""CLIP4STR through the checks every model passes (tests/modeling/test_modeling_common.py)."""

import torch

from scenetext.modeling.clip4str import Clip4StrConfig, Clip4StrForSceneTextRecognition
from scenetext.processors.clip4str.tokenization_clip4str import Clip4StrTokenizer

from ..test_modeling_common import ModelTesterMixin

WORDS = ("hello", "a1b2", "text")


class Clip4StrModelTester:
    def get_config(self) -> Clip4StrConfig:
        # No dropout: train-mode gradients stay comparable between runs. Fixed decoding steps: a sample's
        # logits have the same length alone as within a batch (early stop waits for the batch's longest).
        return Clip4StrConfig.from_preset("tiny", decoder_dropout=0.0, decode_fixed_steps=True)

    def prepare_inputs(self, batch_size: int) -> dict[str, torch.Tensor]:
        config = self.get_config()
        generator = torch.Generator().manual_seed(batch_size)
        height, width = config.vision_config.image_size, config.vision_config.image_size
        words = [WORDS[index % len(WORDS)] for index in range(batch_size)]
        tokenizer = Clip4StrTokenizer(charset=config.charset, max_label_length=config.max_label_length)
        return {
            "pixel_values": torch.randn(batch_size, 3, height, width, generator=generator),
            "labels": tokenizer(words, padding=True, return_tensors="pt")["input_ids"],
        }


class TestClip4StrCommon(ModelTesterMixin):
    model_class = Clip4StrForSceneTextRecognition
    model_tester = Clip4StrModelTester()
    compared_outputs = ("logits", "visual_logits")
    bf16_atol = 0.1
