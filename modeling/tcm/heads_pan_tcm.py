"""PAN head of TCM-PANet (Wang et al., "Efficient and Accurate Arbitrary-Shaped Text Detection with Pixel
Aggregation Network", ICCV 2019): the FPEM+FFM neck, the 1x1 output convolution and the PAN loss, as mmocr 0.4 (the
code TCM trains with) computes them. Module names follow mmocr's, so official checkpoints map key for key.

The head predicts at stride 4: channel 0 the text region, channel 1 the text kernel (the region shrunk to 0.5),
channels 2-5 a similarity vector per pixel that pulls the pixels of one text towards its kernel.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

# Channels of the PAN head output: text region, kernel, and the 4-dimensional similarity vectors.
PAN_SIMILARITY_DIM = 4
PAN_OUT_CHANNELS = 2 + PAN_SIMILARITY_DIM
# Resolution of the PAN maps relative to the input (the FFM output is the stride-4 level).
PAN_STRIDE = 4
# Keys of `forward(labels=...)` for the PAN head; `TcmImageProcessor(head_type="pan").prepare_targets` makes them,
# each (batch, height, width) at the input resolution. The kernels hold instance numbers (0 = background).
PAN_LABEL_KEYS = ("text_kernel", "shrunk_kernel", "effective_mask")


class TcmSeparableConv(nn.Module):
    """Depthwise 3x3 then pointwise 1x1 convolution, batch norm and ReLU (FPEM's building block)."""

    def __init__(self, channels: int, stride: int = 1):
        super().__init__()
        self.depthwise_conv = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, groups=channels)
        self.pointwise_conv = nn.Conv2d(channels, channels, 1)
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.pointwise_conv(self.depthwise_conv(hidden))))


def _upsample_add(coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
    return F.interpolate(coarse, size=fine.shape[-2:]) + fine


class TcmFpem(nn.Module):
    """Feature pyramid enhancement module: a top-down pass then a bottom-up pass (strided separable convs) over
    the four levels."""

    def __init__(self, channels: int):
        super().__init__()
        for index in (1, 2, 3):
            setattr(self, f"up_add{index}", TcmSeparableConv(channels))
            setattr(self, f"down_add{index}", TcmSeparableConv(channels, stride=2))

    def forward(self, c2, c3, c4, c5):
        c4 = self.up_add1(_upsample_add(c5, c4))
        c3 = self.up_add2(_upsample_add(c4, c3))
        c2 = self.up_add3(_upsample_add(c3, c2))
        # mmocr's bottom-up pass adds the *upsampled coarser* map to the finer one, then halves it by the stride.
        c3 = self.down_add1(_upsample_add(c3, c2))
        c4 = self.down_add2(_upsample_add(c4, c3))
        c5 = self.down_add3(_upsample_add(c5, c4))
        return c2, c3, c4, c5


def _reduce_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels), nn.ReLU())


class TcmFpemFfm(nn.Module):
    """PAN's neck: 1x1 reductions to `channels`, `repeats` cascaded FPEMs whose outputs are summed level by level
    (feature fusion module), every level resized bilinearly to stride 4 and concatenated."""

    def __init__(self, in_channels: list[int], channels: int, repeats: int):
        super().__init__()
        for level, in_channel in zip(("c2", "c3", "c4", "c5"), in_channels, strict=True):
            setattr(self, f"reduce_conv_{level}", _reduce_conv(in_channel, channels))
        self.fpems = nn.ModuleList(TcmFpem(channels) for _ in range(repeats))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        levels = [
            getattr(self, f"reduce_conv_{name}")(feature)
            for name, feature in zip(("c2", "c3", "c4", "c5"), features, strict=True)
        ]
        fused = None
        for fpem in self.fpems:
            levels = fpem(*levels)
            fused = list(levels) if fused is None else [a + b for a, b in zip(fused, levels, strict=True)]
        size = fused[0].shape[-2:]
        upsampled = [
            F.interpolate(level, size=size, mode="bilinear", align_corners=False) for level in fused[1:]
        ]
        return torch.cat([fused[0], *upsampled], dim=1)


class TcmPanHead(nn.Module):
    """A 1x1 convolution from the concatenated FFM levels to the 6 PAN maps (logits and similarity vectors)."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.out_conv = nn.Conv2d(in_channels, PAN_OUT_CHANNELS, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out_conv(features)


# ------------------------------------------------------------------------------------------------------------
# Loss (mmocr 0.4 PANLoss, and TCM's PANIdentityHead for the matching map)
# ------------------------------------------------------------------------------------------------------------


def hard_negative_mask(
    scores: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, ratio: float
) -> torch.Tensor:
    """PAN's online hard example mining, per image: every text pixel plus the `ratio` x as many highest-scoring
    background pixels, inside `mask`. An image without text (or without background) keeps all of `mask`.

    As mmocr, positives exclude ignored pixels but the negatives counted and ranked include them, and every
    background pixel scoring at least the k-th highest is kept (ties included)."""
    sampled = []
    for score, text, effective in zip(scores, gt > 0.5, mask > 0.5, strict=True):
        positives = int(text.sum()) - int((text & ~effective).sum())
        negatives = min(int(positives * ratio), int((~text).sum()))
        if positives == 0 or negatives == 0:
            sampled.append(effective)
            continue
        threshold = torch.topk(score[~text], negatives).values[-1]
        sampled.append(((score >= threshold) | text) & effective)
    return torch.stack(sampled).float()


def pan_dice_loss(logits: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image dice loss of sigmoid(`logits`) against `gt` > 0.5 inside `mask`, with PAN's squared
    denominators and 1e-3 smoothing: (batch,)."""
    pred = torch.sigmoid(logits).flatten(1) * mask.flatten(1)
    target = (gt > 0.5).float().flatten(1) * mask.flatten(1)
    smooth = 1e-3
    overlap = (pred * target).sum(1) + smooth
    return 1 - 2 * overlap / ((pred * pred).sum(1) + smooth + (target * target).sum(1) + smooth)


def aggregation_discrimination_loss(
    text_instances: torch.Tensor,
    kernel_instances: torch.Tensor,
    similarity: torch.Tensor,
    aggregation_delta: float,
    discrimination_delta: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PAN's aggregation loss (text pixels within `aggregation_delta` of their kernel's mean vector) and
    discrimination loss (kernel means at least `discrimination_delta` apart), per image: two (batch,) tensors.

    Instance numbers index both maps; an instance with no kernel or no text pixel is skipped. As mmocr, the
    discrimination sum over unordered pairs is divided by n (n - 1)."""
    aggregation, discrimination = [], []
    zero = similarity.new_zeros(())
    for text, kernel, vectors in zip(
        text_instances.flatten(1), kernel_instances.flatten(1), similarity.flatten(2), strict=True
    ):
        kernel_means, image_terms = [], []
        for instance in range(1, int(text.max()) + 1):
            in_kernel, in_text = kernel == instance, text == instance
            if not in_kernel.any() or not in_text.any():
                continue
            mean = vectors[:, in_kernel].mean(1)
            kernel_means.append(mean)
            distance = (vectors[:, in_text] - mean[:, None]).norm(dim=0) - aggregation_delta
            image_terms.append(torch.log(distance.clamp(min=0).pow(2) + 1).mean())
        aggregation.append(torch.stack(image_terms).mean() if image_terms else zero)
        count = len(kernel_means)
        if count > 1:
            pairs = [
                torch.log((discrimination_delta - (a - b).norm()).clamp(min=0).pow(2) + 1)
                for a, b in itertools.combinations(kernel_means, 2)
            ]
            discrimination.append(torch.stack(pairs).sum() / (count * (count - 1)))
        else:
            discrimination.append(zero)
    return torch.stack(aggregation), torch.stack(discrimination)


def pan_losses(pan_maps: torch.Tensor, labels: dict[str, torch.Tensor], config) -> dict[str, torch.Tensor]:
    """The PAN loss terms (batch means, weighted): `text_loss`, `kernel_loss`, `aggregation_loss`,
    `discrimination_loss`. `labels` are at the input resolution; they are sampled at the map's stride (nearest,
    as mmocr's mask rescaling)."""
    stride = PAN_STRIDE
    text_instances, kernel_instances, effective = (
        labels[key][:, ::stride, ::stride] for key in PAN_LABEL_KEYS
    )
    text_logits, kernel_logits, similarity = pan_maps[:, 0], pan_maps[:, 1], pan_maps[:, 2:]
    aggregation, discrimination = aggregation_discrimination_loss(
        text_instances,
        kernel_instances,
        similarity,
        config.pan_aggregation_delta,
        config.pan_discrimination_delta,
    )
    sampled = hard_negative_mask(text_logits.detach(), text_instances, effective, config.negative_ratio)
    text = pan_dice_loss(text_logits, text_instances, sampled)
    kernel = pan_dice_loss(kernel_logits, kernel_instances, (text_instances > 0.5).float() * effective)
    return {
        "text_loss": text.mean(),
        "kernel_loss": config.pan_kernel_weight * kernel.mean(),
        "aggregation_loss": config.pan_embedding_weight * aggregation.mean(),
        "discrimination_loss": config.pan_embedding_weight * discrimination.mean(),
    }


def pan_matching_loss(
    matching_logits: torch.Tensor, labels: dict[str, torch.Tensor], negative_ratio: float
) -> torch.Tensor:
    """TCM's auxiliary loss for PAN (`PANIdentityHead`): the PAN dice loss with hard negatives of the matching map
    logits, upsampled to the input, against the text regions; batch mean."""
    text, effective = labels["text_kernel"], labels["effective_mask"]
    logits = F.interpolate(matching_logits, size=text.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    sampled = hard_negative_mask(logits.detach(), text, effective, negative_ratio)
    return pan_dice_loss(logits, text, sampled).mean()
