"""Learning-rate schedules are functions of the step (nothing of them is saved with a checkpoint)."""

import pytest
import torch

from scenetext.training.config import OptimizerConfig
from scenetext.training.schedule import LearningRateSchedule


def _optimizer() -> torch.optim.Optimizer:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": rate} for rate in (1e-3, 2e-2)]
    return torch.optim.AdamW(groups)


@pytest.mark.parametrize("total, warmup", [(20, 0.075), (100, 0.3), (7, 0.5)])
def test_one_cycle_gives_torch_one_cycle_rates(total, warmup):
    optimizer = _optimizer()
    reference = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[1e-3, 2e-2], total_steps=total, pct_start=warmup, cycle_momentum=False
    )
    expected = []
    for _ in range(total):
        expected.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        if len(expected) < total:
            reference.step()
    schedule = LearningRateSchedule(_optimizer(), OptimizerConfig(warmup_fraction=warmup), total)
    for step in range(total):
        torch.testing.assert_close(schedule.rates(step), expected[step], rtol=1e-12, atol=0)


def test_poly_falls_to_its_floor_and_apply_sets_every_group():
    optimizer = _optimizer()
    options = OptimizerConfig(schedule="poly", poly_power=1.0, min_learning_rate=1e-4)
    schedule = LearningRateSchedule(optimizer, options, max_steps=10)
    assert schedule.rates(0) == [1e-3, 2e-2]
    torch.testing.assert_close(schedule.rates(5), [5e-4, 1e-2])
    assert schedule.rates(9) == [1e-4, pytest.approx(2e-3)]  # the first group stops at its floor
    assert schedule.apply(5) == pytest.approx(5e-4)
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([5e-4, 1e-2])


def test_a_longer_run_follows_the_longer_schedule_from_the_step_reached():
    options = OptimizerConfig(schedule="poly", poly_power=1.0, min_learning_rate=0.0)
    short = LearningRateSchedule(_optimizer(), options, max_steps=10)
    longer = LearningRateSchedule(_optimizer(), options, max_steps=20)
    assert short.rates(10) == short.rates(9)  # past the end the last rate holds (no error)
    torch.testing.assert_close(longer.rates(10), [5e-4, 1e-2])
