"""The ONNX translations of stable sort, searchsorted and cummax against torch on inputs with ties and on the
boundaries of the searched table."""

from __future__ import annotations

import numpy as np
import pytest
import torch

onnxruntime = pytest.importorskip("onnxruntime", reason="the ONNX export tests need the [onnx] extra")
pytest.importorskip("onnxscript", reason="the ONNX export tests need the [onnx] extra (onnxscript)")

from scenetext.export.onnx_translations import TRANSLATIONS  # noqa: E402


class _TokenizerOps(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("table", torch.tensor([2, 5, 5, 9, 14, 20, 31], dtype=torch.int64))

    def forward(self, flags: torch.Tensor, values: torch.Tensor, runs: torch.Tensor):
        order = torch.sort(flags, dim=1, stable=True).indices
        slots = torch.searchsorted(self.table, values)
        maxima, where = runs.cummax(dim=1)
        return order, slots, maxima, where


def test_translations_match_torch(tmp_path):
    module = _TokenizerOps().eval()
    flags = torch.tensor([[1, 0, 1, 0, 0, 1], [0, 0, 0, 1, 1, 1], [1, 1, 1, 1, 1, 0]], dtype=torch.uint8)
    # below, equal to, between and above the table's entries (5 appears twice: the left slot is the first)
    values = torch.tensor([[0, 2, 5, 6, 31, 40], [9, 10, 14, 19, 20, 1], [3, 3, 30, 32, 2, 5]])
    runs = torch.tensor([[0, 3, 3, 1, 4, 4], [5, 1, 2, 5, 0, 0], [0, 0, 0, 0, 0, 0]])
    path = tmp_path / "ops.onnx"
    torch.onnx.export(
        module, (flags, values, runs), dynamo=True, custom_translation_table=TRANSLATIONS, optimize=False
    ).save(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    received = session.run(None, {"flags": flags.numpy(), "values": values.numpy(), "runs": runs.numpy()})
    for got, want in zip(received, module(flags, values, runs), strict=True):
        np.testing.assert_array_equal(got, want.numpy())
