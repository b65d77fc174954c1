"""Learning-rate schedules as functions of the step.

The rate of every step is computed from the step, `max_steps` and the optimizer config alone, so nothing of the
schedule is saved with a checkpoint: a resumed run rebuilds it. Resuming a finished run with a larger
`max_steps` therefore continues on the longer schedule from the step it reached (for `one_cycle` and `poly`
the rate jumps to the longer schedule's value at that step, it does not restart the warm-up).
"""

from __future__ import annotations

import math

import torch

from .config import OptimizerConfig

# OneCycleLR's defaults, which the official recipes use: start at max / 25, end at max / 25 / 1e4.
ONE_CYCLE_START_DIVISOR = 25.0
ONE_CYCLE_END_DIVISOR = 1e4


class LearningRateSchedule:
    """Sets each optimizer group's rate for a step: its configured (base) rate times the schedule's factor."""

    def __init__(self, optimizer: torch.optim.Optimizer, options: OptimizerConfig, max_steps: int):
        self.optimizer = optimizer
        self.options = options
        self.max_steps = max_steps
        # Read before any saved optimizer state is loaded: that holds the scheduled rates, not the base ones.
        self.base_rates = [group["lr"] for group in optimizer.param_groups]

    def rates(self, step: int) -> list[float]:
        options, total = self.options, self.max_steps
        step = min(step, total - 1)  # past the end (never trained), the last rate holds
        if options.schedule == "constant":
            return list(self.base_rates)
        if options.schedule == "poly":
            factor = (1 - step / total) ** options.poly_power
            return [max(base * factor, min(options.min_learning_rate, base)) for base in self.base_rates]
        factor = _one_cycle_factor(step, total, options.warmup_fraction)
        return [base * factor for base in self.base_rates]

    def apply(self, step: int) -> float:
        """Set the rates of `step` (0-based: the step about to be taken); returns the first group's."""
        rates = self.rates(step)
        for group, rate in zip(self.optimizer.param_groups, rates, strict=True):
            group["lr"] = rate
        return rates[0]


def _one_cycle_factor(step: int, total: int, warmup_fraction: float) -> float:
    """Cosine rise from 1/25 to 1 over the warm-up, then cosine fall to 1/25/1e4 at the last step."""
    start = 1 / ONE_CYCLE_START_DIVISOR
    end = start / ONE_CYCLE_END_DIVISOR
    peak_step = warmup_fraction * total - 1
    if peak_step > 0 and step <= peak_step:
        return _cosine_between(start, 1.0, step / peak_step)
    return _cosine_between(1.0, end, (step - peak_step) / (total - 1 - peak_step))


def _cosine_between(first: float, last: float, fraction: float) -> float:
    return last + (first - last) * (1 + math.cos(math.pi * fraction)) / 2
