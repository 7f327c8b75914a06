"""The registration network: a U-Net reads the moving and the fixed image and predicts a transform
of an stn family; the family makes the sampling grid, which warps the moving image (and its labels).

Dense fields use the family ``field3d`` (``field`` for images) with one node per voxel and
``align_corners=True`` (nodes at the voxel centres, VoxelMorph's and MONAI's convention); with
``diffeomorphic=True`` the prediction is a stationary velocity, integrated by scaling and squaring.
A matrix family (``affine3d``, ``rigid3d``, ..., or ``affine`` for images) is predicted by the
U-Net's encoder, pooled, through a linear layer that starts at the identity.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stn import transforms as T

__all__ = ["RegistrationNet", "UNet"]

ALIGN_CORNERS = True  # the field's nodes sit on the voxel centres


def _conv(ndim: int, c_in: int, c_out: int) -> nn.Sequential:
    conv = nn.Conv2d if ndim == 2 else nn.Conv3d
    return nn.Sequential(conv(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.2))


class UNet(nn.Module):
    """VoxelMorph's U-Net for 2-D or 3-D: a 3x3(x3) convolution and LeakyReLU per level, max
    pooling down, nearest upsampling and skip connections up, two more convolutions at full size.

    Args:
        ndim: 2 (images) or 3 (volumes).
        in_channels: channels in (2: moving and fixed).
        features: widths of the encoder levels (the decoder mirrors them).
        final: widths of the convolutions at full size after the decoder.

    Input ``(N, in_channels, *S)`` (any size; odd sizes are upsampled to the skip's size);
    :meth:`forward` returns the ``(N, final[-1], *S)`` features, :meth:`encode` the deepest level.

    Examples:
        >>> unet = UNet(3, features=(4, 8), final=(4,))
        >>> x = torch.rand(1, 2, 8, 8, 8)  # a moving and a fixed volume, stacked
        >>> unet(x).shape, unet.encode(x)[0].shape
        (torch.Size([1, 4, 8, 8, 8]), torch.Size([1, 8, 4, 4, 4]))
    """

    def __init__(
        self,
        ndim: int,
        in_channels: int = 2,
        features: Sequence[int] = (16, 32, 32, 32),
        final: Sequence[int] = (16, 16),
    ) -> None:
        super().__init__()
        if ndim not in (2, 3):
            raise ValueError(f"ndim must be 2 or 3, got {ndim!r}")
        self.ndim = ndim
        self.down = nn.ModuleList()
        c = in_channels
        for width in features:
            self.down.append(_conv(ndim, c, width))
            c = width
        self.up = nn.ModuleList()
        for skip in reversed(features[:-1]):
            self.up.append(_conv(ndim, c + skip, skip))
            c = skip
        self.final = nn.Sequential(*(_conv(ndim, a, b) for a, b in zip([c, *final[:-1]], final, strict=True)))
        self.out_channels = final[-1] if final else c

    def encode(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The deepest level's features and the skips (full size first)."""
        pool = F.max_pool2d if self.ndim == 2 else F.max_pool3d
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else pool(x, 2))
            skips.append(x)
        return x, skips[:-1]

    def forward(self, x: Tensor) -> Tensor:
        x, skips = self.encode(x)
        for block, skip in zip(self.up, reversed(skips), strict=True):
            x = block(torch.cat((F.interpolate(x, size=skip.shape[2:], mode="nearest"), skip), dim=1))
        return self.final(x)


class RegistrationNet(nn.Module):
    """Aligns a moving image or volume to a fixed one.

    Args:
        size: ``(H, W)`` or ``(D, H, W)`` of the images.
        transform: ``"field"`` (a dense field: ``field3d`` for volumes) or a matrix family of the
            images' dimension (``affine3d``, ``rigid3d``, ``similarity3d``, ``affine``, ...).
        diffeomorphic: for fields, integrate the prediction as a stationary velocity.
        steps: the number of squarings of that integration.
        features: widths of the :class:`UNet`'s encoder.
        final: widths of the :class:`UNet`'s last convolutions.

    :meth:`forward` takes ``moving`` and ``fixed`` ``(N, 1, *S)`` and returns the warped moving image
    and the sampling grid ``(N, *S, ndim)`` (normalised, ``align_corners=True``); :meth:`sample` warps
    anything else (label maps) by that grid.

    Example:
        >>> net = RegistrationNet((16, 16, 16), features=(4, 8))
        >>> warped, grid = net(torch.rand(2, 1, 16, 16, 16), torch.rand(2, 1, 16, 16, 16))
        >>> warped.shape, grid.shape
        (torch.Size([2, 1, 16, 16, 16]), torch.Size([2, 16, 16, 16, 3]))
    """

    def __init__(
        self,
        size: Sequence[int],
        transform: str = "field",
        diffeomorphic: bool = True,
        steps: int = 7,
        features: Sequence[int] = (16, 32, 32, 32),
        final: Sequence[int] = (16, 16),
    ) -> None:
        super().__init__()
        self.size = tuple(int(n) for n in size)
        ndim = len(self.size)
        if ndim not in (2, 3):
            raise ValueError(f"size must be (H, W) or (D, H, W), got {tuple(size)}")
        self.ndim = ndim
        self.unet = UNet(ndim, 2, features, final)
        if transform in ("field", "field3d"):
            if ndim == 3:
                self.family = T.get("field3d", grid_size=self.size, diffeomorphic=diffeomorphic, steps=steps)
            else:
                self.family = T.get("field", grid_size=self.size, diffeomorphic=diffeomorphic, steps=steps,
                                    integration_size=max(self.size))  # fmt: skip
            conv = nn.Conv2d if ndim == 2 else nn.Conv3d
            self.head: nn.Module = conv(self.unet.out_channels, ndim, 3, padding=1)
            nn.init.normal_(self.head.weight, std=1e-5)  # starts near the identity, as VoxelMorph's flow layer
            nn.init.zeros_(self.head.bias)
        else:
            self.family = T.get(transform)
            if not isinstance(self.family, T.MatrixTransform) or self.family.ndim != ndim:
                raise ValueError(
                    f"registration of {ndim}-D images takes 'field' or a {ndim}-D matrix family, not {transform!r}"
                )
            linear = nn.Linear(features[-1], self.family.num_params)
            nn.init.zeros_(linear.weight)
            with torch.no_grad():
                linear.bias.copy_(self.family.identity(1)[0])
            self.head = linear

    @property
    def dense(self) -> bool:
        return not isinstance(self.family, T.MatrixTransform)

    def predict(self, moving: Tensor, fixed: Tensor) -> Tensor:
        """The family's parameters ``(N, P)`` for a pair."""
        if moving.shape != fixed.shape or tuple(moving.shape[2:]) != self.size or moving.shape[1] != 1:
            raise ValueError(
                f"moving and fixed must both be (N, 1, {', '.join(map(str, self.size))}), "
                f"got {tuple(moving.shape)} and {tuple(fixed.shape)}"
            )
        x = torch.cat((moving, fixed), dim=1)
        if not self.dense:
            deepest, _ = self.unet.encode(x)
            return self.head(deepest.flatten(2).mean(-1))
        nodes = self.head(self.unet(x))  # (N, ndim, *S): the vectors (dx, dy[, dz]) at the voxels
        return nodes.movedim(1, -1).reshape(nodes.shape[0], -1)

    def forward(self, moving: Tensor, fixed: Tensor) -> tuple[Tensor, Tensor]:
        grid = self.family.grid(self.predict(moving, fixed), self.size, align_corners=ALIGN_CORNERS)
        return self.sample(moving, grid), grid

    @staticmethod
    def sample(x: Tensor, grid: Tensor, mode: str = "bilinear") -> Tensor:
        """``x`` ``(N, C, *S)`` read at ``grid`` (zeros outside), ``mode`` ``bilinear`` or ``nearest``."""
        return F.grid_sample(x, grid.to(x.dtype), mode=mode, padding_mode="zeros", align_corners=ALIGN_CORNERS)

    def displacement(self, grid: Tensor) -> Tensor:
        """The displacement field of a grid from :meth:`forward`, ``grid - base_grid`` (normalised)."""
        return grid - T.base_grid(self.size, ALIGN_CORNERS, grid.device, grid.dtype)
