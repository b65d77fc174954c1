"""Reading order of detected words: lines from top to bottom, words from left to right within a line."""

from __future__ import annotations

from collections.abc import Sequence

# Two words share a line when their vertical extents overlap by more than this fraction of the shorter one;
# half a word height keeps neighbouring lines apart while tolerating small tilts and baseline jitter.
LINE_OVERLAP = 0.5


def reading_order(boxes: Sequence[Sequence[float]], line_overlap: float = LINE_OVERLAP) -> list[int]:
    """Indices of `boxes` (x_min, y_min, x_max, y_max) in reading order.

    Words are taken by increasing vertical centre; each joins the first line whose vertical span it overlaps
    by more than `line_overlap` of the smaller height, else starts a new line. Lines are read by their mean
    vertical centre, words within a line by their left edge.
    """
    if not 0 < line_overlap <= 1:
        raise ValueError(f"line_overlap must be in (0, 1], got {line_overlap}")
    lines: list[dict] = []
    for index in sorted(range(len(boxes)), key=lambda i: (boxes[i][1] + boxes[i][3]) / 2):
        _, top, _, bottom = boxes[index]
        height = max(bottom - top, 1e-6)
        for line in lines:
            overlap = min(bottom, line["bottom"]) - max(top, line["top"])
            if overlap > line_overlap * min(height, line["height"]):
                line["members"].append(index)
                line["top"], line["bottom"] = min(top, line["top"]), max(bottom, line["bottom"])
                line["height"] = min(line["height"], height)
                break
        else:
            lines.append({"members": [index], "top": top, "bottom": bottom, "height": height})

    def centre(line: dict) -> float:
        return sum((boxes[i][1] + boxes[i][3]) / 2 for i in line["members"]) / len(line["members"])

    order: list[int] = []
    for line in sorted(lines, key=centre):
        order.extend(sorted(line["members"], key=lambda i: boxes[i][0]))
    return order
