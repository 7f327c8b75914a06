"""The PyTorch STN tutorial's network family: ``tutorial-mnist`` and the seed ``seed-cifar``.

Both are ``STN -> conv -> pool -> relu -> conv -> dropout2d -> pool -> relu -> fc -> relu ->
dropout -> fc -> log_softmax``; they differ only in widths. With the data sets they were made
for, every layer has exactly the reference shape (``print(model)`` shows it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stn.layers import SpatialTransformer, conv_localization
from stn.models.registry import register
from stn.models.transformer import count, spatial_transformer
from stn.transforms import Transform

__all__ = ["Net", "TutorialNet", "seed_cifar", "tutorial_mnist"]


class Net(nn.Module):
    """The tutorial's network, laid out as the seed and the PyTorch tutorial write their ``Net``.

    ``print(model)`` shows the tutorial's children, in its order and under its names: ``conv1``,
    ``conv2``, ``conv2_drop``, ``fc1``, ``fc2``, ``localization``, ``fc_loc``; its state dict has
    the tutorial's keys, so weights trained with the seed's or the tutorial's own code load as
    they are (``stn.models.create("seed-cifar", weights=PATH)``) and stn's load into their ``Net``.
    The spatial transformer that joins ``localization`` and ``fc_loc`` is :attr:`stn`: a
    :class:`~stn.layers.SpatialTransformer` over those same two modules (no weight is held twice),
    named by :meth:`spatial_transformers`, so observing, statistics, export and prediction find it.

    Args:
        input_shape: ``(C, H, W)`` of the (normalised) input images.
        num_classes: outputs of ``fc2``.
        conv: output channels of ``conv1`` and ``conv2`` (kernel 5).
        fc: width of ``fc1``.
        loc_channels: channels of the localisation convs (kernels 7 and 5).
        loc_hidden: width of the hidden layer of ``fc_loc``.
        stn: ``False`` gives the same network without the transformer (no ``localization`` and
            ``fc_loc``).
        transform: the transformer's family (see :mod:`stn.transforms`).
        **st_options: the other arguments of :class:`~stn.layers.SpatialTransformer` (``padding_mode``, ``fill``, ...).
        transform_options: options of the family (``stn.transforms.get(transform, **options)``).
        recurrent_steps: above 0, an inverse-compositional
            :class:`~stn.layers.RecurrentSpatialTransformer` with that many steps (IC-STN).
        parallel: ``k`` above 1, :class:`~stn.layers.ParallelSpatialTransformers`: ``k``
            transformers on the one localisation net, their outputs concatenated on channels, so
            ``conv1`` reads ``k*C`` channels. Neither option applies with ``stn=False``.

    Shapes: ``(N, C, H, W)`` in, log-probabilities ``(N, num_classes)`` out.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        conv: tuple[int, int],
        fc: int,
        loc_channels: tuple[int, int],
        loc_hidden: int,
        stn: bool = True,
        transform: str | Transform = "affine",
        transform_options: dict[str, object] | None = None,
        recurrent_steps: int = 0,
        parallel: int = 1,
        **st_options: object,
    ) -> None:
        super().__init__()
        c, h, w = input_shape
        k = count(parallel, "parallel (the number of parallel transformers)", 1) if stn else 1
        self.conv1 = nn.Conv2d(k * c, conv[0], kernel_size=5)
        self.conv2 = nn.Conv2d(conv[0], conv[1], kernel_size=5)
        self.conv2_drop = nn.Dropout2d()
        features = conv[1] * (((h - 4) // 2 - 4) // 2) * (((w - 4) // 2 - 4) // 2)
        if features <= 0:
            raise ValueError(f"input {tuple(input_shape)} is too small for this network")
        self.fc1 = nn.Linear(features, fc)
        self.fc2 = nn.Linear(fc, num_classes)
        layer = None
        if stn:
            localization, loc_features = conv_localization(input_shape, loc_channels, (7, 5))
            layer = spatial_transformer(
                localization,
                transform,
                None,
                transform_options=transform_options,
                parallel=parallel,
                recurrent_steps=recurrent_steps,
                in_features=loc_features,
                hidden=(loc_hidden,),
                **st_options,
            )
            self.localization, self.fc_loc = layer.localization, layer.fc_loc
        object.__setattr__(self, "_stn", layer)  # not a child: its modules are ours already
        self._register_load_state_dict_pre_hook(_drop_stn_prefix)

    @property
    def stn(self) -> SpatialTransformer | None:
        """The spatial transformer over :attr:`localization` and :attr:`fc_loc` (``None`` without one)."""
        return self._stn

    @stn.setter
    def stn(self, value: nn.Module | None) -> None:
        """Replace the transformer: ``None`` reads the input as is; a module made of other weights
        than :attr:`localization` and :attr:`fc_loc` becomes the child ``stn``."""
        self._modules.pop("stn", None)
        ours = {id(p) for p in self.parameters()}
        if value is not None and not all(id(p) in ours for p in value.parameters()):
            self._modules["stn"] = value
        object.__setattr__(self, "_stn", value)

    def __setattr__(self, name: str, value) -> None:
        if name == "stn":  # nn.Module would register a module itself, never calling the setter
            type(self).stn.fset(self, value)
        else:
            super().__setattr__(name, value)

    def spatial_transformers(self) -> list[SpatialTransformer]:
        """The model's spatial transformers (see :func:`stn.observe.transformers`)."""
        return [self._stn] if isinstance(self._stn, SpatialTransformer) else []

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        if self._stn is not None and "stn" not in self._modules:
            self._stn._apply(fn, recurse=False)  # its own buffers (the fill); its modules are ours
        return self

    def train(self, mode: bool = True) -> Net:
        super().train(mode)
        if self._stn is not None:
            self._stn.training = mode
        return self

    def forward(self, x: Tensor) -> Tensor:
        if self._stn is not None:
            x = self._stn(x)
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.dropout(x, training=self.training)
        return F.log_softmax(self.fc2(x), dim=1)


def _drop_stn_prefix(state_dict: dict[str, Tensor], prefix: str, *args: object) -> None:
    """Checkpoints of earlier stn versions keep the transformer under ``stn.``: load them too."""
    for key in [k for k in state_dict if k.startswith(prefix + "stn.")]:
        state_dict[prefix + key[len(prefix) + 4 :]] = state_dict.pop(key)


TutorialNet = Net  # the name it had; kept for one release


@register("seed-cifar", "cifar10", "the seed CIFAR-10 network: affine STN + conv 16/32, fc 1024")
def seed_cifar(input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10, **options: object) -> Net:
    """conv1 3->16 k5, conv2 16->32 k5, fc1 800->1024, fc2 1024->10; localisation conv 3->64 k7,
    64->128 k5, fc_loc 2048->256->6."""
    return Net(input_shape, num_classes, conv=(16, 32), fc=1024, loc_channels=(64, 128), loc_hidden=256, **options)


@register("tutorial-mnist", "mnist", "the PyTorch tutorial's MNIST network: affine STN + conv 10/20, fc 50")
def tutorial_mnist(input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10, **options: object) -> Net:
    """conv 1->10, 10->20 (k5), fc 320->50->10; localisation conv 1->8 k7, 8->10 k5, fc_loc 90->32->6."""
    return Net(input_shape, num_classes, conv=(10, 20), fc=50, loc_channels=(8, 10), loc_hidden=32, **options)
