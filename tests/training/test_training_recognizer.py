"""Recognizer training with the Accelerate loop: learning, exact resumption after SIGKILL, two processes."""

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from scenetext.modeling.clip4str import Clip4StrForSceneTextRecognition
from scenetext.training.config import load_config
from scenetext.training.recognition import RecognitionTask, clip4str_parameter_groups, sincos_position_codes

from .runs import check_killed_run_resumes_to_identical_losses, check_loss_falls, train_log

# Small enough for seconds per step on 2 CPU cores; few samples so the loss visibly falls.
QUICK = [
    "batch_size=4",
    "data.train.num_samples=8",
    "data.train.samples_per_shard=4",
    "data.eval.num_samples=8",
    "data.augment=false",
    "log_with=null",
    "eval_every=1000",
    "optimizer.learning_rate=3e-3",
    "optimizer.schedule=constant",
]


@pytest.mark.slow
def test_loss_falls_and_checkpoints_load(tmp_path):
    check_loss_falls(tmp_path, "tiny-recognizer", RecognitionTask, [*QUICK, "save_every=30"], ratio=0.75)
    for name in ("best", "last"):
        model = Clip4StrForSceneTextRecognition.from_pretrained(tmp_path / name)
        assert model.config.max_label_length == 12
        assert (tmp_path / name / "processor_config.json").exists()
        saved_config = json.loads((tmp_path / name / "config.json").read_text())
        assert set(saved_config["custom_pipelines"]) == {"scene-text-recognition", "image-to-text"}
    assert (tmp_path / "checkpoints" / "step_00000030").is_dir()


@pytest.mark.slow
def test_run_killed_with_sigkill_resumes_to_identical_losses(tmp_path):
    overrides = [*QUICK, "max_steps=8", "save_every=3", "data.augment=true", "data.train.num_samples=12"]
    check_killed_run_resumes_to_identical_losses(tmp_path, "tiny-recognizer", RecognitionTask, overrides)


_TWO_PROCESS_RUN = """
import json, sys, torch
from scenetext.training.config import load_config
from scenetext.training.loop import Trainer
from scenetext.training.recognition import RecognitionTask

config = load_config("tiny-recognizer", sys.argv[1:])
task = RecognitionTask(config)
seen, checksums, backends = [], [], set()
collate = task.collate
def recording_collate(samples, seed):
    seen.extend(sample["source"] for sample in samples)
    return collate(samples, seed)
task.collate = recording_collate

def on_step(trainer, loss):
    backends.add(torch.distributed.get_backend() if torch.distributed.is_initialized() else None)
    model = trainer.accelerator.unwrap_model(trainer.model)
    checksums.append(float(sum(p.double().sum() for p in model.parameters())))

trainer = Trainer(config, task)
trainer.train(on_step=on_step)
rank = trainer.accelerator.process_index
with open(f"{config.output_dir}/../rank{rank}.json", "w") as handle:
    json.dump({
        "world": trainer.accelerator.num_processes,
        "backends": sorted(map(str, backends)),
        "seen": seen,
        "checksums": checksums,
    }, handle)
"""

# Each launcher by its module, with the interpreter running the tests (never a `torchrun` found on PATH).
# Without a GPU `accelerate launch` needs `--multi_gpu` to start several processes (see cli/train.py).
LAUNCHERS = {
    "torchrun": ["torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
    "accelerate": [
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--main_process_port",
        "0",
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="needs the gloo backend")
def test_two_processes_read_disjoint_data_and_keep_identical_weights(tmp_path, launcher):
    script = tmp_path / "two_process_run.py"
    script.write_text(textwrap.dedent(_TWO_PROCESS_RUN))
    output_dir = tmp_path / "run"
    overrides = [*QUICK, "max_steps=3", "save_every=3", f"output_dir={output_dir}"]
    result = subprocess.run(
        [sys.executable, "-m", *LAUNCHERS[launcher], str(script), *overrides],
        capture_output=True,
        text=True,
        timeout=900,
        # The CPU path (gloo), whatever the machine: two ranks cannot share one GPU under NCCL.
        env={**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [(rank["world"], rank["backends"]) for rank in ranks] == [(2, ["gloo"]), (2, ["gloo"])]
    assert set(ranks[0]["seen"]).isdisjoint(ranks[1]["seen"])
    assert len(ranks[0]["seen"]) == len(ranks[1]["seen"]) == 3 * 4
    assert len(ranks[0]["checksums"]) == 3
    assert ranks[0]["checksums"] == ranks[1]["checksums"]
    # One writer: one log line per step, one copy of the weights; each rank saved its own random streams.
    assert [record["step"] for record in train_log(output_dir) if "loss" in record] == [1, 2, 3]
    checkpoint = output_dir / "checkpoints" / "step_00000003"
    assert {"model.safetensors", "rng_state_0.json", "rng_state_1.json"} <= {
        p.name for p in checkpoint.iterdir()
    }


def test_official_parameter_groups():
    config = load_config("tiny-recognizer", ["output_dir=/unused"])
    model = RecognitionTask(config).build_model()
    groups = clip4str_parameter_groups(
        model, learning_rate=1e-4, weight_decay=0.2, decoder_lr_multiplier=19.0
    )
    by_name = {id(p): n for n, p in model.named_parameters()}
    summary = {
        (group["lr"], group["weight_decay"]): {by_name[id(p)] for p in group["params"]} for group in groups
    }
    assert "visual_decoder.pos_queries" in summary[(1e-4 * 19.0, 0.0)]
    assert "cross_decoder.text_embed.weight" in summary[(1e-4 * 19.0, 0.0)]
    assert "visual_decoder.head.weight" in summary[(1e-4 * 19.0, 0.2)]
    assert "vision_model.embeddings.patch_embedding.weight" in summary[(1e-4, 0.2)]
    assert "vision_model.pre_layrnorm.weight" in summary[(1e-4, 0.0)]
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and not frozen & set().union(*summary.values())


def test_config_errors_are_specific(tmp_path):
    with pytest.raises(FileNotFoundError, match="shipped configs"):
        load_config("no-such-config")
    with pytest.raises(
        ValueError, match=r"unknown option optimizer\.learnig_rate: did you mean optimizer\.learning"
    ):
        load_config("tiny-recognizer", ["optimizer.learnig_rate=1"])
    with pytest.raises(ValueError, match="key=value"):
        load_config("tiny-recognizer", ["max_steps"])
    with pytest.raises(
        ValueError, match=r"data\.train\.source: expected one of synthetic, lmdb, hub, folder, got 'nowhere'"
    ):
        load_config("tiny-recognizer", [f"output_dir={tmp_path}", "data.train.source=nowhere"])


def test_push_to_hub_publishes_the_best_checkpoint(tmp_path, monkeypatch):
    import scenetext.hub_cards
    from scenetext.cli.main import main

    calls = []

    def fake_publish(folder, repo_id, **kwargs):
        calls.append((Path(folder), repo_id, kwargs["training_config"].max_steps))
        return "https://huggingface.co/user/tiny/commit/0"

    monkeypatch.setattr(scenetext.hub_cards, "publish_folder", fake_publish)
    args = [
        "train",
        "recognizer",
        "--config",
        "tiny-recognizer",
        "--output-dir",
        str(tmp_path),
        "--max-steps",
        "2",
    ]
    assert main([*args, *QUICK, "save_every=2", "--push-to-hub", "user/tiny"]) == 0
    assert calls == [(tmp_path / "best", "user/tiny", 2)]
    assert (tmp_path / "best" / "model.safetensors").exists()


def test_sincos_position_init_writes_smooth_codes_into_the_vit(tmp_path):
    codes = sincos_position_codes((3, 5), 8)
    # Patch (row 1, column 2) of a 3x5 grid: x channels sin/cos of 2 * [1, 0.01], y channels of 1 * [1, 0.01].
    expected = [math.sin(2), math.sin(0.02), math.cos(2), math.cos(0.02), math.sin(1), math.sin(0.01)]
    torch.testing.assert_close(codes[1 * 5 + 2, :6], torch.tensor(expected))
    assert codes.shape == (15, 8)
    config = load_config("tiny-recognizer", [f"output_dir={tmp_path}", "model.sincos_position_init=0.5"])
    model = RecognitionTask(config).build_model()
    table = model.vision_model.embeddings.position_embedding.weight
    torch.testing.assert_close(table[1:], 0.5 * sincos_position_codes((4, 4), table.shape[1]))
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_position_codes((4, 4), 6)


def test_the_embedded_default_recognizer_has_the_architecture_of_its_config():
    from scenetext.cli.ocr import DEFAULTS_DIR
    from scenetext.modeling.clip4str import Clip4StrConfig

    expected = RecognitionTask(load_config("recognizer-embedded", ["output_dir=/unused"])).model_config
    shipped = Clip4StrConfig.from_pretrained(DEFAULTS_DIR / "recognizer")
    assert shipped.vision_config.image_size == expected.vision_config.image_size == [32, 128]
    assert shipped.vision_stem_channels == expected.vision_stem_channels
    for name in ("patch_size", "hidden_size", "num_hidden_layers", "num_attention_heads"):
        assert getattr(shipped.vision_config, name) == getattr(expected.vision_config, name)
        assert getattr(shipped.text_config, name, None) == getattr(expected.text_config, name, None)
    assert (shipped.charset, shipped.max_label_length, shipped.perm_num) == (
        expected.charset,
        expected.max_label_length,
        expected.perm_num,
    )
    weights = (DEFAULTS_DIR / "recognizer" / "model.safetensors").stat().st_size
    assert weights <= 25_000_000
