"""Checks every model of the repository passes, in the spirit of transformers' `ModelTesterMixin`.

A model's test class (`tests/modeling/<model>/test_common_<model>.py`) mixes in `ModelTesterMixin` and sets
`model_tester` to an object with `get_config()` (a tiny configuration) and `prepare_inputs(batch_size)` (random
`pixel_values` plus `labels` for that batch), and the class attributes below.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import torch
from transformers import PreTrainedModel


class ModelTesterMixin:
    model_class: ClassVar[type[PreTrainedModel]]
    model_tester: ClassVar[Any]
    # Output fields compared between two runs that should agree (loss excluded: it needs labels).
    compared_outputs: ClassVar[tuple[str, ...]]
    # Equal weights still round differently once BLAS kernels see other alignments or batch sizes.
    fp32_atol: ClassVar[float] = 1e-5
    # bf16 keeps 8 bits of mantissa: per-layer relative errors of ~4e-3 accumulate through the tiny networks.
    bf16_atol: ClassVar[float]

    def build_model(self) -> PreTrainedModel:
        torch.manual_seed(0)
        return self.model_class(self.model_tester.get_config())

    @staticmethod
    def run_model(model: PreTrainedModel, inputs: dict[str, Any]) -> Any:
        """Forward without gradients, with the global RNG reset: losses that draw random permutations draw
        the same ones on every run."""
        torch.manual_seed(0)
        with torch.no_grad():
            return model(**inputs)

    def inference_inputs(self, batch_size: int) -> dict[str, Any]:
        inputs = self.model_tester.prepare_inputs(batch_size)
        return {"pixel_values": inputs["pixel_values"]}

    def assert_outputs_close(self, actual: Any, expected: Any, atol: float, names: tuple[str, ...]) -> None:
        actual, expected = named_tensors(actual, names), named_tensors(expected, names)
        for name in expected:
            torch.testing.assert_close(
                actual[name].float(),
                expected[name].float(),
                atol=atol,
                rtol=0,
                msg=lambda m, n=name: f"{n}: {m}",
            )

    def test_save_load_round_trip_gives_the_same_outputs(self, tmp_path):
        model = self.build_model().eval()
        inputs = self.inference_inputs(2)
        expected = self.run_model(model, inputs)
        model.save_pretrained(tmp_path)
        loaded = self.model_class.from_pretrained(tmp_path).eval()
        self.assert_outputs_close(
            self.run_model(loaded, inputs), expected, self.fp32_atol, self.compared_outputs
        )

    def test_loaded_model_keeps_the_frozen_parameters_frozen(self, tmp_path):
        model = self.build_model()
        model.save_pretrained(tmp_path)
        loaded = self.model_class.from_pretrained(tmp_path)
        assert {name for name, p in loaded.named_parameters() if not p.requires_grad} == {
            name for name, p in model.named_parameters() if not p.requires_grad
        }

    @pytest.mark.slow
    def test_hub_folder_loads_where_scenetext_is_not_importable(self, tmp_path, run_isolated):
        model = self.build_model().eval()
        inputs = self.inference_inputs(2)
        expected = self.run_model(model, inputs)
        model.save_pretrained(tmp_path / "model")
        torch.save(
            {"inputs": inputs, "expected": named_tensors(expected, self.compared_outputs)},
            tmp_path / "io.pt",
        )
        stdout = run_isolated(
            f"""
            import torch
            from transformers import AutoModel
            model = AutoModel.from_pretrained({str(tmp_path / "model")!r}, trust_remote_code=True).eval()
            io = torch.load({str(tmp_path / "io.pt")!r})
            with torch.no_grad():
                outputs = model(**io["inputs"])
            def output(name):  # "field.i" is item i of a per-level tuple field
                field, _, level = name.partition(".")
                return outputs[field][int(level)] if level else outputs[field]
            errors = [(output(name) - value).abs().max().item() for name, value in io["expected"].items()]
            print(type(model).__module__, max(errors))
            """
        )
        module, error = stdout.split()
        # Loaded from the folder's own copy of the code (transformers_modules), not from an installed package.
        assert module.startswith("transformers_modules.") and float(error) <= self.fp32_atol

    def test_bf16_weights_give_outputs_close_to_fp32(self):
        model = self.build_model().eval()
        # With labels every output is computed from the labels (teacher forcing), not from the model's own
        # earlier predictions, so one rounding-flipped argmax cannot change whole sequences.
        inputs = self.model_tester.prepare_inputs(2)
        expected = self.run_model(model, inputs)
        model.to(torch.bfloat16)
        actual = self.run_model(model, _cast_floats(inputs, torch.bfloat16))
        assert all(
            value.dtype == torch.bfloat16 for value in named_tensors(actual, self.compared_outputs).values()
        )
        self.assert_outputs_close(actual, expected, self.bf16_atol, ("loss", *self.compared_outputs))

    def test_a_sample_alone_gives_its_outputs_within_a_batch(self):
        model = self.build_model().eval()
        batch = self.inference_inputs(3)
        together = named_tensors(self.run_model(model, batch), self.compared_outputs)
        for index in range(3):
            alone = self.run_model(model, {k: v[index : index + 1] for k, v in batch.items()})
            sample = {name: value[index : index + 1] for name, value in together.items()}
            alone = named_tensors(alone, self.compared_outputs)
            self.assert_outputs_close(alone, sample, self.fp32_atol, tuple(sample))

    def test_loss_reaches_every_trainable_parameter_and_no_frozen_one(self):
        model = self.build_model().train()
        model(**self.model_tester.prepare_inputs(2)).loss.backward()
        frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
        assert frozen, "the tiny configuration should keep the models' frozen parts"
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                assert parameter.grad is not None, f"{name} got no gradient"
                assert torch.isfinite(parameter.grad).all(), f"{name} got a non-finite gradient"
            else:
                assert parameter.grad is None, f"frozen {name} got a gradient"


def named_tensors(outputs: Any, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The output fields `names`, a tuple field (per-level maps) spelled out as `name.0`, `name.1`, ..."""
    tensors = {}
    for name in names:
        value = outputs[name]
        if isinstance(value, tuple | list):
            tensors.update({f"{name}.{index}": item for index, item in enumerate(value)})
        else:
            tensors[name] = value
    return tensors


def _cast_floats(value: Any, dtype: torch.dtype) -> Any:
    """`value` with its floating-point tensors cast to `dtype`, looking into mappings (TCM's labels are a
    dict of maps); ids and masks of other dtypes stay as they are."""
    if isinstance(value, dict):
        return {key: _cast_floats(item, dtype) for key, item in value.items()}
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(dtype)
    return value
