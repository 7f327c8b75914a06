"""Polar transformer networks (Esteves et al., ICLR 2018): ``ptn-cnn``.

Three stages, as the paper and its authors' code build them:

1. the **origin predictor**, a small fully convolutional net (:func:`stn.polar.origin_net`:
   three 3x3 convolutions of 20 channels with batch norm, the first of stride 2, then a 1x1
   convolution to a heatmap) whose heatmap's centroid is the origin;
2. the **polar transformer** (:class:`stn.polar.PolarTransformer`): the image resampled
   log-polar about that origin with the ``polar`` family, rows = angles over a full turn,
   columns = log radii;
3. the **classifier** (:class:`PolarClassifier`): 3x3 convolutions with batch norm that wrap
   around on the angle axis (circular padding on the rows, zeros on the radius axis), strided on
   the radius axis only, then the mean over the angle axis. A rotation of the input about the
   origin rolls the rows of the polar image, and wrapped convolutions followed by that mean do
   not see a roll: the features are invariant to it (exactly, for rolls by whole rows).

``stn=False`` keeps the classifier and resamples about the image centre (no origin predictor):
the same network with a fixed origin.

Our choices where the authors' code differs or says nothing: the origin is the *softmax*-weighted
centroid (theirs divides by the heatmap's sum); no stride on the angle axis (theirs strides both
axes by 2 twice, so it is invariant only to rolls by multiples of 4 rows), and half their widths
(8 to 32 channels instead of 16 to 64), which keeps the cost of the full-resolution angle axis
near theirs: on one CPU thread the half widths learned more per minute (``results/ptn/probes.md``);
radii from ``max_radius / 10`` to ``max_radius`` (1.4 to 14 pixels of a 28-pixel image; theirs
start at the origin); after the mean over angles the features of each radius go to one linear
layer (``pool="angle"``, default) or are averaged over radii too (``pool="all"``, the authors'
global average pooling, invariant to scale as well).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stn.functional import Fill, check_sampling, warp
from stn.models.registry import register
from stn.polar import PolarTransformer, origin_net
from stn.transforms import Transform, get

__all__ = ["FixedPolar", "PolarClassifier", "PolarNet", "WrapConv2d", "ptn_cnn"]

CHANNELS = (8, 8, 16, 16, 16, 32, 32, 32)  # half the widths of the authors' "big28" classifier
RADIUS_STRIDES = (1, 1, 2, 1, 1, 2, 1, 1)  # their strides, applied to the radius axis only
ORIGIN_CHANNELS = (20, 20, 20)
ORIGIN_STRIDES = (2, 1, 1)
POOLS = ("angle", "all")


class WrapConv2d(nn.Conv2d):
    """A ``k x k`` convolution that wraps around on the rows (circular padding of ``k // 2`` on the
    angle axis) and pads the columns with zeros; strided on the columns only.

    Input ``(N, C_in, A, R)``; output ``(N, C_out, A, ceil(R / stride))``. Rolling the input's
    rows by ``s`` rolls the output's rows by ``s``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> None:
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        pad = kernel_size // 2
        super().__init__(in_channels, out_channels, kernel_size, (1, stride), padding=(0, pad), bias=False)
        self.wrap = pad

    def forward(self, x: Tensor) -> Tensor:
        if self.wrap:
            x = F.pad(x, (0, 0, self.wrap, self.wrap), mode="circular")
        return super().forward(x)


class PolarClassifier(nn.Module):
    """The classifier of a polar image ``(N, C, A, R)`` (``A`` angles, ``R`` radii): ``[WrapConv2d
    -> BatchNorm -> ReLU]`` per width of ``channels`` (radius stride ``strides``), the mean over
    the angles, then one linear layer; returns logits ``(N, num_classes)``.

    Args:
        pool: ``"angle"`` (the linear layer sees every radius) or ``"all"`` (the mean over the
            radii too).
    """

    def __init__(
        self,
        in_channels: int,
        radii: int,
        num_classes: int,
        channels: Sequence[int] = CHANNELS,
        strides: Sequence[int] = RADIUS_STRIDES,
        pool: str = "angle",
    ) -> None:
        super().__init__()
        if len(channels) != len(strides) or not channels:
            raise ValueError(f"channels and strides must be equally long and not empty, got {channels}, {strides}")
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
        layers: list[nn.Module] = []
        c = in_channels
        for width, stride in zip(channels, strides, strict=True):
            layers += [WrapConv2d(c, width, 3, stride), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            c, radii = width, math.ceil(radii / stride)
        self.features = nn.Sequential(*layers)
        self.pool = pool
        self.fc = nn.Linear(c * (radii if pool == "angle" else 1), num_classes)

    def pooled(self, x: Tensor) -> Tensor:
        """Features ``(N, C')`` of a polar image ``(N, C, A, R)``: invariant to rolling its rows."""
        x = self.features(x).mean(-2)
        return (x.mean(-1) if self.pool == "all" else x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pooled(x))


class PolarNet(nn.Module):
    """Origin predictor -> polar transformer -> wrap-around classifier; log-probabilities out.

    Args:
        input_shape: ``(C, H, W)`` of the (normalised) images.
        num_classes: outputs.
        stn: ``False``: resample about the image centre (no origin predictor).
        transform: must be ``"polar"`` (the engine passes the run's ``--transform``).
        polar_size: ``(angles, radii)`` of the polar image.
        max_radius: the ``polar`` family's largest radius (normalised units).
        min_radius: its smallest radius (normalised units); ``None``: ``max_radius / 10``, about
            1.4 pixels of a 28-pixel image.
        origin_jitter: origin augmentation while training (normalised units; see
            :class:`~stn.polar.PolarTransformer`).
        channels: the classifier's widths (see :class:`PolarClassifier`).
        strides: the classifier's strides on the radius axis (see :class:`PolarClassifier`).
        pool: the classifier's pooling, ``"angle"`` or ``"all"`` (see :class:`PolarClassifier`).
        transform_options: ``max_radius`` and ``min_radius`` may come here too (as the engine's
            ``transform_options`` of other models).
        **st_options: other arguments of :class:`~stn.polar.PolarTransformer` (``fill``,
            ``padding_mode``, ...).

    Shapes: ``(N, C, H, W)`` in, ``(N, num_classes)`` log-probabilities out.

    Example:
        >>> import torch
        >>> from stn import models
        >>> net = models.create("ptn-cnn", input_shape=(1, 28, 28), num_classes=10, transform="polar")
        >>> net(torch.randn(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        stn: bool = True,
        transform: str = "polar",
        polar_size: Sequence[int] = (28, 28),
        max_radius: float = 1.0,
        min_radius: float | None = None,
        origin_jitter: float = 0.0,
        channels: Sequence[int] = CHANNELS,
        strides: Sequence[int] = RADIUS_STRIDES,
        pool: str = "angle",
        transform_options: dict[str, object] | None = None,
        **st_options: object,
    ) -> None:
        super().__init__()
        if transform != "polar":
            raise ValueError(
                f"a polar transformer network resamples log-polar: transform must be 'polar', got {transform!r} "
                "(stn train: --transform polar, or --recipe ptn)"
            )
        if len(input_shape) != 3 or min(int(v) for v in input_shape) < 1:
            raise ValueError(f"input_shape must be (C, H, W) with positive sizes, got {tuple(input_shape)}")
        options = {"max_radius": max_radius, "min_radius": min_radius, **(transform_options or {})}
        if options["min_radius"] is None:
            options["min_radius"] = options["max_radius"] / 10
        c = int(input_shape[0])
        polar_size = tuple(int(v) for v in polar_size)
        if stn:
            self.stn = PolarTransformer(
                origin_net(c, ORIGIN_CHANNELS, ORIGIN_STRIDES),
                polar_size,
                origin_jitter=origin_jitter,
                **options,  # type: ignore[arg-type]
                **st_options,  # type: ignore[arg-type]
            )
        else:
            self.stn = None
            self.fixed = FixedPolar(polar_size, get("polar", **options), **st_options)
        self.classifier = PolarClassifier(c, polar_size[1], num_classes, channels, strides, pool)

    def forward(self, x: Tensor) -> Tensor:
        polar = self.stn(x) if self.stn is not None else self.fixed(x)
        return F.log_softmax(self.classifier(polar), dim=1)


class FixedPolar(nn.Module):
    """Log-polar resampling about the image centre: what an untrained
    :class:`~stn.polar.PolarTransformer` samples, without its origin predictor.

    Args: ``output_size`` ``(angles, radii)``, the ``polar`` family, then ``mode``,
    ``padding_mode``, ``fill``, ``align_corners`` as for :func:`stn.warp`.
    """

    def __init__(
        self,
        output_size: Sequence[int],
        transform: Transform,
        mode: str = "bilinear",
        padding_mode: str = "zeros",
        fill: Fill = None,
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        check_sampling(mode, padding_mode, fill)
        self.output_size, self.transform = tuple(output_size), transform
        self.mode, self.padding_mode, self.align_corners = mode, padding_mode, align_corners
        self.register_buffer("fill", None if fill is None else torch.as_tensor(fill, dtype=torch.float32), False)

    def forward(self, x: Tensor) -> Tensor:
        origin = x.new_zeros(x.shape[0], 2)
        return warp(
            x, self.transform, origin, self.output_size, self.mode, self.padding_mode, self.fill, self.align_corners
        )


@register("ptn-cnn", "mnist-rot", "polar transformer network: heatmap-centroid origin, log-polar, wrap-around CNN")
def ptn_cnn(input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10, **options: object) -> PolarNet:
    """The polar transformer network (``stn=False``: log-polar about the image centre)."""
    return PolarNet(input_shape, num_classes, **options)
