"""Accounting of corrupt records that the data sources skip.

A corrupt record (undecodable image, missing LMDB key, bad UTF-8, malformed annotation line, missing image
file) never ends a run: the source skips it and reports it here with its location, e.g.
``/data/train/real/ArT:1234`` (database and 1-based index) or ``/data/ic15/gt_img_7.txt:3`` (file and line).

Sources run inside DataLoader workers and on several ranks, each a separate process holding its own copy of
the log. To let the training loop read the totals, a log given a ``directory`` appends every report as one
JSON line to a per-process file there; `CorruptRecordLog.records` then reads what every process wrote.
Without a directory the reports only go to the Python logger and to the in-process list.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

_FILE_PATTERN = "corrupt-records-*.jsonl"


@dataclass(frozen=True)
class CorruptRecord:
    """A skipped record: ``location`` is ``"<file or database>:<index or line>"``."""

    location: str
    reason: str

    @property
    def source(self) -> str:
        """The file or database part of the location."""
        return self.location.rpartition(":")[0] or self.location


class CorruptRecordLog:
    """Collects skipped records; shared between processes through a folder of JSON-lines files.

    Args:
        directory: where each process appends its reports (created if missing); ``None`` keeps the reports
            in this process only (and in the log output).
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = None if directory is None else Path(directory)
        self._local: list[CorruptRecord] = []

    def report(self, location: str, reason: str) -> None:
        """Record one skipped record; logs a warning naming it."""
        record = CorruptRecord(location, reason)
        self._local.append(record)
        logger.warning("skipped corrupt record %s: %s", location, reason)
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            # One file per process: appends from DataLoader workers and ranks never interleave.
            path = self.directory / f"corrupt-records-{socket.gethostname()}-{os.getpid()}.jsonl"
            with path.open("a", encoding="utf-8") as file:
                file.write(json.dumps(asdict(record)) + "\n")

    def records(self) -> list[CorruptRecord]:
        """Every report so far: of all processes when the log has a directory, else of this process."""
        if self.directory is None:
            return list(self._local)
        records = []
        for path in sorted(self.directory.glob(_FILE_PATTERN)):
            for line in path.read_text(encoding="utf-8").splitlines():
                # A worker killed mid-write may leave a truncated last line; it carries no usable report.
                try:
                    records.append(CorruptRecord(**json.loads(line)))
                except (json.JSONDecodeError, TypeError):
                    continue
        return records

    def count(self) -> int:
        """How many records were skipped."""
        return len(self.records())

    def counts_by_source(self) -> dict[str, int]:
        """Skipped records per file or database."""
        return dict(Counter(record.source for record in self.records()))

    def clear(self) -> None:
        """Forget all reports (and delete the files of the shared directory)."""
        self._local.clear()
        if self.directory is not None:
            for path in self.directory.glob(_FILE_PATTERN):
                path.unlink()

    def __getstate__(self) -> dict:
        # A copy sent to a DataLoader worker starts empty: its reports reach the parent through the files.
        return {"directory": self.directory, "_local": []}

    def __repr__(self) -> str:
        return f"CorruptRecordLog(directory={self.directory!r})"
