"""Both models train with transformers' `Trainer` through the shipped data collators."""

import pytest
import torch
from transformers import Trainer, TrainingArguments

from scenetext.data.augment_detection import SceneAugment
from scenetext.data.collators import DetectionCollator, RecognitionCollator
from scenetext.data.synthetic import SyntheticSceneConfig, render_scene_sample, render_word_sample
from scenetext.modeling.clip4str import Clip4StrConfig, Clip4StrForSceneTextRecognition
from scenetext.modeling.clip4str.convert_clip4str import build_processor
from scenetext.modeling.tcm import TcmConfig, TcmForSceneTextDetection
from scenetext.processors.clip4str import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from scenetext.processors.tcm import TcmImageProcessor

pytestmark = pytest.mark.usefixtures("single_thread")


def _train(
    model, rows: list[dict], collator, processing_class, output_dir, steps: int
) -> tuple[Trainer, list[float]]:
    """`steps` steps of transformers' `Trainer` on `rows` at a constant rate, logging every step; returns the
    trainer and its losses."""
    arguments = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=steps,
        per_device_train_batch_size=4,
        learning_rate=3e-3,
        lr_scheduler_type="constant",
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        remove_unused_columns=False,  # the rows' columns are the collator's input, not the model's arguments
        seed=0,
    )
    trainer = Trainer(
        model=model,
        args=arguments,
        train_dataset=rows,
        data_collator=collator,
        processing_class=processing_class,
    )
    trainer.train()
    return trainer, [record["loss"] for record in trainer.state.log_history if "loss" in record]


@pytest.mark.slow
def test_recognizer_trains_with_trainer(tmp_path):
    torch.manual_seed(0)
    config = Clip4StrConfig.from_preset("tiny", max_label_length=12)
    model = Clip4StrForSceneTextRecognition(config)
    processor = build_processor(config, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)
    rows = [render_word_sample(index, seed=0) for index in range(4)]
    trainer, history = _train(
        model, rows, RecognitionCollator(processor), processor, tmp_path / "run", steps=15
    )
    assert len(history) == 15
    assert sum(history[-3:]) < 0.8 * sum(history[:3])

    trainer.save_model(tmp_path / "saved")
    reloaded = Clip4StrForSceneTextRecognition.from_pretrained(tmp_path / "saved")
    assert torch.equal(
        reloaded.state_dict()["visual_decoder.head.weight"], model.state_dict()["visual_decoder.head.weight"]
    )
    assert (tmp_path / "saved" / "processor_config.json").exists()


@pytest.mark.slow
def test_detector_trains_with_trainer(tmp_path):
    torch.manual_seed(0)
    model = TcmForSceneTextDetection(TcmConfig.from_preset("tiny"))
    image_processor = TcmImageProcessor()
    scenes = SyntheticSceneConfig(image_size=(96, 128), num_words=(1, 3), font_size=(16, 28))
    rows = [render_scene_sample(index, seed=0, config=scenes) for index in range(4)]
    collator = DetectionCollator(
        image_processor, SceneAugment(crop_size=(96, 96), scale_range=(0.8, 1.2)), seed=0
    )
    trainer, history = _train(model, rows, collator, image_processor, tmp_path / "run", steps=20)
    assert len(history) == 20
    assert sum(history[-4:]) < 0.8 * sum(history[:4])
    trainer.save_model(tmp_path / "saved")
    assert (tmp_path / "saved" / "preprocessor_config.json").exists()
    reloaded = TcmForSceneTextDetection.from_pretrained(tmp_path / "saved")
    assert torch.equal(reloaded.visual_gamma, model.visual_gamma)


def test_collators_explain_bad_rows():
    image_processor = TcmImageProcessor()
    with pytest.raises(ValueError, match="detection row 0 has no 'polygons'"):
        DetectionCollator(image_processor)([{"image": None}])
    row = render_scene_sample(0, seed=0, config=SyntheticSceneConfig(image_size=(96, 128), num_words=(1, 1)))
    assert len(row["polygons"]) == 1
    with pytest.raises(ValueError, match="1 polygons, 2 texts"):
        DetectionCollator(image_processor)([{**row, "texts": ["a", "b"]}])
    with pytest.raises(TypeError, match="TcmImageProcessor"):
        DetectionCollator(object())
    processor = build_processor(Clip4StrConfig.from_preset("tiny"), OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)
    with pytest.raises(ValueError, match="recognition row 0 has no 'label'"):
        RecognitionCollator(processor)([{"image": None}])
    with pytest.raises(ValueError, match="survives the label preprocessing"):
        RecognitionCollator(processor)([{"image": None, "label": "   "}])
