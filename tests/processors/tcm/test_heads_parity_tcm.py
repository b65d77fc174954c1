"""PAN and FCENet targets and post-processing against the official code's outputs (`tests/fixtures/tcm/heads`)."""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from scenetext.processors.tcm.fce_geometry_tcm import extract_fce_boundaries, make_fce_targets
from scenetext.processors.tcm.pan_geometry_tcm import extract_pan_boundaries, make_pan_targets


@pytest.fixture(scope="module")
def heads_dir(fixtures_dir):
    return fixtures_dir / "tcm" / "heads"


def _fixture(heads_dir, name):
    return load_file(heads_dir / f"{name}.safetensors"), json.loads((heads_dir / f"{name}.json").read_text())


def _case_polygons(case):
    polygons = case["polygons"] + case["ignore"]
    return polygons, [False] * len(case["polygons"]) + [True] * len(case["ignore"])


def test_pan_targets_equal_the_official_ones(heads_dir):
    arrays, cases = _fixture(heads_dir, "pan")
    for index, case in enumerate(cases["targets"]):
        polygons, ignore = _case_polygons(case)
        targets = make_pan_targets(polygons, *case["size"], ignore=ignore)
        official = arrays[f"{index}_gt_kernels"]
        assert np.array_equal(targets.text_kernel, official[0]), index
        assert np.array_equal(targets.shrunk_kernel, official[1]), index
        assert np.array_equal(targets.effective_mask, arrays[f"{index}_gt_mask"]), index


def test_fcenet_targets_equal_the_official_ones(heads_dir):
    arrays, cases = _fixture(heads_dir, "fce")
    levels_with_text = set()
    for index, case in enumerate(cases["targets"]):
        polygons, ignore = _case_polygons(case)
        targets = make_fce_targets(polygons, *case["size"], ignore=ignore)
        for stride, name in ((8, "p3"), (16, "p4"), (32, "p5")):
            official = arrays[f"{index}_{name}"]
            if official[0].any():
                levels_with_text.add(name)
            np.testing.assert_array_equal(
                targets[f"fce_maps_{stride}"][:3], official[:3], err_msg=f"{index} {name}"
            )
            np.testing.assert_allclose(targets[f"fce_maps_{stride}"][3:], official[3:], atol=1e-5)
        np.testing.assert_array_equal(targets["matching_region"], arrays[f"{index}_matching"][[0, 2]])
    assert levels_with_text == {"p3", "p4", "p5"}


def _canonical(points: list[float], score: float) -> tuple:
    """A boundary as its vertex cycle started at the smallest vertex, with its score: OpenCV 4 and 5 start the
    boxes of `cv2.boxPoints` at different corners and label components in different orders."""
    vertices = [tuple(points[index : index + 2]) for index in range(0, len(points), 2)]
    start = vertices.index(min(vertices))
    return (*vertices[start:], *vertices[:start]), round(score, 6)


def test_pan_boundaries_equal_the_official_ones(heads_dir):
    arrays, cases = _fixture(heads_dir, "pan")
    for case in cases["post"]:
        found = extract_pan_boundaries(arrays[case["maps"]], box_type=case["box_type"])
        assert len(found) == len(case["boundaries"]) > 0
        ours = sorted(_canonical(points.reshape(-1).tolist(), score) for points, score in found)
        official = sorted(_canonical(boundary[:-1], boundary[-1]) for boundary in case["boundaries"])
        assert [vertices for vertices, _ in ours] == [vertices for vertices, _ in official]
        for (_, score), (_, official_score) in zip(ours, official, strict=True):
            assert score == pytest.approx(official_score, abs=1e-5)


def test_fcenet_boundaries_equal_the_official_ones(heads_dir):
    arrays, cases = _fixture(heads_dir, "fce")
    for case in cases["post"]:
        index = case["case"]
        found = extract_fce_boundaries(
            [arrays[f"post{index}_cls{level}"] for level in range(3)],
            [arrays[f"post{index}_reg{level}"] for level in range(3)],
        )
        assert len(found) == len(case["boundaries"]) > 0
        for (points, score), official in zip(found, case["boundaries"], strict=True):
            assert points.reshape(-1).tolist() == official[:-1]
            assert score == pytest.approx(official[-1], abs=1e-6)
