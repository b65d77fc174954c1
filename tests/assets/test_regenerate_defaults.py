"""`regenerate_defaults` rewrites a default folder's configs, keeps its weights file and links its code; what
leaves the repository from a default folder holds real files."""

import json
import shutil

import pytest

from scenetext.assets import DEFAULTS_DIR
from scenetext.assets.regenerate_defaults import regenerate_default, travelling_sources
from scenetext.hub_cards import assemble_upload_folder


@pytest.fixture
def copied_defaults(tmp_path):
    """A copy of the shipped default folders, as `cp -rL` or `shutil.copytree` makes it: real code files."""
    copy = tmp_path / "defaults"
    shutil.copytree(DEFAULTS_DIR, copy)
    return copy


def test_copies_of_the_defaults_hold_real_files(copied_defaults):
    sources = travelling_sources()
    for path in copied_defaults.glob("*/*.py"):
        assert not path.is_symlink()
        assert path.read_bytes() == sources[path.name].read_bytes()


def test_regenerating_links_the_code_and_keeps_the_weights_file(copied_defaults):
    folder = copied_defaults / "detector"
    weights = (folder / "model.safetensors").read_bytes()
    config = json.loads((folder / "config.json").read_text())
    (folder / "optimization_tcm.py").unlink()  # a travelling file the folder lacks ...
    (folder / "stale_tcm.py").write_text("# ... and one that is no longer saved\n")
    regenerate_default("detector", copied_defaults)
    sources = travelling_sources()
    shipped = sorted(path.name for path in (DEFAULTS_DIR / "detector").glob("*.py"))
    assert sorted(path.name for path in folder.glob("*.py")) == shipped
    for path in folder.glob("*.py"):
        assert path.is_symlink() and path.resolve() == sources[path.name].resolve()
    assert (folder / "model.safetensors").read_bytes() == weights
    assert json.loads((folder / "config.json").read_text()) == config


def test_unknown_default_is_refused(copied_defaults):
    with pytest.raises(ValueError, match="'tagger' is not a shipped default"):
        regenerate_default("tagger", copied_defaults)


def test_a_push_of_a_shipped_default_uploads_real_files(tmp_path):
    upload = assemble_upload_folder(DEFAULTS_DIR / "recognizer", tmp_path / "upload", "someone/recognizer")
    sources = travelling_sources()
    code = sorted(upload.glob("*.py"))
    assert {path.name for path in code} == {path.name for path in (DEFAULTS_DIR / "recognizer").glob("*.py")}
    for path in code:
        assert not path.is_symlink() and path.read_bytes() == sources[path.name].read_bytes()
