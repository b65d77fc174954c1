"""Training and evaluation data: streamed sources, synthetic data and writers.

Every source is a sharded `datasets.IterableDataset` yielding the samples described in `samples`
(recognition: image, label, source; detection: image, polygons, texts, ignore, source), so that
`datasets.distributed.split_dataset_by_node` and DataLoader workers read disjoint parts. Corrupt records are
skipped and reported to a `corrupt_records.CorruptRecordLog`.

- `lmdb`: parseq / CLIP4STR LMDB word crops (`lmdb_recognition_dataset`, `write_lmdb`)
- `icdar`: ICDAR ground-truth / result file parsing; `icdar_folder`: ``img_N`` + ``gt_img_N.txt`` folders
- `jsonl`: polygon annotations (TotalText / CTW1500 style) as JSON lines
- `hub`: any Hub or local `datasets` dataset
- `synthetic`: rendered word crops and scenes with exact quadrilaterals (the embedded default data)

The modules are imported one by one (``from scenetext.data.icdar import read_ground_truth``) so
that reading an annotation file does not load the image-rendering stack.
"""

try:
    import datasets  # noqa: F401  every source is a `datasets.IterableDataset`
except ImportError as error:
    raise ImportError(
        'scenetext.data needs the datasets library: pip install "scenetext[train]" or "scenetext[eval]"'
    ) from error
