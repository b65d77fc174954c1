"""Reading and writing ICDAR-style text annotations: ground truth (`gt_img_N.txt`) and results (`res_img_N.txt`).

Ground-truth line: ``x1,y1,...,xn,yn,transcription``. ICDAR2015 has exactly four points; TotalText/CTW-style
polygons have more. The transcription is everything after the last coordinate (it may contain commas); when
it is wrapped in double quotes, the quotes are removed and ``\\\\`` then ``\\"`` unescaped (as the official
script does); otherwise it is kept exactly, surrounding blanks included. A transcription of
exactly ``###`` marks a don't-care region. Files are UTF-8 with or without a BOM, CRLF or LF; blank lines are
skipped.

Result line: ``x1,y1,...,xn,yn[,score]``, numbers only.

Where the coordinates end (``num_points=None``, i.e. polygons of any size):
- ground truth: a line always ends with a transcription field, so the coordinates are the longest run of
  numeric fields of *even* length among all fields but the last; the rest is the transcription. A numeric
  transcription (``...,2011``) is thus read correctly, and so is one with a single comma (``...,12,34``).
  Only a transcription made of three or more comma-separated numbers is ambiguous; quote it (``"1,2,3"``).
- results: all fields are numbers; an even count is a polygon without score, an odd count is a polygon
  followed by its score.
With ``num_points=4`` (the ICDAR2015 default) the first 8 fields are the coordinates, as the official script
reads them.

Malformed lines raise `ValueError` naming file and line number, or, when an ``on_malformed`` callback is
given, are handed to it and skipped (what a training reader wants: count and go on).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

DONT_CARE = "###"

_UTF8_BOM = b"\xef\xbb\xbf"
_QUOTED = re.compile(r'\s*"(.*)"\s*', re.DOTALL)


@dataclass(frozen=True)
class TextRegion:
    """One annotated or detected text region.

    Attributes:
        points: flat polygon coordinates ``[x1, y1, x2, y2, ...]`` in image pixels.
        text: the transcription ("" for results, which carry none).
        ignore: whether the region is don't-care (``###``) and excluded from matching.
        score: the detection confidence when a result line carries one, else ``None``.
    """

    points: tuple[float, ...]
    text: str = ""
    ignore: bool = False
    score: float | None = None


@dataclass(frozen=True)
class MalformedLine:
    """A line that could not be parsed: where it is and why."""

    path: str
    line_number: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line_number}: {self.reason}"


MalformedLineHandler = Callable[[MalformedLine], None]


def read_ground_truth(
    path: str | Path,
    num_points: int | None = 4,
    on_malformed: MalformedLineHandler | None = None,
) -> list[TextRegion]:
    """Read a ground-truth file (``gt_img_N.txt``) into regions, in file order.

    Args:
        path: the text file.
        num_points: points per region, 4 for ICDAR2015 quadrilaterals; ``None`` for polygons of any size
            (at least 3 points), see the module docstring for how the coordinates are delimited.
        on_malformed: if given, malformed lines are passed to it and skipped; otherwise they raise.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a malformed line (undecodable UTF-8, too few coordinates, non-numeric coordinate) when
            no ``on_malformed`` handler is given; the message names file and line number.
    """
    return list(_parse_file(path, num_points, on_malformed, parse_ground_truth_line))


def read_results(
    path: str | Path,
    num_points: int | None = 4,
    on_malformed: MalformedLineHandler | None = None,
) -> list[TextRegion]:
    """Read a result file (``res_img_N.txt``): coordinates with an optional trailing score per line.

    With ``num_points=4`` a line has 8 numbers or 9 (the 9th is the score); with ``None`` an even count is
    a polygon and an odd count a polygon plus score. Errors as in `read_ground_truth`.
    """
    return list(_parse_file(path, num_points, on_malformed, parse_result_line))


def parse_ground_truth_line(line: str, num_points: int | None = 4) -> TextRegion:
    """Parse one ground-truth line (without its line ending); raises `ValueError` explaining the problem."""
    fields = line.split(",")
    if num_points is None:
        num_coordinates = _leading_numeric_count(fields[:-1])
        num_coordinates -= num_coordinates % 2
        if num_coordinates < 6:
            raise ValueError(
                f"expected at least 3 points (6 numbers) before the transcription, found {num_coordinates}"
            )
    else:
        num_coordinates = 2 * num_points
        if len(fields) <= num_coordinates:
            raise ValueError(
                f"expected {num_coordinates} coordinates followed by a transcription, found {len(fields)} fields"
            )
    points = _parse_coordinates(fields[:num_coordinates])
    text = _unquote(",".join(fields[num_coordinates:]))
    return TextRegion(points=points, text=text, ignore=text == DONT_CARE)


def parse_result_line(line: str, num_points: int | None = 4) -> TextRegion:
    """Parse one result line: coordinates and an optional trailing score; raises `ValueError`."""
    fields = line.split(",")
    if num_points is None:
        if len(fields) < 6:
            raise ValueError(f"expected at least 3 points (6 numbers), found {len(fields)} fields")
        num_coordinates = len(fields) - len(fields) % 2
    else:
        num_coordinates = 2 * num_points
        if len(fields) not in (num_coordinates, num_coordinates + 1):
            raise ValueError(
                f"expected {num_coordinates} coordinates and an optional score, found {len(fields)} fields"
            )
    points = _parse_coordinates(fields[:num_coordinates])
    score = _parse_coordinates(fields[num_coordinates:])[0] if len(fields) > num_coordinates else None
    return TextRegion(points=points, score=score)


def format_ground_truth_line(points: Sequence[float], text: str, round_to_int: bool = True) -> str:
    """Write one ground-truth line that `parse_ground_truth_line` reads back to the same region.

    The transcription is quoted (with ``\\`` and ``"`` escaped) when reading it bare could change it: when
    it contains a comma, quote or backslash, or looks like a number. ``round_to_int`` writes integer
    coordinates, the convention of the ICDAR files that the official evaluation script expects.
    """
    if len(points) < 6 or len(points) % 2:
        raise ValueError(f"expected an even number (>= 6) of coordinates, got {len(points)}")
    coordinates = ",".join(_format_number(value, round_to_int) for value in points)
    if any(character in text for character in ',"\\') or _is_number(text):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{coordinates},{text}"


def format_result_line(points: Sequence[float], score: float | None = None, round_to_int: bool = True) -> str:
    """Write one result line (``x1,y1,...,xn,yn[,score]``)."""
    if len(points) < 6 or len(points) % 2:
        raise ValueError(f"expected an even number (>= 6) of coordinates, got {len(points)}")
    line = ",".join(_format_number(value, round_to_int) for value in points)
    return line if score is None else f"{line},{score:.6g}"


def _parse_file(
    path: str | Path,
    num_points: int | None,
    on_malformed: MalformedLineHandler | None,
    parse_line: Callable[[str, int | None], TextRegion],
) -> Iterator[TextRegion]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    if num_points is not None and num_points < 3:
        raise ValueError(f"num_points must be None or at least 3, got {num_points}")
    data = path.read_bytes()
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    # Lines are decoded one at a time so that a single bad byte costs one line, reported with its number.
    for line_number, raw_line in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw_line.decode("utf-8").rstrip("\r")
            if not line.strip():
                continue
            yield parse_line(line, num_points)
        except ValueError as error:  # UnicodeDecodeError is a ValueError too
            malformed = MalformedLine(str(path), line_number, str(error))
            if on_malformed is None:
                raise ValueError(str(malformed)) from error
            on_malformed(malformed)


def _leading_numeric_count(fields: Sequence[str]) -> int:
    count = 0
    for field in fields:
        if not _is_number(field):
            break
        count += 1
    return count


def _is_number(field: str) -> bool:
    try:
        return math.isfinite(float(field))
    except ValueError:
        return False


def _parse_coordinates(fields: Sequence[str]) -> tuple[float, ...]:
    values = []
    for field in fields:
        if not _is_number(field):
            raise ValueError(f"expected a finite number, found {field.strip()!r}")
        values.append(float(field))
    return tuple(values)


def _unquote(text: str) -> str:
    # As the official script: a quoted transcription (blanks around the quotes allowed) loses its quotes,
    # then `\\` and `\"` are unescaped in that order; an unquoted one is kept exactly, blanks included.
    quoted = _QUOTED.fullmatch(text)
    if quoted is None:
        return text
    return quoted.group(1).replace("\\\\", "\\").replace('\\"', '"')


def _format_number(value: float, round_to_int: bool) -> str:
    if round_to_int or float(value).is_integer():
        return str(round(value))
    return repr(float(value))
