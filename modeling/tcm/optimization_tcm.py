"""`optimize_for_inference`: a trained TCM detector rewritten once into an eval-only model that computes the same
maps in fewer passes over memory on CPU.

What changes, module by module (the rest of the model is shared with the original):
- every batch norm is folded into the convolution before it (trunk and DB head), once;
- convolutions run by oneDNN on channels-last maps, applying their ReLU, and in the bottlenecks the residual
  sum and ReLU, as they write the output;
- a bottleneck writes its residual sum into the downsampled shortcut, or into its own input when that is the
  previous block's output and nothing else holds it, instead of allocating a new map;
- the FPNC neck never makes its nearest-upsampled maps: coarser levels are added into, and smoothed levels
  copied into, strided views of the finer maps;
- the DB head's two 2x2 stride-2 transposed convolutions run as two matrix products per pixel, a few rows of
  pixels at a time, so the half-resolution middle map never exists whole.

The maps equal the plain model's within float rounding (fp32, and bf16 under CPU autocast). The result is for
inference only: its fused modules hold folded copies of the weights, write in place and have no backward, so
they raise under `.train()` and when gradients are enabled (run it under `torch.inference_mode()` or
`torch.no_grad()`). Optimize again after changing the weights, and save the plain model: the fused modules'
state dict has other keys. `torch.compile` should get the plain model (the compiler folds batch norms and fuses
convolutions itself, and cannot trace the oneDNN pointwise ops used here).
"""

from __future__ import annotations

import copy
import itertools

import torch
import torch.nn.functional as F
from timm.layers import ConvNormAct
from timm.models.byobnet import BottleneckBlock, DownsampleAvg
from torch import nn

from .modeling_tcm import TcmDbBranch, TcmForSceneTextDetection, TcmFpnc


def optimize_for_inference(
    model: TcmForSceneTextDetection, inplace: bool = False
) -> TcmForSceneTextDetection:
    """The detector with its trunk, neck and DB head replaced by the fused eval-only modules of this file.

    With `inplace=False` (the default) `model` is left untouched: the result is a copy that shares every
    parameter and buffer of `model` it does not fuse (no second text tower in memory) and holds its own folded
    weights for the rest."""
    if not isinstance(model, TcmForSceneTextDetection):
        raise TypeError(
            f"optimize_for_inference takes a TcmForSceneTextDetection, got {type(model).__name__}"
        )
    if isinstance(model.image_encoder.trunk.stem[0], ChannelsLast):
        raise ValueError("optimize_for_inference: this model is already optimized for inference")
    if not inplace:
        shared = {id(tensor): tensor for tensor in itertools.chain(model.parameters(), model.buffers())}
        model = copy.deepcopy(model, memo=shared)
    model.eval()
    trunk = model.image_encoder.trunk
    trunk.stem = nn.Sequential(ChannelsLast(), *(fuse_stem_layer(layer) for layer in trunk.stem))
    trunk.stages = nn.Sequential(*(fuse_stage(stage) for stage in trunk.stages))
    if model.config.head_type == "dbnet":
        # The PAN and FCENet necks and heads are light next to the trunk; they run as they are.
        model.neck = FusedFpnc(model.neck)
        model.head.binarize = FusedDbBranch(model.head.binarize)
        model.head.threshold = FusedDbBranch(model.head.threshold)
    return model


class EvalOnlyModule(nn.Module):
    """Base of the fused modules: they cannot train (folded weights, in-place writes, no backward)."""

    def train(self, mode: bool = True) -> EvalOnlyModule:
        if mode:
            raise ValueError(
                f"{type(self).__name__} is part of a TCM model optimized for inference and cannot train; "
                "train the plain model and call optimize_for_inference() again"
            )
        return super().train(False)


class ChannelsLast(EvalOnlyModule):
    """Turns the input channels-last: oneDNN's convolutions and pooling run faster on NHWC maps on CPU, and
    every later map (and the per-pixel products of the head) follows the layout of the input."""

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden.contiguous(memory_format=torch.channels_last)


def batch_norm_scale_shift(norm: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (scale, shift) with which an eval-mode batch norm maps x to x * scale + shift, in fp32."""
    if norm.running_mean is None or norm.running_var is None:
        raise ValueError(f"{norm}: a batch norm without running statistics cannot be folded")
    scale = torch.rsqrt(norm.running_var.float() + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight.float()
    shift = -norm.running_mean.float() * scale
    if norm.bias is not None:
        shift = shift + norm.bias.float()
    return scale, shift


# oneDNN's convolutions with a fused ReLU, and (the binary overload of the in-place op, which PyTorch's
# inductor emits for conv + add + ReLU on CPU) with a fused residual sum and ReLU; None in builds without them.
_CONV_POINTWISE = getattr(torch.ops.mkldnn, "_convolution_pointwise", None)
_CONV_POINTWISE_INPLACE = getattr(torch.ops.mkldnn, "_convolution_pointwise_", None)


def onednn_dtype(hidden: torch.Tensor, weight: torch.Tensor) -> torch.dtype | None:
    """The dtype in which oneDNN runs a convolution of `hidden` by `weight`, or None when `F.conv2d` should:
    fp32, or under CPU autocast to bf16 the autocast dtype (`F.conv2d` would cast input, weight and bias to
    it, and so does `FusedConv2d`), on a CPU with oneDNN."""
    if hidden.device.type != "cpu" or not torch.backends.mkldnn.is_available() or _CONV_POINTWISE is None:
        return None
    if torch.is_autocast_enabled("cpu"):
        dtype = torch.get_autocast_dtype("cpu")
        return dtype if dtype == torch.bfloat16 and torch.ops.mkldnn._is_mkldnn_bf16_supported() else None
    return torch.float32 if hidden.dtype == weight.dtype == torch.float32 else None


class FusedConv2d(EvalOnlyModule):
    """A convolution with the eval-mode batch norm after it folded into its weight and bias, then an optional
    ReLU and an optional module (timm's anti-aliasing pool), run by oneDNN where it can."""

    def __init__(
        self,
        conv: nn.Conv2d,
        norm: nn.BatchNorm2d | None = None,
        relu: bool = False,
        after: nn.Module | None = None,
    ):
        super().__init__()
        if type(conv) is not nn.Conv2d or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError(f"{conv}: only plain nn.Conv2d with numeric zero padding can be fused")
        weight = conv.weight.detach()
        bias = None if conv.bias is None else conv.bias.detach()
        if norm is not None:
            scale, shift = batch_norm_scale_shift(norm)
            folded_bias = shift if bias is None else bias.float() * scale + shift
            weight = (weight.float() * scale[:, None, None, None]).to(weight.dtype)
            bias = folded_bias.to(weight.dtype)
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)
        self.geometry = (conv.padding, conv.stride, conv.dilation, conv.groups)
        self.relu = relu
        self.after = after if after is not None else nn.Identity()

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            raise ValueError(
                "a TCM model optimized for inference has no gradients: call it under torch.inference_mode() "
                "or torch.no_grad(), or use the plain model"
            )
        dtype = onednn_dtype(hidden, self.weight)
        if dtype is None:
            padding, stride, dilation, groups = self.geometry
            hidden = F.conv2d(hidden, self.weight, self.bias, stride, padding, dilation, groups)
            hidden = hidden.relu_() if self.relu else hidden
        else:
            attr = "relu" if self.relu else "none"
            hidden = _CONV_POINTWISE(*self._cast(hidden, dtype), *self.geometry, attr, [], "")
        return self.after(hidden)

    def add_relu_(self, residual: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """`residual = relu(residual + conv(hidden))`, written into `residual` (the ReLU of this module is not
        applied to the convolution first; it is meant for the last convolution of a bottleneck)."""
        dtype = onednn_dtype(hidden, self.weight)
        if (
            dtype is None
            or _CONV_POINTWISE_INPLACE is None
            or residual.dtype != dtype
            or self.relu
            or type(self.after) is not nn.Identity
        ):
            return residual.add_(self(hidden)).relu_()
        return _CONV_POINTWISE_INPLACE.binary(
            residual, *self._cast(hidden, dtype), *self.geometry, "add", 1.0, "relu", [], ""
        )

    def _cast(self, hidden: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        bias = None if self.bias is None else self.bias.to(dtype)
        return hidden.to(dtype), self.weight.to(dtype), bias


def fuse_conv_norm_act(block: ConvNormAct) -> FusedConv2d:
    """timm's conv -> batch norm (-> dropout -> ReLU) (-> anti-aliasing) block as one `FusedConv2d`."""
    norm = block.bn
    if type(norm.drop) is not nn.Identity or type(norm.act) not in (nn.ReLU, nn.Identity):
        raise ValueError(f"{block}: only batch norms followed by a ReLU or nothing can be fused")
    return FusedConv2d(block.conv, norm, relu=type(norm.act) is nn.ReLU, after=getattr(block, "aa", None))


def fuse_stem_layer(layer: nn.Module) -> nn.Module:
    return fuse_conv_norm_act(layer) if isinstance(layer, ConvNormAct) else layer


def fuse_stage(stage: nn.Sequential) -> nn.Sequential:
    # The first block's input is the previous stage's output, which the encoder keeps as a stage feature;
    # every later block's input is only the previous block's output, so it may be overwritten.
    return nn.Sequential(
        *(FusedBottleneck(block, consume_input=index > 0) for index, block in enumerate(stage))
    )


class FusedBottleneck(EvalOnlyModule):
    """timm's bottleneck block (1x1 reduce, 3x3 (+ anti-aliasing pool), 1x1 expand, shortcut, ReLU) with fused
    convolutions, the last one adding itself into the shortcut map in place (`FusedConv2d.add_relu_`)."""

    def __init__(self, block: BottleneckBlock, consume_input: bool):
        super().__init__()
        unsupported = [
            name
            for name in ("conv2b_kxk", "attn", "attn_last", "drop_path")
            if type(getattr(block, name)) is not nn.Identity
        ]
        if not isinstance(block, BottleneckBlock) or unsupported or type(block.act) is not nn.ReLU:
            raise ValueError(
                f"{type(block).__name__}: only CLIP ResNet bottlenecks (ReLU, no extra attention, dropout or "
                f"second kxk conv) can be fused; found {unsupported or type(block.act).__name__}"
            )
        self.conv1 = fuse_conv_norm_act(block.conv1_1x1)
        self.conv2 = fuse_conv_norm_act(block.conv2_kxk)
        self.conv3 = fuse_conv_norm_act(block.conv3_1x1)
        if isinstance(block.shortcut, DownsampleAvg):
            self.downsample = nn.Sequential(block.shortcut.pool, fuse_conv_norm_act(block.shortcut.conv))
        elif type(block.shortcut) is nn.Identity:
            self.downsample = None
        else:
            raise ValueError(f"{type(block.shortcut).__name__}: unsupported bottleneck shortcut")
        self.consume_input = consume_input

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.downsample is not None:
            residual = self.downsample(hidden)
        elif self.consume_input:
            residual = hidden
        else:  # the input is someone else's: the sum goes into the new output of the last convolution
            return self.conv3(self.conv2(self.conv1(hidden))).add_(hidden).relu_()
        return self.conv3.add_relu_(residual, self.conv2(self.conv1(hidden)))


def nearest_upsampling_grid(target: torch.Tensor, source: torch.Tensor) -> torch.Tensor | None:
    """`target` (batch, channels, H, W) viewed as (batch, channels, h, H // h, w, W // w) when `source` is
    (..., h, w) and both factors are powers of two, else None.

    For such factors `F.interpolate(source, size=(H, W), mode="nearest")` repeats every source pixel over one
    (H // h) x (W // w) cell of the view (its index arithmetic is exact in floats), so writing
    `source[:, :, :, None, :, None]` into the view equals writing the upsampled map, without making it."""
    (height, width), (source_height, source_width) = target.shape[-2:], source.shape[-2:]
    factors = (height // source_height, width // source_width)
    if (height, width) != (source_height * factors[0], source_width * factors[1]) or any(
        factor & (factor - 1) for factor in factors
    ):
        return None
    return target.unflatten(3, (source_width, factors[1])).unflatten(2, (source_height, factors[0]))


class FusedFpnc(EvalOnlyModule):
    """`TcmFpnc` (laterals, top-down nearest-upsample-and-add, smoothing, all levels upsampled to stride 4 and
    concatenated) without its upsampled maps: the same sums in the same order, written through
    `nearest_upsampling_grid` views."""

    def __init__(self, neck: TcmFpnc):
        super().__init__()
        self.lateral_convs = nn.ModuleList(FusedConv2d(conv) for conv in neck.lateral_convs)
        self.smooth_convs = nn.ModuleList(FusedConv2d(conv) for conv in neck.smooth_convs)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        # the stage joined by the one-channel matching map comes out of `torch.cat` in the default layout
        laterals = [
            conv(feature.contiguous(memory_format=torch.channels_last))
            for conv, feature in zip(self.lateral_convs, features, strict=True)
        ]
        for i in range(len(laterals) - 1, 0, -1):
            grid = nearest_upsampling_grid(laterals[i - 1], laterals[i])
            if grid is None:
                laterals[i - 1] = laterals[i - 1] + F.interpolate(
                    laterals[i], size=laterals[i - 1].shape[-2:]
                )
            else:
                grid.add_(laterals[i][:, :, :, None, :, None])
        smoothed = [conv(lateral) for conv, lateral in zip(self.smooth_convs, laterals, strict=True)]
        first = smoothed[0]
        fused = torch.empty(
            (first.shape[0], sum(level.shape[1] for level in smoothed), *first.shape[-2:]),
            dtype=first.dtype,
            device=first.device,
            memory_format=torch.channels_last,
        )
        start = 0
        for level in smoothed:
            part = fused[:, start : start + level.shape[1]]
            start += level.shape[1]
            grid = nearest_upsampling_grid(part, level)
            if grid is None:
                part.copy_(F.interpolate(level, size=part.shape[-2:]))
            else:
                grid.copy_(level[:, :, :, None, :, None])
        return fused


class FusedDbBranch(EvalOnlyModule):
    """`TcmDbBranch` (3x3 conv, BN, ReLU, 2x2 stride-2 transposed conv, BN, ReLU, 2x2 stride-2 transposed conv,
    sigmoid) with both batch norms folded and the two transposed convolutions as per-pixel matrix products.

    With kernel = stride = 2 every input pixel alone makes a 2x2 cell of the middle map and every middle pixel a
    2x2 cell of the output, so one pixel's channels map to its 4x4 output cell by `pixel @ first`, a ReLU and
    `middle @ block_diag(last)`. Done for `rows_per_chunk` rows of pixels at a time, the middle map is never
    made whole, and the one-channel output needs no transposed-convolution kernel."""

    rows_per_chunk: int = 8

    def __init__(self, branch: TcmDbBranch):
        super().__init__()
        conv, conv_norm, _, upsample, upsample_norm, _, last_upsample, _ = branch
        self.conv = FusedConv2d(conv, conv_norm, relu=True)
        # a transposed convolution's weight is (in, out, kh, kw): the batch norm scales its output channels
        scale, shift = batch_norm_scale_shift(upsample_norm)
        weight = upsample.weight.detach().float() * scale[None, :, None, None]
        bias = shift if upsample.bias is None else upsample.bias.detach().float() * scale + shift
        last_weight = last_upsample.weight.detach().float()
        last_bias = last_upsample.bias
        last_bias = torch.zeros(last_weight.shape[1]) if last_bias is None else last_bias.detach().float()
        channels, middle_channels = weight.shape[:2]
        out_channels = last_weight.shape[1]
        # (in, out, ky, kx) -> (in, [ky, kx, out]): one pixel's 2x2 cell of output channels per row of the product
        first = weight.permute(0, 2, 3, 1).reshape(channels, 4 * middle_channels)
        last = last_weight.permute(0, 2, 3, 1).reshape(middle_channels, 4 * out_channels)
        dtype = upsample.weight.dtype
        self.register_buffer("first", first.to(dtype))
        self.register_buffer("first_bias", bias.repeat(4).to(dtype))
        self.register_buffer("last", torch.block_diag(*[last] * 4).to(dtype))
        self.register_buffer("last_bias", last_bias.repeat(16).to(dtype))
        self.out_channels = out_channels

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden = self.conv(features)
        batch, channels, height, width = hidden.shape
        pixels = hidden.permute(
            0, 2, 3, 1
        )  # a view when `hidden` is channels-last, as the fused neck makes it
        # `addmm(out=...)` is not autocast: the products run in the dtype of the map (bf16 under autocast)
        first, first_bias, last, last_bias = (
            t.to(hidden.dtype) for t in (self.first, self.first_bias, self.last, self.last_bias)
        )
        # output cell of input pixel (y, x): (y, x, ky, kx, ky2, kx2, channel) -> row 4y + 2ky + ky2,
        # column 4x + 2kx + kx2
        cells = hidden.new_empty((batch, height, width, 2, 2, 2, 2, self.out_channels))
        for image in range(batch):
            for row in range(0, height, self.rows_per_chunk):
                chunk = pixels[image, row : row + self.rows_per_chunk].reshape(-1, channels)
                middle = torch.addmm(first_bias, chunk, first).relu_()
                out = cells[image, row : row + self.rows_per_chunk].view(len(chunk), -1)
                torch.addmm(last_bias, middle, last, out=out)
        upsampled = cells.permute(0, 7, 1, 3, 5, 2, 4, 6).reshape(
            batch, self.out_channels, 4 * height, 4 * width
        )
        return upsampled.sigmoid_()
