"""The polar transformer of Esteves et al. (ICLR 2018, "Polar Transformer Networks"): a fully
convolutional net predicts a heatmap, the heatmap's centroid is the origin, and the image is
resampled log-polar about that origin (the ``polar`` family of :mod:`stn.transforms`).

In the log-polar image, output rows are angles over a full turn and columns log-spaced radii, so
a rotation of the input about the origin rolls the rows and a scaling about it shifts the
columns; a classifier that wraps around on the rows and pools over them (:mod:`stn.models.ptn`)
does not see the rotation. The origin, a centroid, moves with the digit (translation equivariant).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from stn import transforms as T
from stn.functional import Fill
from stn.layers import SpatialTransformer

__all__ = ["HeatmapCentroid", "PolarTransformer", "heatmap_centroid", "origin_net"]


def heatmap_centroid(heatmap: Tensor, align_corners: bool = False) -> Tensor:
    """The softmax-weighted mean of the pixel coordinates of a heatmap: ``(N, 2)`` points ``(x, y)``.

    Args:
        heatmap: scores ``(N, 1, h, w)`` (or ``(N, h, w)``); ``softmax`` over the ``h * w``
            pixels gives each pixel's weight. A constant heatmap gives the centre ``(0, 0)``.
        align_corners: where the pixel centres lie in normalised coordinates, as for
            ``grid_sample`` (``False``: ``-1`` and ``1`` are the outer edges).

    Returns:
        ``(N, 2)`` in normalised coordinates ``[-1, 1]`` of the image the heatmap covers, in
        at least float32 (float64 stays float64), differentiable in ``heatmap``.

    Example:
        >>> import torch
        >>> heatmap = torch.full((1, 1, 5, 5), -30.0)
        >>> heatmap[0, 0, 1, 3] = 30.0  # a peak at row 1, column 3
        >>> heatmap_centroid(heatmap)  # pixel centres at (2j + 1) / 5 - 1
        tensor([[ 0.4000, -0.4000]])
    """
    if not isinstance(heatmap, Tensor) or heatmap.dim() not in (3, 4) or (heatmap.dim() == 4 and heatmap.shape[1] != 1):
        shape = tuple(heatmap.shape) if isinstance(heatmap, Tensor) else type(heatmap).__name__
        raise ValueError(f"heatmap_centroid expects a heatmap (N, 1, h, w) or (N, h, w), got {shape}")
    dtype = torch.promote_types(heatmap.dtype, torch.float32)
    n, h, w = heatmap.shape[0], heatmap.shape[-2], heatmap.shape[-1]
    weights = torch.softmax(heatmap.reshape(n, h * w).to(dtype), dim=1)
    points = T.base_grid((h, w), align_corners, heatmap.device, dtype).reshape(h * w, 2)
    return weights @ points


class HeatmapCentroid(nn.Module):
    """:func:`heatmap_centroid` as a module: ``(N, 1, h, w)`` -> ``(N, 2)``; no parameters.

    Args:
        align_corners: the convention of the centroid's normalised coordinates.

    Examples:
        >>> heatmap = torch.full((1, 1, 4, 4), -30.0)
        >>> heatmap[0, 0, 0, 0] = 30.0  # a peak in the top-left pixel
        >>> HeatmapCentroid()(heatmap)  # that pixel's centre
        tensor([[-0.7500, -0.7500]])
    """

    def __init__(self, align_corners: bool = False) -> None:
        super().__init__()
        self.align_corners = align_corners

    def forward(self, heatmap: Tensor) -> Tensor:
        return heatmap_centroid(heatmap, self.align_corners)


def origin_net(
    in_channels: int, channels: Sequence[int] = (20, 20, 20), strides: Sequence[int] = (2, 1, 1)
) -> nn.Sequential:
    """The polar origin predictor of the PTN authors' code: ``[Conv3x3 (same padding) -> BatchNorm
    -> ReLU]`` per entry of ``channels`` (with its stride), then a 1x1 convolution to one channel,
    the heatmap. The last convolution starts at zero (weights and bias), so the heatmap starts
    constant and its centroid at the centre.

    Input ``(N, in_channels, H, W)``; output ``(N, 1, ceil(H / s), ceil(W / s))`` for the product
    ``s`` of the strides.

    Args:
        in_channels: channels of the input.
        channels: widths of the 3x3 convolutions.
        strides: stride of each (as many as ``channels``).

    Examples:
        >>> net = origin_net(1)
        >>> heatmap = net(torch.rand(2, 1, 28, 28))
        >>> heatmap.shape, bool((heatmap == 0).all())  # starts constant: the centroid at the centre
        (torch.Size([2, 1, 14, 14]), True)
    """
    if len(channels) != len(strides) or not channels:
        raise ValueError(f"channels and strides must be equally long and not empty, got {channels} and {strides}")
    layers: list[nn.Module] = []
    c = in_channels
    for width, stride in zip(channels, strides, strict=True):
        layers += [nn.Conv2d(c, width, 3, stride, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        c = width
    last = nn.Conv2d(c, 1, 1)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


class PolarTransformer(SpatialTransformer):
    """A spatial transformer whose parameters are the origin of a log-polar resampling, found as
    the centroid of a heatmap (Esteves et al., 2018).

    ``localization`` maps the input to a one-channel heatmap ``(N, 1, h, w)`` covering the input
    (e.g. :func:`origin_net`); ``fc_loc`` is a :class:`HeatmapCentroid`, so :meth:`predict`
    returns the origin ``(N, 2)`` ``(x, y)`` in the input's normalised coordinates. The output is
    :func:`stn.warp` with the ``polar`` family about that origin: rows are angles over a full
    turn (row ``i`` at angle ``2π (i + 1/2) / H_out`` from the x axis, towards y), columns
    log-spaced radii from ``min_radius`` to ``max_radius``. With a heatmap net whose last layer
    starts at zero (as :func:`origin_net`'s), the origin starts at the centre.

    Everything of :class:`~stn.layers.SpatialTransformer` holds: :attr:`last_params` is the
    ``(N, 2)`` origin, :meth:`sample` warps about a given origin, :attr:`last_grid`,
    :meth:`output_corners` and :meth:`region` say where it read (the region: the box around the
    disk of ``max_radius``); its calls reach :func:`stn.observe.tap` as every transformer's do.

    Args:
        localization: the origin predictor: ``(N, C, H, W)`` -> ``(N, 1, h, w)``.
        output_size: ``(angles, radii)``, the polar image's ``(H_out, W_out)``.
        max_radius: the ``polar`` family's largest radius, normalised units (1: half the width).
        min_radius: its smallest radius, normalised units; defaults to ``max_radius / 32``.
        origin_jitter: in training mode, the origin moves by up to this much (uniform, each
            axis, normalised units): the authors' origin augmentation. ``0`` switches it off.
        mode: sampling interpolation, as in :func:`stn.warp`.
        padding_mode: what is read outside the input, as in :func:`stn.warp`.
        fill: value read outside the input, as in :func:`stn.warp`.
        align_corners: as in :func:`stn.warp`.
        check_finite: as in :func:`stn.warp`.

    Example:
        >>> import torch
        >>> from stn.polar import PolarTransformer, origin_net
        >>> st = PolarTransformer(origin_net(1), (32, 16), max_radius=1.0)
        >>> polar = st(torch.randn(4, 1, 28, 28))
        >>> polar.shape, st.last_params.shape  # 32 angles x 16 radii; origins (x, y)
        (torch.Size([4, 1, 32, 16]), torch.Size([4, 2]))
        >>> bool(st.last_params.abs().max() < 1e-6)  # untrained: the centre
        True
    """

    def __init__(
        self,
        localization: nn.Module,
        output_size: Sequence[int],
        *,
        max_radius: float = 1.0,
        min_radius: float | None = None,
        origin_jitter: float = 0.0,
        mode: str = "bilinear",
        padding_mode: str = "zeros",
        fill: Fill = None,
        align_corners: bool = False,
        check_finite: bool = True,
    ) -> None:
        if not isinstance(origin_jitter, int | float) or isinstance(origin_jitter, bool) or not origin_jitter >= 0:
            raise ValueError(f"origin_jitter must be a number >= 0, got {origin_jitter!r}")
        transform = T.get("polar", max_radius=max_radius, min_radius=min_radius)
        super().__init__(
            localization,
            transform,
            output_size,
            mode=mode,
            padding_mode=padding_mode,
            fill=fill,
            align_corners=align_corners,
            check_finite=check_finite,
        )
        self.origin_jitter = float(origin_jitter)

    def _head(self, in_features: int | None, hidden: Sequence[int]) -> nn.Module:
        return HeatmapCentroid(self.align_corners)

    def heatmap(self, x: Tensor) -> Tensor:
        """The origin predictor's scores ``(N, 1, h, w)`` for an input ``(N, C, H, W)``."""
        if not isinstance(x, Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{type(self).__name__} expects input of shape (N, C, H, W), got {shape}")
        scores = self.localization(x)
        if scores.dim() != 4 or scores.shape[1] != 1:
            raise ValueError(f"the origin predictor must return a heatmap (N, 1, h, w), got {tuple(scores.shape)}")
        return scores

    def predict(self, x: Tensor) -> Tensor:
        """The origin ``(N, 2)`` ``(x, y)`` for an input ``(N, C, H, W)``: the heatmap's centroid
        (in training mode moved by up to ``origin_jitter``)."""
        origin = self.fc_loc(self.heatmap(x))
        if self.training and self.origin_jitter > 0:
            origin = origin + self.origin_jitter * (2 * torch.rand_like(origin) - 1)
        return origin

    def extra_repr(self) -> str:
        jitter = f", origin_jitter={self.origin_jitter}" if self.origin_jitter else ""
        return super().extra_repr() + jitter
