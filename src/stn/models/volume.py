"""Volume models: a 3-D localisation network and a small 3-D classifier, ``volume-mnist``.

The classifier reads volumes ``(N, C, D, H, W)`` (``input_shape = (C, D, H, W)``); with ``stn=True``
a spatial transformer of a volume family (``affine3d`` by default: see ``stn.transforms.names(3)``)
aligns each volume before the convolutions, the 3-D form of the paper's ST-CNN.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stn.layers import SpatialTransformer
from stn.models.registry import register
from stn.transforms import Transform, get, names

__all__ = ["VolumeNet", "conv_localization3d", "volume_mnist"]


def _check_shape(input_shape: Sequence[int]) -> tuple[int, int, int, int]:
    if len(input_shape) != 4 or any(not isinstance(v, int) or v <= 0 for v in input_shape):
        raise ValueError(f"input_shape must be (C, D, H, W) with positive sizes, got {tuple(input_shape)}")
    return tuple(input_shape)  # type: ignore[return-value]


def conv_localization3d(
    input_shape: Sequence[int],
    channels: Sequence[int] = (8, 16),
    kernel_sizes: Sequence[int] = (5, 3),
) -> tuple[nn.Sequential, int]:
    """The localisation net for volumes: ``[Conv3d(k) -> MaxPool3d(2) -> ReLU]`` per entry of
    ``channels``, the 3-D form of :func:`stn.conv_localization`.

    Args:
        input_shape: ``(C, D, H, W)`` of the volumes it will see.
        channels: output channels of each convolution.
        kernel_sizes: kernel size of each convolution (as many as ``channels``).

    Returns:
        The net and its flattened output size ``F``, to pass as ``in_features``.

    Example:
        >>> net, features = conv_localization3d((1, 24, 24, 24))
        >>> net(torch.rand(2, 1, 24, 24, 24)).flatten(1).shape[1] == features
        True
    """
    c_in, *sides = _check_shape(input_shape)
    if len(channels) != len(kernel_sizes):
        raise ValueError("channels and kernel_sizes must have the same length")
    layers: list[nn.Module] = []
    for c_out, k in zip(channels, kernel_sizes, strict=True):
        layers += [nn.Conv3d(c_in, c_out, kernel_size=k), nn.MaxPool3d(2, stride=2), nn.ReLU(True)]
        c_in, sides = c_out, [(n - k + 1) // 2 for n in sides]
        if min(sides) < 1:
            raise ValueError(f"input {tuple(input_shape)} is too small for kernels {tuple(kernel_sizes)}")
    return nn.Sequential(*layers), c_in * sides[0] * sides[1] * sides[2]


class VolumeNet(nn.Module):
    """A small 3-D classifier with an optional spatial transformer in front:
    ``STN -> [conv3d k3 -> pool -> relu] x 2 -> fc -> relu -> dropout -> fc -> log_softmax``.

    Args:
        input_shape: ``(C, D, H, W)`` of the (normalised) input volumes.
        num_classes: outputs of ``fc2``.
        conv: output channels of ``conv1`` and ``conv2`` (kernel 3).
        fc: width of ``fc1``.
        loc_channels: channels of the localisation convs (kernels 5 and 3).
        loc_hidden: width of the hidden layer of ``fc_loc``.
        stn: ``False`` gives the same network without the transformer (the CNN baseline).
        transform: a volume family (``affine3d``, ``rigid3d``, ``similarity3d``, ...); an image
            family's name stands for its volume form (``affine`` for ``affine3d``, as ``stn train``
            passes it by default).
        transform_options: options of the family.
        **st_options: other arguments of :class:`~stn.layers.SpatialTransformer`.

    Returns log-probabilities ``(N, num_classes)``.

    Example:
        >>> model = VolumeNet((1, 24, 24, 24), 10)
        >>> model(torch.rand(2, 1, 24, 24, 24)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        conv: tuple[int, int] = (16, 32),
        fc: int = 64,
        loc_channels: tuple[int, int] = (8, 16),
        loc_hidden: int = 32,
        stn: bool = True,
        transform: str | Transform = "affine3d",
        transform_options: dict[str, object] | None = None,
        **st_options: object,
    ) -> None:
        super().__init__()
        c, *sides = _check_shape(input_shape)
        self.conv1 = nn.Conv3d(c, conv[0], kernel_size=3)
        self.conv2 = nn.Conv3d(conv[0], conv[1], kernel_size=3)
        out = [((n - 2) // 2 - 2) // 2 for n in sides]
        if min(out) < 1:
            raise ValueError(f"input {tuple(input_shape)} is too small for this network")
        self.fc1 = nn.Linear(conv[1] * out[0] * out[1] * out[2], fc)
        self.fc2 = nn.Linear(fc, num_classes)
        self.stn: SpatialTransformer | None = None
        if stn:
            if isinstance(transform, str) and transform not in names(3) and f"{transform}3d" in names(3):
                transform = f"{transform}3d"
            family = get(transform, **(transform_options or {}))
            if family.ndim != 3:
                raise ValueError(f"volume-mnist needs a volume family ({', '.join(names(3))}), not {family.name!r}")
            localization, features = conv_localization3d(input_shape, loc_channels, (5, 3))
            self.stn = SpatialTransformer(
                localization, family, in_features=features, hidden=(loc_hidden,), **st_options
            )

    def forward(self, x: Tensor) -> Tensor:
        if self.stn is not None:
            x = self.stn(x)
        x = F.relu(F.max_pool3d(self.conv1(x), 2))
        x = F.relu(F.max_pool3d(self.conv2(x), 2))
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        x = F.dropout(x, training=self.training)
        return F.log_softmax(self.fc2(x), dim=1)


@register("volume-mnist", "mnist3d-rts", "a small 3-D CNN (conv 16/32, fc 64) with an affine3d STN, for volumes")
def volume_mnist(input_shape: Sequence[int] = (1, 24, 24, 24), num_classes: int = 10, **options: object) -> VolumeNet:
    """conv3d 1->16, 16->32 (k3), fc ->64->10; localisation conv3d 1->8 k5, 8->16 k3, fc_loc ->32->12."""
    return VolumeNet(input_shape, num_classes, **options)
