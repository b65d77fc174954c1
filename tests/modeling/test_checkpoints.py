"""Foreign checkpoints: read with weights_only unless pickle is allowed, one `--allow-pickle` flag everywhere."""

import argparse
import warnings

import pytest
import torch

from scenetext.cli.main import build_parser
from scenetext.modeling.checkpoints import load_foreign_checkpoint


def test_plain_checkpoints_load_and_pickled_objects_need_permission(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}}, plain)
    assert torch.equal(load_foreign_checkpoint(plain)["state_dict"]["w"], torch.ones(2))

    pickled = tmp_path / "pickled.pt"
    torch.save({"hparams": argparse.Namespace(lr=0.1)}, pickled)
    with pytest.raises(
        ValueError, match=r"pickled\.pt cannot be .* \(Unsupported global.*Namespace.*--allow-pickle"
    ):
        load_foreign_checkpoint(pickled)
    assert load_foreign_checkpoint(pickled, allow_pickle=True)["hparams"].lr == 0.1


def test_missing_and_broken_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"absent\.pt"):
        load_foreign_checkpoint(tmp_path / "absent.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match=r"broken\.pt cannot be loaded .*not a torch checkpoint"):
        load_foreign_checkpoint(broken)
    truncated = tmp_path / "truncated.pt"
    torch.save({"w": torch.ones(1000)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:2000])
    with pytest.raises(ValueError, match=r"truncated\.pt: not a readable torch checkpoint"):
        load_foreign_checkpoint(truncated)


@pytest.mark.parametrize("model", ["clip4str", "tcm"])
def test_every_converter_takes_allow_pickle_and_the_old_spelling_warns(model):
    parser = build_parser()
    assert parser.parse_args(["convert", model, "src", "dst"]).allow_pickle is False
    assert parser.parse_args(["convert", model, "src", "dst", "--allow-pickle"]).allow_pickle is True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        args = parser.parse_args(["convert", model, "src", "dst", "--allow-unsafe-unpickling"])
    assert args.allow_pickle is True
    assert [str(warning.message) for warning in caught] == [
        "--allow-unsafe-unpickling is deprecated; use --allow-pickle"
    ]
