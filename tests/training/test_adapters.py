"""PEFT fine-tuning configured in the training YAML: the tuner config, a run whose folders are adapters, and
those folders loaded by `from_pretrained`, the pipelines, `PeftModel` and merged into a plain model."""

import json

import pytest
import torch
import yaml
from PIL import Image
from transformers import AutoProcessor, pipeline

from scenetext.modeling.clip4str import Clip4StrForSceneTextRecognition
from scenetext.modeling.model_types import read_model_type
from scenetext.training.config import load_config
from scenetext.training.loop import Trainer
from scenetext.training.recognition import RecognitionTask
from tests.tiny_models import save_tiny_detector, save_tiny_recognizer, tiny_recognizer

from .runs import check_killed_run_resumes_to_identical_losses

peft = pytest.importorskip(
    "peft", reason='the PEFT tests need the [peft] extra (pip install "scenetext[peft]")'
)

from scenetext.training.adapters import CHARSET_MODULES, add_adapter, merge_adapter, peft_config  # noqa: E402

pytestmark = pytest.mark.usefixtures("single_thread")

GERMAN = "abcdefghijklmnopqrstuvwxyzäöüßABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÜ"


def test_lora_targets_every_attention_projection_and_saves_the_charset_rows_when_they_change():
    config = peft_config({"method": "lora", "r": 4}, charset_changed=True)
    assert isinstance(config, peft.LoraConfig)
    assert config.r == 4
    assert set(config.target_modules) == {"q_proj", "k_proj", "v_proj", "out_proj"}
    assert list(config.modules_to_save) == list(CHARSET_MODULES)
    unchanged = peft_config(
        {"method": "lora", "modules_to_save": ["visual_decoder.norm"]}, charset_changed=False
    )
    assert list(unchanged.modules_to_save) == ["visual_decoder.norm"]


@pytest.mark.parametrize(
    "options", [{"method": "ia3"}, {"method": "loha", "r": 4}, {"method": "lokr", "r": 4}]
)
def test_other_layer_tuners_train_only_their_weights(options):
    model, _ = tiny_recognizer()
    wrapped = add_adapter(model, options, charset_changed=False).train()
    labels = torch.tensor([[95, 11, 12, 0], [95, 13, 0, 96]])  # [B] a b [E] / [B] c [E] [P]
    wrapped(torch.randn(2, 3, 32, 32), labels=labels).loss.backward()
    trained = [name for name, parameter in wrapped.named_parameters() if parameter.grad is not None]
    prefix = {"ia3": "ia3_l", "loha": "hada_", "lokr": "lokr_"}[options["method"]]
    assert trained
    assert all(prefix in name for name in trained)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"method": "prompt_tuning"}, "prompt-learning method"),
        ({"method": "lorra"}, "unknown peft method 'lorra'"),
        ({"method": "lora", "rank": 8}, "LoraConfig has no option rank"),
    ],
)
def test_bad_peft_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        peft_config(options, charset_changed=False)


def _adapter_config(root, base):
    """A YAML for LoRA steps of the tiny recognizer at `base` onto a charset with umlauts, written in `root`."""
    # ASCII words: the adapter mechanics need no umlaut on the images (nor a font that draws one).
    synthetic = {
        "source": "synthetic",
        "num_samples": 8,
        "text": {"charset": "abcdefghijklmnopqrstuvwxyz", "max_length": 6},
    }
    mapping = {
        "task": "recognizer",
        "output_dir": str(root / "run"),
        "max_steps": 2,
        "batch_size": 4,
        "eval_every": 2,
        "save_every": 2,
        "log_with": None,
        "model": {
            "from_pretrained": str(base),
            "config": {"charset": GERMAN, "perm_num": 2},
            "peft": {"method": "lora", "r": 4, "lora_alpha": 8},
        },
        "processor": {"normalize_unicode": "NFC"},
        "data": {
            "train": synthetic,
            "eval": {**synthetic, "seed": 1000},
            "augment": False,
            "eval_protocol": "full",
        },
        "optimizer": {"learning_rate": 1e-2, "scale_learning_rate": False, "schedule": "constant"},
    }
    (root / "run.yaml").write_text(yaml.safe_dump(mapping, allow_unicode=True), encoding="utf-8")
    return root / "run.yaml"


@pytest.fixture(scope="module")
def adapter_run(tmp_path_factory):
    """Two LoRA steps of the tiny recognizer onto a charset with umlauts."""
    root = tmp_path_factory.mktemp("adapter-run")
    base = save_tiny_recognizer(root / "base")
    config = load_config(_adapter_config(root, base))
    trainer = Trainer(config, RecognitionTask(config))
    trainer.train()
    return base, root / "run", trainer.accelerator.unwrap_model(trainer.model)


def test_only_the_adapter_and_the_charset_rows_train(adapter_run):
    _, _, trained = adapter_run
    trainable = {name for name, parameter in trained.named_parameters() if parameter.requires_grad}
    assert trainable
    assert all("lora_" in name or ".modules_to_save." in name for name in trainable)
    assert any(".visual_decoder.head.modules_to_save." in name for name in trainable)
    # The base weights stayed as they were loaded.
    base = Clip4StrForSceneTextRecognition.from_pretrained(adapter_run[0])
    torch.testing.assert_close(
        trained.get_base_model().vision_model.encoder.layers[0].self_attn.q_proj.base_layer.weight,
        base.vision_model.encoder.layers[0].self_attn.q_proj.weight,
        rtol=0,
        atol=0,
    )


def test_run_folders_are_adapter_folders_naming_their_base(adapter_run):
    base, run, _ = adapter_run
    for name in ("best", "last"):
        folder = run / name
        assert (folder / "adapter_model.safetensors").is_file()
        assert not (folder / "model.safetensors").exists()
        assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == str(
            base
        )
        assert json.loads((folder / "tokenizer_config.json").read_text())["charset"] == GERMAN
        # The commands check a folder's model type before loading it: an adapter has its base's.
        assert read_model_type(folder) == "clip4str"


def test_from_pretrained_and_peft_load_the_adapter_onto_the_resized_base(adapter_run):
    base, run, trained = adapter_run
    pixel_values = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    trained.eval()
    with torch.no_grad():
        expected = trained(pixel_values).logits
        loaded = Clip4StrForSceneTextRecognition.from_pretrained(run / "last").eval()
        assert loaded.config.charset == GERMAN
        torch.testing.assert_close(loaded(pixel_values).logits, expected)
        resized = Clip4StrForSceneTextRecognition.from_pretrained(base)
        resized.resize_charset(GERMAN)
        with_peft = peft.PeftModel.from_pretrained(resized, run / "last").eval()
        torch.testing.assert_close(with_peft(pixel_values).logits, expected)
    # Training moved the saved rows away from the base's (PeftModel wraps `resized` in place).
    head = resized.visual_decoder.head
    assert not torch.allclose(head.modules_to_save["default"].weight, head.original_module.weight)


def test_the_recognition_pipeline_reads_an_adapter_folder_with_its_charset(adapter_run):
    _, run, _ = adapter_run
    reader = pipeline("scene-text-recognition", model=str(run / "last"))
    assert reader.model.config.charset == GERMAN
    assert reader.processor.tokenizer.charset == GERMAN
    processor = AutoProcessor.from_pretrained(run / "last")
    # The adapter's processor, not the base's: the run normalised images with CLIP's mean, the base folder not.
    base_processor = AutoProcessor.from_pretrained(adapter_run[0])
    assert processor.image_processor.image_mean != base_processor.image_processor.image_mean
    assert reader.processor.image_processor.image_mean == processor.image_processor.image_mean
    pixels = torch.randint(0, 256, (32, 96, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    image = Image.fromarray(pixels.numpy())
    pixel_values = processor(images=[image], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = processor.batch_decode(reader.model(pixel_values).logits)["generated_text"][0]
    assert reader(image)[0]["generated_text"] == expected


def test_merged_export_gives_the_adapter_outputs_without_peft(adapter_run, tmp_path):
    _, run, trained = adapter_run
    merged_folder = merge_adapter(run / "last", tmp_path / "merged")
    assert not (merged_folder / "adapter_config.json").exists()
    merged = Clip4StrForSceneTextRecognition.from_pretrained(merged_folder).eval()
    assert merged.config.charset == GERMAN
    assert AutoProcessor.from_pretrained(merged_folder).tokenizer.charset == GERMAN
    assert not any("lora" in name for name in merged.state_dict())
    pixel_values = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    trained.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            merged(pixel_values).logits, trained(pixel_values).logits, rtol=1e-4, atol=1e-4
        )


def test_the_ocr_pipeline_takes_an_adapter_folder_as_its_recognizer(adapter_run, tmp_path):
    _, run, _ = adapter_run
    detector = save_tiny_detector(tmp_path / "detector")
    ocr = pipeline("ocr", model=str(detector), recognizer=str(run / "last"))
    assert ocr.recognizer.config.charset == GERMAN
    assert ocr.recognizer_processor.tokenizer.charset == GERMAN
    assert isinstance(ocr(torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(3))), list)


def test_evaluate_command_scores_an_adapter_folder_on_its_full_charset(adapter_run, tmp_path, capsys):
    from scenetext.cli.main import main

    _, run, _ = adapter_run
    crops = tmp_path / "crops"
    crops.mkdir()
    lines = []
    for index, label in enumerate(["Größe", "tür", "ÄRGER"]):
        Image.new("RGB", (64, 24), "white").save(crops / f"{index}.png")
        lines.append(f"{index}.png\t{label}")
    (crops / "labels.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = tmp_path / "report.json"
    argv = [
        "evaluate",
        "recognizer",
        "--model",
        str(run / "last"),
        "--data",
        str(crops),
        "--protocol",
        "full",
    ]
    assert main([*argv, "--json", str(report), "--device", "cpu"]) == 0
    result = json.loads(report.read_text(encoding="utf-8"))
    assert (result["protocol"], result["charset"], result["num_samples"]) == ("full", GERMAN, 3)
    assert "full 59-character charset, case-sensitive" in capsys.readouterr().out


def test_push_refuses_an_adapter_folder_and_says_what_to_publish(adapter_run):
    from scenetext.hub_cards.checks import check_model_folder

    _, run, _ = adapter_run
    with pytest.raises(
        ValueError, match=r"PEFT adapter folder: publish a plain folder made with .*merge_adapter"
    ):
        check_model_folder(run / "last")


@pytest.mark.slow
def test_a_killed_adapter_run_resumes_to_identical_losses(tmp_path):
    config_path = _adapter_config(tmp_path, save_tiny_recognizer(tmp_path / "base"))
    overrides = ["max_steps=8", "save_every=3", "eval_every=1000", "data.train.num_samples=40"]
    check_killed_run_resumes_to_identical_losses(
        tmp_path, str(config_path), RecognitionTask, overrides, env={"OMP_NUM_THREADS": "1"}
    )
