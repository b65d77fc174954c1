"""The standard benchmarks: recognition sets, the groups papers report and finding them; detection presets.

Benchmarks are LMDB databases as published with parseq / CLIP4STR, laid out as ``<root>/test/<name>`` (the
official data root) or ``<root>/<name>`` (the test folder itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# The groups of the papers' tables, each reported with a sample-weighted "Combined" row.
BENCHMARK_GROUPS: dict[str, tuple[str, ...]] = {
    # CLIP4STR's `TEST_BENCHMARK` (strhub/data/module.py): the nine sets of its README table.
    "clip4str": ("IIIT5k", "SVT", "IC13_1015", "IC15_1811", "IC15_2077", "SVTP", "CUTE80", "HOST", "WOST"),
    # parseq's `TEST_BENCHMARK_SUB` and `TEST_BENCHMARK`.
    "parseq-subset": ("IIIT5k", "SVT", "IC13_857", "IC15_1811", "SVTP", "CUTE80"),
    "parseq": ("IIIT5k", "SVT", "IC13_1015", "IC15_2077", "SVTP", "CUTE80"),
    # The larger, newer sets (`TEST_NEW`, `test.py --new`).
    "new": ("ArT", "COCOv1.4", "Uber"),
}
GROUP_TITLES: dict[str, str] = {
    "clip4str": "Benchmark (CLIP4STR)",
    "parseq-subset": "Benchmark subset (parseq)",
    "parseq": "Benchmark (parseq)",
    "new": "New",
}
# Every standard set, in the order the papers' tables list them.
STANDARD_BENCHMARKS: tuple[str, ...] = (
    "IIIT5k",
    "SVT",
    "IC13_857",
    "IC13_1015",
    "IC15_1811",
    "IC15_2077",
    "SVTP",
    "CUTE80",
    "HOST",
    "WOST",
    "ArT",
    "COCOv1.4",
    "Uber",
)


@dataclass(frozen=True)
class BenchmarkDiscovery:
    """Which requested benchmarks were found under a root (name -> folder) and which were not."""

    found: dict[str, Path]
    missing: list[str]


def expand_benchmark_names(names: Sequence[str] | None) -> list[str]:
    """Benchmark names from names and group names (``clip4str``, ``parseq``, ``parseq-subset``, ``new``,
    ``all``), without duplicates, in table order; ``None`` means every standard benchmark."""
    if not names:
        return list(STANDARD_BENCHMARKS)
    expanded: list[str] = []
    for name in names:
        if name == "all":
            members: Sequence[str] = STANDARD_BENCHMARKS
        else:
            members = BENCHMARK_GROUPS.get(name, (name,))
        expanded.extend(member for member in members if member not in expanded)
    return expanded


def discover_benchmarks(root: str | Path, names: Sequence[str] | None = None) -> BenchmarkDiscovery:
    """Find the LMDB folder of each benchmark under ``root``; missing ones are listed, not fatal.

    A name that is not a standard benchmark is looked up as a folder all the same, so custom test sets
    under the same root work. Raises `FileNotFoundError` when ``root`` does not exist.
    """
    # Imported here: lmdb and datasets are extras; parsers and model cards read
    # the names above on a base install.
    from scenetext.data.lmdb import find_lmdb_databases

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"benchmark root not found (expected a folder): {root}")
    found: dict[str, Path] = {}
    missing: list[str] = []
    for name in expand_benchmark_names(names):
        folder = next(
            (
                candidate
                for candidate in (root / "test" / name, root / name)
                if candidate.is_dir() and find_lmdb_databases(candidate)
            ),
            None,
        )
        if folder is None:
            missing.append(name)
        else:
            found[name] = folder
    return BenchmarkDiscovery(found, missing)


# Ground-truth format per dataset preset: 4-point quadrilaterals, or polygons of any size (None). The same
# names select the released post-processing settings and test scale of TCM's configs in the image processor
# (`POST_PROCESSING_PRESETS`, `TEST_SIZES` in processors/tcm). MSRA-TD500 ground truth must first be
# converted to ICDAR quadrilaterals.
PRESET_NUM_POINTS: dict[str, int | None] = {"icdar2015": 4, "td500": 4, "totaltext": None, "ctw1500": None}


def preset_num_points(preset: str) -> int | None:
    """Points per ground-truth region of a dataset preset (None: polygons of any size)."""
    if preset not in PRESET_NUM_POINTS:
        raise ValueError(
            f"unknown detector preset {preset!r}; expected one of {', '.join(PRESET_NUM_POINTS)}"
        )
    return PRESET_NUM_POINTS[preset]
