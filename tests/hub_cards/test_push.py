"""`scenetext push` / `publish_folder`: dry runs verified in a clean process, one upload commit against a
patched `HfApi`, refusals before anything is uploaded, and parity with transformers' own `push_to_hub`."""

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from huggingface_hub import CommitInfo, HfApi, ModelCard
from huggingface_hub.errors import EntryNotFoundError

from scenetext.cli.main import main
from scenetext.evaluation.metrics.detection import DetectionCounts
from scenetext.evaluation.reports import DetectionReport, write_json
from scenetext.hub_cards import assemble_upload_folder, check_model_folder, publish_folder
from scenetext.hub_cards import publish as publish_module

from ..tiny_models import save_tiny_detector, save_tiny_recognizer, tiny_recognizer

# Files of a Hub folder: the model's and processor's, and the pipeline code the model's save_pretrained adds.
MODEL_FILES = {
    "clip4str": [
        "README.md",
        "caption_tokenizer_clip4str.py",
        "config.json",
        "configuration_clip4str.py",
        "image_processing_clip4str.py",
        "model.safetensors",
        "modeling_clip4str.py",
        "pipeline_files_clip4str.py",
        "processing_clip4str.py",
        "processor_config.json",
        "tokenization_clip4str.py",
        "tokenizer_config.json",
        "vocab.json",
    ],
    "tcm": [
        "README.md",
        "config.json",
        "configuration_tcm.py",
        "db_geometry_tcm.py",
        "image_processing_tcm.py",
        "model.safetensors",
        "modeling_tcm.py",
        "optimization_tcm.py",  # imported by TcmForSceneTextDetection.optimize_for_inference
        "pipeline_files_tcm.py",
        "preprocessor_config.json",
    ],
}
PIPELINE_FILES = {
    "clip4str": ["image_loading.py", "onnx_backend.py", "pipeline_clip4str.py"],
    "tcm": [
        "crop_recognition.py",
        "cropping_ocr.py",
        "image_loading.py",
        "onnx_backend.py",
        "pipeline_ocr.py",
        "pipeline_tcm.py",
        "reading_order_ocr.py",
        "tiled_detection.py",
    ],
}
CLIP4STR_FILES = sorted(MODEL_FILES["clip4str"] + PIPELINE_FILES["clip4str"])
TCM_FILES = sorted(MODEL_FILES["tcm"] + PIPELINE_FILES["tcm"])
FAKE_TOKEN = "hf_scenetextTestTokenThatMustNeverAppear"


@pytest.fixture(scope="module")
def clip4str_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = save_tiny_recognizer(tmp_path_factory.mktemp("clip4str"))
    # Training outputs hold more than a Hub folder needs; none of it may be uploaded.
    (folder / "optimizer.pt").write_bytes(b"not for the hub")
    (folder / "train_log.jsonl").write_text('{"step": 1}\n')
    return folder


@pytest.fixture(scope="module")
def tcm_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_detector(tmp_path_factory.mktemp("tcm"))


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """`HfApi` patched at the network boundary; `verify_folder` recorded. Calls are logged in order, and the
    upload folder's files are listed at upload time (the folder is temporary)."""
    record = SimpleNamespace(calls=[], uploaded_files=None, upload_kwargs=None, verified_files=None)

    def verify(folder, kind, timeout=600):
        record.calls.append("verify")
        record.verified_files = sorted(path.name for path in Path(folder).iterdir())
        return {}

    def create_repo(self, repo_id, **kwargs):
        record.calls.append(("create_repo", repo_id, kwargs.get("private"), kwargs.get("exist_ok")))

    def create_branch(self, repo_id, branch, **kwargs):
        record.calls.append(("create_branch", repo_id, branch))

    def upload_folder(self, **kwargs):
        record.calls.append("upload_folder")
        folder = Path(kwargs["folder_path"])
        record.uploaded_files = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*"))
        record.card = ModelCard.load(folder / "README.md")
        record.texts = [path.read_bytes() for path in folder.iterdir()]
        record.upload_kwargs = kwargs
        pr_url = "https://huggingface.co/someone/x/discussions/1" if kwargs.get("create_pr") else None
        return CommitInfo(
            commit_url="https://huggingface.co/someone/x/commit/" + "a" * 40,
            commit_message=kwargs.get("commit_message"),
            commit_description="",
            oid="a" * 40,
            pr_url=pr_url,
        )

    monkeypatch.setattr(publish_module, "verify_folder", verify)
    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_branch", create_branch)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    return record


def detection_json(path: Path) -> Path:
    report = DetectionReport(
        DetectionCounts(10, 8, 6), num_images=2, source={"model": "m"}, preset="icdar2015"
    )
    return write_json(report, path)


def test_upload_is_one_commit_of_the_verified_folder(clip4str_folder, hub):
    url = publish_folder(clip4str_folder, "someone/clip4str-tiny")

    assert url == "https://huggingface.co/someone/x/commit/" + "a" * 40
    assert hub.calls == ["verify", ("create_repo", "someone/clip4str-tiny", False, True), "upload_folder"]
    assert hub.uploaded_files == hub.verified_files == CLIP4STR_FILES
    assert hub.upload_kwargs["repo_id"] == "someone/clip4str-tiny"
    assert hub.upload_kwargs["revision"] is None and hub.upload_kwargs["create_pr"] is False
    assert hub.card.data.pipeline_tag == "image-to-text"
    assert not any(FAKE_TOKEN.encode() in text for text in hub.texts)


def test_upload_to_a_branch_as_pull_request(tcm_folder, tmp_path, hub):
    eval_json = detection_json(tmp_path / "eval.json")
    url = publish_folder(
        tcm_folder, "someone/tcm-tiny", eval_json=eval_json, private=True, revision="dev", create_pr=True
    )

    assert url == "https://huggingface.co/someone/x/discussions/1"
    assert hub.calls == [
        "verify",
        ("create_repo", "someone/tcm-tiny", True, True),
        ("create_branch", "someone/tcm-tiny", "dev"),
        "upload_folder",
    ]
    assert hub.uploaded_files == TCM_FILES
    assert (hub.upload_kwargs["revision"], hub.upload_kwargs["create_pr"]) == ("dev", True)
    assert {r.metric_type: r.metric_value for r in hub.card.data.eval_results}["f1"] == 66.67


def test_cli_push_prints_the_commit_and_never_the_token(clip4str_folder, tmp_path, hub, capsys):
    assert main(["push", str(clip4str_folder), "someone/clip4str-tiny", "--license", "mit"]) == 0
    output = capsys.readouterr()
    assert output.out.strip() == "Uploaded: https://huggingface.co/someone/x/commit/" + "a" * 40
    assert FAKE_TOKEN not in output.out + output.err
    assert hub.card.data.license == "mit"


@pytest.mark.slow
def test_dry_run_writes_a_folder_that_loads_in_a_clean_process(
    clip4str_folder, tcm_folder, tmp_path, monkeypatch
):
    uploads, verified = [], []
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kwargs: uploads.append(kwargs))
    monkeypatch.setattr(HfApi, "create_repo", lambda self, *args, **kwargs: uploads.append(args))
    real_verify = publish_module.verify_folder
    monkeypatch.setattr(
        publish_module, "verify_folder", lambda *args, **kwargs: verified.append(real_verify(*args, **kwargs))
    )

    # The real verification: both folders load and run in an isolated process, or publish_folder raises.
    out = publish_folder(clip4str_folder, "someone/clip4str-tiny", dry_run_dir=tmp_path / "clip4str")
    assert out == str(tmp_path / "clip4str")
    assert sorted(path.name for path in (tmp_path / "clip4str").iterdir()) == CLIP4STR_FILES
    assert main(["push", str(tcm_folder), "someone/tcm-tiny", "--dry-run", str(tmp_path / "tcm")]) == 0
    assert sorted(path.name for path in (tmp_path / "tcm").iterdir()) == TCM_FILES
    assert uploads == []
    config = json.loads((tmp_path / "clip4str" / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_clip4str.Clip4StrConfig",
        "AutoModel": "modeling_clip4str.Clip4StrForSceneTextRecognition",
    }
    recognizer, detector = verified
    assert (recognizer["model_class"], recognizer["processor_class"]) == (
        "Clip4StrForSceneTextRecognition",
        "Clip4StrProcessor",
    )
    assert (detector["model_class"], detector["processor_class"]) == (
        "TcmForSceneTextDetection",
        "TcmImageProcessor",
    )
    assert sorted(config["custom_pipelines"]) == ["image-to-text", "scene-text-recognition"]
    reading = recognizer["pipelines"]["scene-text-recognition"][0]["generated_text"]
    assert reading == recognizer["inference"]["generated_text"]
    assert len(detector["pipelines"]["scene-text-detection"]) == detector["inference"]["num_regions"]
    assert detector["pipelines"]["ocr"].startswith("skipped")
    assert (
        'pipeline("scene-text-recognition", model="someone/clip4str-tiny"'
        in (tmp_path / "clip4str" / "README.md").read_text()
    )


@pytest.mark.slow
def test_a_broken_dry_run_folder_is_reported_by_the_verification(clip4str_folder, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(clip4str_folder, broken)
    # Loads in this process (scenetext is importable) but not on a user's machine.
    code = (broken / "modeling_clip4str.py").read_text()
    (broken / "modeling_clip4str.py").write_text("import scenetext.modeling.clip4str  # noqa\n" + code)
    with pytest.raises(RuntimeError, match="does not load with trust_remote_code=True in a clean process"):
        publish_folder(broken, "someone/clip4str-tiny", dry_run_dir=tmp_path / "out")


def break_folder(source: Path, target: Path, change: str) -> None:
    shutil.copytree(source, target)
    config_path = target / "config.json"
    config = json.loads(config_path.read_text())
    if change == "no weights":
        (target / "model.safetensors").unlink()
    elif change == "pickled weights":
        (target / "model.safetensors").rename(target / "pytorch_model.bin")
    elif change == "no modeling code":
        (target / "modeling_clip4str.py").unlink()
    elif change == "no vocab":
        (target / "vocab.json").unlink()
    elif change == "other model type":
        config_path.write_text(json.dumps({**config, "model_type": "bert"}))
    elif change == "no auto_map":
        config_path.write_text(json.dumps({key: value for key, value in config.items() if key != "auto_map"}))
    elif change == "token in a file":
        (target / "notes.txt").write_text(f"token: {FAKE_TOKEN}\n")


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ("no weights", FileNotFoundError, r"model weights are missing \(expected model.safetensors\)"),
        ("pickled weights", ValueError, r"weights \['pytorch_model.bin'\] are pickled"),
        (
            "no modeling code",
            FileNotFoundError,
            r"code file modeling_clip4str.py \(named by config.json\) is missing",
        ),
        ("no vocab", FileNotFoundError, r"processor files \['vocab.json'\] are missing"),
        ("other model type", ValueError, r"config.json: model_type 'bert' cannot be published"),
        ("no auto_map", ValueError, r"config.json: auto_map lacks \['AutoConfig', 'AutoModel'\]"),
        ("token in a file", ValueError, r"notes.txt contains your Hugging Face token"),
    ],
)
def test_broken_folders_are_refused_before_upload(clip4str_folder, tmp_path, hub, change, error, message):
    break_folder(clip4str_folder, tmp_path / "model", change)
    with pytest.raises(error, match=message) as raised:
        publish_folder(tmp_path / "model", "someone/clip4str-tiny")
    assert hub.calls == []
    assert FAKE_TOKEN not in str(raised.value)


def test_code_missing_behind_a_relative_import_is_refused(tcm_folder, tmp_path, hub):
    shutil.copytree(tcm_folder, tmp_path / "model")
    (tmp_path / "model" / "db_geometry_tcm.py").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"db_geometry_tcm.py \(named by the relative import in image_pro"
    ):
        publish_folder(tmp_path / "model", "someone/tcm-tiny")
    assert hub.calls == []


@pytest.mark.parametrize("repo_id", ["a/b/c", "some one/model", "someone/", "someone/model--x", ""])
def test_malformed_repo_ids_are_refused(clip4str_folder, hub, repo_id):
    with pytest.raises(ValueError, match=f"repo id {repo_id!r} is malformed"):
        publish_folder(clip4str_folder, repo_id)
    assert hub.calls == []


def test_cli_reports_a_malformed_repo_id_without_a_traceback(clip4str_folder, hub, capsys):
    assert main(["push", str(clip4str_folder), "a/b/c"]) == 2
    assert "scenetext push: error: repo id 'a/b/c' is malformed" in capsys.readouterr().err
    assert hub.calls == []


def test_evaluation_of_another_model_type_is_refused_before_upload(clip4str_folder, tmp_path, hub):
    eval_json = detection_json(tmp_path / "eval.json")
    with pytest.raises(
        ValueError, match="task 'scene-text-detection' is not the evaluation of a clip4str model"
    ):
        publish_folder(clip4str_folder, "someone/clip4str-tiny", eval_json=eval_json)
    assert hub.calls == []


def test_invalid_card_metadata_is_refused_before_upload(clip4str_folder, hub):
    with pytest.raises(ValueError, match="license 'my-license' is not a Hub license id"):
        publish_folder(clip4str_folder, "someone/clip4str-tiny", license="my-license")
    assert hub.calls == []


def test_dry_run_into_a_folder_with_files_is_refused(clip4str_folder, tmp_path, hub):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not empty"):
        publish_folder(clip4str_folder, "someone/clip4str-tiny", dry_run_dir=tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


@pytest.mark.slow
def test_transformers_push_to_hub_gives_the_same_loadable_folder(tmp_path, monkeypatch, run_isolated):
    """`model.push_to_hub` + `processor.push_to_hub` (transformers' own upload path, patched at its Hub client)
    commit the same files as `scenetext push`, and the result loads and reads like the original model."""
    import transformers.utils.hub as transformers_hub

    pushed = tmp_path / "pushed"
    pushed.mkdir()

    def create_commit(repo_id, operations, **kwargs):
        for operation in operations:
            shutil.copy(operation.path_or_fileobj, pushed / operation.path_in_repo)
        url = "https://huggingface.co/someone/clip4str-tiny/commit/" + "b" * 40
        return CommitInfo(commit_url=url, commit_message="m", commit_description="", oid="b" * 40)

    fake_api = SimpleNamespace(
        create_repo=lambda repo_id, **kwargs: SimpleNamespace(repo_id=repo_id), create_commit=create_commit
    )
    monkeypatch.setattr(transformers_hub, "hf_api", lambda: fake_api)
    monkeypatch.setattr(transformers_hub.ModelCard, "load", _no_card_yet)

    model, processor = tiny_recognizer()
    model.push_to_hub("someone/clip4str-tiny")
    processor.push_to_hub("someone/clip4str-tiny")
    model.save_pretrained(tmp_path / "saved")
    processor.save_pretrained(tmp_path / "saved")
    # Assembled only: the isolated process below loads it (and the pushed folder) itself.
    published = str(
        assemble_upload_folder(tmp_path / "saved", tmp_path / "published", "someone/clip4str-tiny")
    )

    # transformers writes what save_pretrained writes, pipelines included.
    assert sorted(path.name for path in pushed.iterdir()) == CLIP4STR_FILES
    assert check_model_folder(pushed).model_type == "clip4str"
    for name in CLIP4STR_FILES:
        if name not in ("README.md", "config.json"):
            assert (pushed / name).read_bytes() == (Path(published) / name).read_bytes(), name
    published_config = json.loads((Path(published) / "config.json").read_text())
    assert json.loads((pushed / "config.json").read_text()) == published_config

    pixels = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32))
    with torch.no_grad():
        expected = model(pixel_values=pixels).logits
    np.save(tmp_path / "pixels.npy", pixels.numpy())
    stdout = run_isolated(
        f"""
        import json
        import numpy as np
        import torch
        from transformers import AutoModel, AutoProcessor

        pixels = torch.from_numpy(np.load({str(tmp_path / "pixels.npy")!r}))
        for folder in ({str(pushed)!r}, {published!r}):
            model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
            processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
            with torch.no_grad():
                logits = model(pixel_values=pixels).logits
            print(json.dumps({{"logits": logits.tolist(), "texts": processor.batch_decode(logits)["generated_text"]}}))
        """
    )
    expected_texts = processor.batch_decode(expected)["generated_text"]
    for line in stdout.strip().splitlines():
        result = json.loads(line)
        torch.testing.assert_close(torch.tensor(result["logits"]), expected, rtol=0, atol=1e-5)
        assert result["texts"] == expected_texts


def _no_card_yet(*args, **kwargs):
    raise EntryNotFoundError("README.md not found (new repository)")


def test_ocr_recognizer_goes_onto_a_detector_card_only(tcm_folder, clip4str_folder, hub):
    publish_folder(tcm_folder, "someone/tcm-tiny", ocr_recognizer="someone/clip4str-tiny")
    assert 'pipeline("ocr", model="someone/tcm-tiny", recognizer="someone/clip4str-tiny"' in hub.card.text
    calls = list(hub.calls)
    with pytest.raises(
        ValueError, match="ocr recognizer: only a detector folder is paired with a recognizer"
    ):
        publish_folder(clip4str_folder, "someone/clip4str-tiny", ocr_recognizer="someone/other")
    with pytest.raises(ValueError, match="ocr recognizer 'a/b/c' is malformed"):
        publish_folder(tcm_folder, "someone/tcm-tiny", ocr_recognizer="a/b/c")
    assert hub.calls == calls
