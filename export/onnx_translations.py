"""ONNX translations of the three ATen ops that CLIP4STR's on-tensor caption tokenizer uses and that the
installed exporter has no translation for: stable `sort`, `searchsorted` and `cummax`.

Each one is written only for what the tokenizer needs of it (integer keys, sorting ascending, searching on the
left), and refuses anything else at export time rather than exporting a different op.
"""

from __future__ import annotations

import math

import torch
from onnxscript import opset18 as op

_INT64 = 7
_INT32 = 6


def _positions_along(dim: int, rank: int, length):
    """0..length-1 shaped to broadcast along `dim` of a rank-`rank` tensor."""
    positions = op.Range(op.Constant(value_int=0), length, op.Constant(value_int=1))
    other_axes = [axis for axis in range(rank) if axis != dim]
    return op.Unsqueeze(positions, op.Constant(value_ints=other_axes)) if other_axes else positions


def stable_sort(self, stable: bool | None = None, dim: int = -1, descending: bool = False):
    """`aten.sort.stable` on integer keys, ascending: TopK (not stable in ONNX) on `key * length + position`,
    whose values are all distinct, so ties keep their input order."""
    if descending:
        raise ValueError("the ONNX stable sort supports ascending order only")
    rank = len(self.shape)
    dim = dim % rank
    length = op.Gather(op.Shape(self), op.Constant(value_ints=[dim]))
    unique_keys = op.Add(
        op.Mul(op.Cast(self, to=_INT64), length), _positions_along(dim, rank, op.Squeeze(length))
    )
    _, indices = op.TopK(unique_keys, length, axis=dim, largest=0, sorted=1)
    return op.GatherElements(self, indices, axis=dim), indices


def searchsorted(sorted_sequence, self, out_int32=False, right=False, side=None, sorter=None):
    """`aten.searchsorted.Tensor` (left side, 1-D sequence of static length): an unrolled binary search, one
    Gather per halving, instead of comparing every value with the whole merge table."""
    if right or side not in (None, "left") or sorter is not None:
        raise ValueError("the ONNX searchsorted supports side='left' without a sorter only")
    if len(sorted_sequence.shape) != 1:
        raise ValueError("the ONNX searchsorted supports a 1-D sorted sequence only")
    length = sorted_sequence.shape[0]
    low = op.Mul(op.Cast(self, to=_INT64), op.Constant(value_int=0))
    high = op.Add(low, op.Constant(value_int=length))
    for _ in range(math.ceil(math.log2(length + 1))):
        middle = op.Div(op.Add(low, high), op.Constant(value_int=2))
        probed = op.Gather(sorted_sequence, op.Min(middle, op.Constant(value_int=length - 1)), axis=0)
        searching = op.Less(low, high)
        go_right = op.And(op.Less(probed, self), searching)
        low = op.Where(go_right, op.Add(middle, op.Constant(value_int=1)), low)
        high = op.Where(op.And(searching, op.Not(go_right)), middle, high)
    return op.Cast(low, to=_INT32) if out_int32 else low


def _running_max(values, dim: int, length: int):
    """Inclusive prefix maximum along `dim` in log2(length) shifted maxima (Hillis-Steele scan)."""
    shift = 1
    while shift < length:
        axis = op.Constant(value_ints=[dim])
        head = op.Slice(values, op.Constant(value_ints=[0]), op.Constant(value_ints=[shift]), axis)
        body = op.Slice(values, op.Constant(value_ints=[0]), op.Constant(value_ints=[length - shift]), axis)
        values = op.Max(values, op.Concat(head, body, axis=dim))
        shift *= 2
    return values


def cummax(self, dim: int):
    """`aten.cummax` along a dimension of static length. The index of a running maximum is the last position
    up to it where the input equals its own running maximum (positions after it are all below that maximum)."""
    rank = len(self.shape)
    dim = dim % rank
    length = self.shape[dim]
    if not isinstance(length, int):
        raise ValueError("the ONNX cummax needs a static length along its dimension")
    values = _running_max(self, dim, length)
    positions = _positions_along(dim, rank, op.Constant(value_int=length))
    last_record = op.Where(op.Equal(self, values), positions, op.Constant(value_int=0))
    return values, _running_max(last_record, dim, length)


TRANSLATIONS = {
    torch.ops.aten.sort.stable: stable_sort,
    torch.ops.aten.searchsorted.Tensor: searchsorted,
    torch.ops.aten.cummax.default: cummax,
}
