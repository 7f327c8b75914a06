"""The paper's distorted-MNIST classifiers (section 4.1, appendix A): ``paper-fcn`` and ``paper-cnn``.

``stn=False`` gives the baselines FCN and CNN; ``stn=True`` puts a spatial transformer of the
family ``transform`` (``affine``, ``projective``, ``tps``, ...) at the input: ST-FCN and ST-CNN.
Every network returns log-probabilities ``(N, num_classes)``.

What the paper states: ReLU networks with a softmax classifier; the CNN has a 9x9 and a 7x7
convolution of 32 filters, each followed by 2x2 max pooling; the TPS transformer has 16 control
points on a 4x4 grid; the transformer sits at the input and starts at the identity; "all
networks have approximately the same number of parameters" (section 4.1).
Our guesses, where its text gives no number:

* FCN classifier: two hidden layers of 128 units (``Linear -> ReLU`` twice, then ``Linear``).
* CNN classifier: valid (unpadded) convolutions; pooling in ``ceil_mode`` so small inputs still fit;
  then one linear layer to the classes. Its filters are the option ``channels``, (32, 32) by
  default: then CNN has 54k parameters on 28x28 inputs, half the FCN's 118k. ``channels=(32, 64)``
  gives it 106k (ST-CNN 118k, ST-FCN 145k), closer to the paper's equal counts; ``stn bench paper
  --budget match`` trains it so.
* ST-FCN localisation network: two hidden layers of 32 units, then the parameter layer.
* ST-CNN localisation network: 2x2 max pool, two 5x5 convolutions of 20 filters (with a 2x2 max
  pool and ReLUs between them), a hidden layer of 50 units, then the parameter layer.
* Resolution: the classifier works at about MNIST's size. Inputs up to 32 pixels a side are used
  as they are; larger canvases (RTS 42x42, TC 60x60) are resampled to half their side, but not
  below 28 (RTS: 28x28, TC: 30x30). With a transformer it samples at that size (so it can zoom
  in at full detail); without one the same bilinear resampling is a fixed layer, so an
  untrained ST network and its baseline see exactly the same image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stn.layers import SpatialTransformer
from stn.models.registry import register
from stn.models.transformer import spatial_transformer
from stn.transforms import Transform

__all__ = ["InputGradConv2d", "PaperNet", "classifier_size", "paper_cnn", "paper_fcn"]

FCN_HIDDEN = (128, 128)
CNN_CHANNELS = (32, 32)
CNN_KERNELS = (9, 7)
LOC_FCN_HIDDEN = (32, 32)
LOC_CNN_CHANNELS = 20
LOC_CNN_HIDDEN = 50


def classifier_size(height: int, width: int) -> tuple[int, int]:
    """The ``(H, W)`` the classifier sees for an input of ``height x width`` (see the module notes)."""

    def side(n: int) -> int:
        return n if n <= 32 else max(28, n // 2)

    return side(height), side(width)


class Resample(nn.Module):
    """Bilinear resampling to ``size`` (``align_corners=False``, no antialiasing): exactly what a
    spatial transformer at the identity samples."""

    def __init__(self, size: Sequence[int]) -> None:
        super().__init__()
        self.size = tuple(size)

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) == self.size:
            return x
        return F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)

    def extra_repr(self) -> str:
        return f"size={self.size}"


def fcn(in_features: int, hidden: Sequence[int], out_features: int | None = None) -> nn.Sequential:
    """``Flatten -> [Linear -> ReLU] per hidden width -> Linear(out_features)`` (the last layer is
    left out when ``out_features`` is ``None``)."""
    layers: list[nn.Module] = [nn.Flatten()]
    for width in hidden:
        layers += [nn.Linear(in_features, width), nn.ReLU(inplace=True)]
        in_features = width
    if out_features is not None:
        layers.append(nn.Linear(in_features, out_features))
    return nn.Sequential(*layers)


class _InputGradConv(torch.autograd.Function):
    """``F.conv2d(x, weight, bias)`` (stride 1, no padding) whose input gradient comes from
    ATen's reference CPU kernel (im2col and a matrix product) rather than from oneDNN; the
    weight and bias gradients are the convolution's own."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return F.conv2d(x, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten._slow_conv2d_backward.output_mask(
                grad.contiguous(), x.contiguous(), weight, weight.shape[-2:], (1, 1), (0, 0), (True, False, False)
            )[0]
        mask = (False, ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2])
        if mask[1] or mask[2]:
            bias_sizes = [weight.shape[0]] if ctx.has_bias else None
            _, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
                grad, x, weight, bias_sizes, (1, 1), (0, 0), (1, 1), False, (0, 0), 1, mask
            )
        return grad_x, grad_weight, grad_bias


class InputGradConv2d(nn.Conv2d):
    """A stride-1, unpadded :class:`~torch.nn.Conv2d` whose input gradient on the CPU comes from
    ATen's reference kernel: the same gradient as ``nn.Conv2d``'s (to float rounding), several
    times faster than oneDNN's for an input of one channel, the case of a classifier behind a
    spatial transformer on grey images (see results/paper/probes.md). Elsewhere (no input
    gradient, autocast, another device) it is ``nn.Conv2d``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        cpu = x.device.type == "cpu"
        if cpu and x.requires_grad and torch.is_grad_enabled() and not torch.is_autocast_enabled("cpu"):
            return _InputGradConv.apply(x, self.weight, self.bias)
        return super().forward(x)


def cnn(input_shape: Sequence[int], num_classes: int, channels: Sequence[int] = CNN_CHANNELS) -> nn.Sequential:
    """The paper's CNN classifier: ``[Conv(k) -> ReLU -> MaxPool(2)]`` for k = 9, 7 with
    ``channels`` filters, then ``Linear``. The first convolution of a one-channel input is an
    :class:`InputGradConv2d`."""
    if len(channels) != len(CNN_KERNELS) or not all(isinstance(n, int) and n > 0 for n in channels):
        raise ValueError(f"channels must be {len(CNN_KERNELS)} positive integers, got {channels!r}")
    c, h, w = input_shape
    layers: list[nn.Module] = []
    for i, (filters, k) in enumerate(zip(channels, CNN_KERNELS, strict=True)):
        if min(h, w) < k:
            raise ValueError(f"input {tuple(input_shape)} is too small for the paper's CNN")
        conv = InputGradConv2d(c, filters, k) if i == 0 and c == 1 else nn.Conv2d(c, filters, k)
        layers += [conv, nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True)]
        c, h, w = filters, -(-(h - k + 1) // 2), -(-(w - k + 1) // 2)
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * h * w, num_classes))


def cnn_localization(input_shape: Sequence[int]) -> tuple[nn.Sequential, int]:
    """ST-CNN's localisation net: ``MaxPool(2) -> Conv5 -> ReLU -> MaxPool(2) -> Conv5 -> ReLU``,
    20 filters each; returns it and its flattened output size."""
    c, h, w = input_shape
    h, w = h // 2, w // 2
    if min(h, w) < 5 or min(h - 4, w - 4) // 2 < 5:
        raise ValueError(f"input {tuple(input_shape)} is too small for the paper's localisation network")
    net = nn.Sequential(
        nn.MaxPool2d(2),
        nn.Conv2d(c, LOC_CNN_CHANNELS, 5),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(LOC_CNN_CHANNELS, LOC_CNN_CHANNELS, 5),
        nn.ReLU(inplace=True),
    )
    h, w = (h - 4) // 2 - 4, (w - 4) // 2 - 4
    return net, LOC_CNN_CHANNELS * h * w


class PaperNet(nn.Module):
    """An optional spatial transformer, then the paper's FCN or CNN classifier.

    Args:
        input_shape: ``(C, H, W)`` of the (normalised) images.
        num_classes: outputs.
        kind: ``"fcn"`` or ``"cnn"``: the classifier (and by default the localisation network).
        stn: ``False`` gives the baseline (a fixed :class:`Resample` where the transformer would be).
        transform: the transformer's family (see :mod:`stn.transforms`).
        **st_options: the other arguments of :class:`~stn.layers.SpatialTransformer` (``fill``, ``padding_mode``, ...).
        size: ``(H, W)`` the classifier sees; default :func:`classifier_size`.
        localization: ``"fcn"`` or ``"cnn"``: the localisation network, when it is not ``kind``'s.
        transform_options: options of the family (``stn.transforms.get(transform, **options)``).
        recurrent_steps: above 0, an inverse-compositional
            :class:`~stn.layers.RecurrentSpatialTransformer` with that many steps (IC-STN).
        parallel: ``k`` above 1, :class:`~stn.layers.ParallelSpatialTransformers`: ``k``
            transformers on the one localisation net (the paper's 2xST, 4xST), their outputs
            concatenated on channels, so the classifier reads ``k*C`` channels. Neither option
            applies without a transformer (``stn=False``).
        channels: the CNN classifier's filters in its two convolutions (default
            :data:`CNN_CHANNELS`); ``kind="cnn"`` only.

    Shapes: ``(N, C, H, W)`` in, log-probabilities ``(N, num_classes)`` out.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        kind: str,
        stn: bool = True,
        transform: str | Transform = "affine",
        size: Sequence[int] | None = None,
        localization: str | None = None,
        transform_options: dict[str, object] | None = None,
        recurrent_steps: int = 0,
        parallel: int = 1,
        channels: Sequence[int] | None = None,
        **st_options: object,
    ) -> None:
        super().__init__()
        localization = localization or kind
        for what, value in (("kind", kind), ("localization", localization)):
            if value not in ("fcn", "cnn"):
                raise ValueError(f"{what} must be 'fcn' or 'cnn', got {value!r}")
        if channels is not None and kind != "cnn":
            raise ValueError("channels are the CNN classifier's; the FCN has none")
        if len(input_shape) != 3 or min(int(v) for v in input_shape) < 1:
            raise ValueError(f"input_shape must be (C, H, W) with positive sizes, got {tuple(input_shape)}")
        c, h, w = (int(v) for v in input_shape)
        size = tuple(size) if size is not None else classifier_size(h, w)
        self.stn: SpatialTransformer | None = None
        self.resample: Resample | None = None
        if stn:
            if localization == "fcn":
                net, features = fcn(c * h * w, LOC_FCN_HIDDEN), LOC_FCN_HIDDEN[-1]
                hidden: tuple[int, ...] = ()
            else:
                (net, features), hidden = cnn_localization((c, h, w)), (LOC_CNN_HIDDEN,)
            self.stn = spatial_transformer(
                net,
                transform,
                size,
                transform_options=transform_options,
                parallel=parallel,
                recurrent_steps=recurrent_steps,
                in_features=features,
                hidden=hidden,
                **st_options,
            )
            c *= getattr(self.stn, "k", 1)
        else:
            self.resample = Resample(size)
        in_shape = (c, *size)
        self.classifier = (
            fcn(c * size[0] * size[1], FCN_HIDDEN, num_classes)
            if kind == "fcn"
            else cnn(in_shape, num_classes, tuple(channels) if channels is not None else CNN_CHANNELS)
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.stn(x) if self.stn is not None else self.resample(x)
        return F.log_softmax(self.classifier(x), dim=1)


@register("paper-fcn", "mnist-rts", "the paper's distorted-MNIST FCN (2x128 hidden); ST-FCN with its transformer")
def paper_fcn(input_shape: Sequence[int] = (1, 42, 42), num_classes: int = 10, **options: object) -> PaperNet:
    """FCN (``stn=False``) or ST-FCN with an FCN localisation net (2x32 hidden units)."""
    return PaperNet(input_shape, num_classes, "fcn", **options)


@register(
    "paper-cnn", "mnist-rts", "the paper's distorted-MNIST CNN (conv 9x9/32, 7x7/32); ST-CNN with its transformer"
)
def paper_cnn(input_shape: Sequence[int] = (1, 42, 42), num_classes: int = 10, **options: object) -> PaperNet:
    """CNN (``stn=False``) or ST-CNN with a convolutional localisation net."""
    return PaperNet(input_shape, num_classes, "cnn", **options)
