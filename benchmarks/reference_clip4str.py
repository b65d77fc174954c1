"""CLIP4STR decoding in the official order of work: the baseline of benchmarks/recognizer.py and the reference of
the tests that check the model's cached decoding against it.

Same stages and same numbers as `Clip4StrForSceneTextRecognition.decode`, computed the way the official code
computes them: every autoregressive step sends the whole prefix through the decoder again and projects the
memory's keys/values again, and every stage encodes every caption with the text tower. Load it by path
(benchmarks/ is not a package):

    spec = importlib.util.spec_from_file_location("reference_clip4str", "benchmarks/reference_clip4str.py")
"""

from __future__ import annotations

import torch

from scenetext.modeling.clip4str.modeling_clip4str import (
    Clip4StrDecoder,
    Clip4StrForSceneTextRecognition,
    greedy_decoding,
)


def reference_decode(
    model: Clip4StrForSceneTextRecognition, image_memory: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(cross_logits, visual_logits)` of the official evaluation, for the model's `decode_ar` and
    `refine_iters`."""
    config = model.config
    if config.decode_ar:
        visual_logits = _autoregressive(
            model, model.visual_decoder, image_memory, config.max_label_length + 1, stop_at_eos=True
        )
        cross_memory = model.build_cross_memory(visual_logits, image_memory)
        # No early stop of its own: the cross-modal decoder runs the steps the visual one ran.
        cross_logits = _autoregressive(
            model, model.cross_decoder, cross_memory, visual_logits.shape[1], stop_at_eos=False
        )
    else:
        visual_logits = model.parallel_decoding(
            model.visual_decoder, model.visual_decoder.project_memory(image_memory)
        )
        cross_memory = model.build_cross_memory(visual_logits, image_memory)
        cross_logits = model.parallel_decoding(
            model.cross_decoder, model.cross_decoder.project_memory(cross_memory)
        )
    for _ in range(config.refine_iters):
        visual_logits = model.cloze_refinement(
            model.visual_decoder, visual_logits, model.visual_decoder.project_memory(image_memory)
        )
        # The official code recomputes the cross-modal memory from the refined visual prediction.
        cross_memory = model.build_cross_memory(visual_logits, image_memory)
        cross_logits = model.cloze_refinement(
            model.cross_decoder, cross_logits, model.cross_decoder.project_memory(cross_memory)
        )
    return cross_logits, visual_logits


def _autoregressive(
    model: Clip4StrForSceneTextRecognition,
    decoder: Clip4StrDecoder,
    memory: torch.Tensor,
    num_steps: int,
    stop_at_eos: bool,
) -> torch.Tensor:
    """`greedy_decoding` without a cache: step `i` runs the decoder on the prefix `[B] c1 .. ci` with a causal
    content mask and the query of position `i` alone."""
    batch = memory.shape[0]
    causal = torch.triu(torch.full((num_steps, num_steps), float("-inf"), device=memory.device), 1)

    def step_logits(context: torch.Tensor, step: int) -> torch.Tensor:
        logits, _ = decoder(
            context[:, : step + 1],
            decoder.project_memory(memory),
            queries=decoder.pos_queries[:, step : step + 1].expand(batch, -1, -1),
            content_mask=causal[: step + 1, : step + 1],
        )
        return logits

    return greedy_decoding(step_logits, batch, num_steps, model.config, memory.device, stop_at_eos)
