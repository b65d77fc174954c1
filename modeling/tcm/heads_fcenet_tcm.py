"""FCENet head of TCM-FCENet (Zhu et al., "Fourier Contour Embedding for Arbitrary-Shaped Text Detection", CVPR
2021): the FPN neck on backbone stages 2-4, the shared classification and regression convolutions and the FCE loss,
as mmocr 0.4 / mmdet 2.x compute them (the code TCM trains with). Module names follow theirs, so official
checkpoints map key for key.

Per level (strides 8, 16, 32) the head predicts 4 classification channels (text region: background/text logits;
text center region: background/center logits) and 2 (2k + 1) regression channels: the real parts, then the
imaginary parts, of the Fourier coefficients c_{-k}..c_k of the text contour around each pixel, in level pixels
with c_0 relative to the pixel.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# Strides of the three FPN levels FCENet predicts on (backbone stages 2, 3, 4): mmocr's `scales` (8, 16, 32).
FCE_STRIDES = (8, 16, 32)
# Keys of `forward(labels=...)` for the FCENet head; `TcmImageProcessor(head_type="fcenet").prepare_targets` makes
# them. `fce_maps_<s>` is (batch, 3 + 2 (2k + 1), height / s, width / s): text region, center region, effective mask,
# then the real and imaginary Fourier maps; `matching_region` is (batch, 2, height / 32, width / 32): every text's
# region and the effective mask, the target of TCM's auxiliary loss.
FCE_LABEL_KEYS = (*(f"fce_maps_{stride}" for stride in FCE_STRIDES), "matching_region")


class TcmFcenetFpn(nn.Module):
    """mmdet's FPN as TCM-FCENet configures it: 1x1 laterals with bias, top-down nearest-upsample-and-add, a 3x3
    convolution per level, no activation; one output per input level (`num_outs` equals the input levels, so the
    configured extra convolutions are never built)."""

    def __init__(self, in_channels: list[int], channels: int):
        super().__init__()
        self.lateral_convs = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.fpn_convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in in_channels)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        laterals = [conv(feature) for conv, feature in zip(self.lateral_convs, features, strict=True)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=laterals[i - 1].shape[-2:])
        return [conv(lateral) for conv, lateral in zip(self.fpn_convs, laterals, strict=True)]


class TcmFceHead(nn.Module):
    """The classification and regression 3x3 convolutions, shared by all levels."""

    def __init__(self, in_channels: int, fourier_degree: int):
        super().__init__()
        self.out_conv_cls = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.out_conv_reg = nn.Conv2d(in_channels, 2 * (2 * fourier_degree + 1), 3, padding=1)

    def forward(
        self, levels: list[torch.Tensor]
    ) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        return tuple(self.out_conv_cls(level) for level in levels), tuple(
            self.out_conv_reg(level) for level in levels
        )


# ------------------------------------------------------------------------------------------------------------
# Loss (mmocr 0.4 FCELoss)
# ------------------------------------------------------------------------------------------------------------


def fourier_to_contour(
    real: torch.Tensor, imaginary: torch.Tensor, num_points: int
) -> tuple[torch.Tensor, ...]:
    """x and y of `num_points` contour points from Fourier coefficients c_{-k}..c_k given as real and imaginary
    parts (n, 2k + 1): the inverse transform at equally spaced angles."""
    degree = (real.shape[-1] - 1) // 2
    frequencies = torch.arange(-degree, degree + 1, dtype=real.dtype, device=real.device)
    steps = torch.arange(num_points, dtype=real.dtype, device=real.device)
    angles = 2 * math.pi / num_points * frequencies[:, None] * steps[None, :]
    cos, sin = torch.cos(angles), torch.sin(angles)
    return real @ cos - imaginary @ sin, real @ sin + imaginary @ cos


def fce_text_loss(
    logits: torch.Tensor, target: torch.Tensor, effective: torch.Tensor, ratio: float
) -> torch.Tensor:
    """Cross-entropy of the text region with online hard example mining: all text pixels plus the `ratio` x as
    many hardest background pixels inside the effective mask.

    mmocr's quirks, kept: without text pixels the 100 hardest background pixels are taken; and the sum is divided
    by n_pos + n_neg even when fewer background pixels exist than n_neg."""
    positive = (target * effective).bool()
    negative = ((1 - target) * effective).bool()
    positive_count = int(positive.sum())
    negative_losses = F.cross_entropy(logits[negative], target[negative].long(), reduction="none")
    if positive_count > 0:
        positive_loss = F.cross_entropy(logits[positive], target[positive].long(), reduction="sum")
        negative_count = min(int(negative.sum()), int(ratio * positive_count))
    else:
        positive_loss = logits.new_zeros(())
        negative_count = 100
    if len(negative_losses) > negative_count:
        negative_losses = torch.topk(negative_losses, negative_count).values
    return (positive_loss + negative_losses.sum()) / (positive_count + negative_count)


def fce_level_losses(
    classification: torch.Tensor,
    regression: torch.Tensor,
    targets: torch.Tensor,
    num_samples: int,
    ratio: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Text, center, x and y regression losses of one level; `targets` as `fce_maps_<s>`."""
    coefficients = regression.shape[1] // 2
    classification = classification.permute(0, 2, 3, 1).reshape(-1, 4)
    regression = regression.permute(0, 2, 3, 1).reshape(-1, 2 * coefficients)
    targets = targets.permute(0, 2, 3, 1).reshape(-1, targets.shape[1])
    text, center, effective = targets[:, 0], targets[:, 1], targets[:, 2]
    text_loss = fce_text_loss(classification[:, :2], text, effective, ratio)

    trained = (text * effective).bool()
    zero = classification.new_zeros(())
    if not trained.any():
        return text_loss, zero, zero, zero
    center_logits = classification[:, 2:]
    center_loss = F.cross_entropy(center_logits[trained], center[trained].long()) + 0.5 * F.cross_entropy(
        center_logits[~trained], center[~trained].long()
    )
    weight = ((text[trained] + center[trained]) / 2)[:, None]
    target_x, target_y = fourier_to_contour(
        targets[trained, 3 : 3 + coefficients], targets[trained, 3 + coefficients :], num_samples
    )
    predicted_x, predicted_y = fourier_to_contour(
        regression[trained, :coefficients], regression[trained, coefficients:], num_samples
    )
    x_loss = torch.mean(weight * F.smooth_l1_loss(predicted_x, target_x, reduction="none"))
    y_loss = torch.mean(weight * F.smooth_l1_loss(predicted_y, target_y, reduction="none"))
    return text_loss, center_loss, x_loss, y_loss


def fce_losses(
    classification: list[torch.Tensor],
    regression: list[torch.Tensor],
    labels: dict[str, torch.Tensor],
    config,
) -> dict[str, torch.Tensor]:
    """The FCE loss terms, each summed over the levels: `text_loss`, `center_loss`, `regression_x_loss`,
    `regression_y_loss`."""
    totals = [classification[0].new_zeros(()) for _ in range(4)]
    for level, stride in enumerate(FCE_STRIDES):
        terms = fce_level_losses(
            classification[level],
            regression[level],
            labels[f"fce_maps_{stride}"],
            config.fce_num_samples,
            config.negative_ratio,
        )
        totals = [total + term for total, term in zip(totals, terms, strict=True)]
    return dict(
        zip(("text_loss", "center_loss", "regression_x_loss", "regression_y_loss"), totals, strict=True)
    )
