"""A trained model as prediction and export run it: :class:`InferenceGraph`.

The graph takes float32 images ``(N, C, H, W)`` normalised as in training and returns a tuple:

* ``output``: the model's log-probabilities ``(N, classes)`` (with flip test-time augmentation,
  the log of the mean of the probabilities for each image and its mirror image, as
  ``stn evaluate`` computes them);
* and, when the model's first spatial transformer reads the image itself (not a feature map):
  ``params`` ``(N, k, P)``, the parameters it predicted (``k`` transformers, ``k = 1`` for a
  :class:`~stn.layers.SpatialTransformer`; a recurrent transformer's final, composed parameters),
  and ``transformed`` ``(N, k*C, h, w)``, what it made of the image (still normalised). With flip
  test-time augmentation both are those of the unmirrored image.

PyTorch prediction (:mod:`stn.predict`) runs this module; ``stn export`` writes it to ONNX or
``torch.export``, so both give the same numbers. It needs only :mod:`stn.layers`, not the training
code.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stn.layers import ParallelSpatialTransformers, RecurrentSpatialTransformer, SpatialTransformer

__all__ = ["OUTPUT_NAMES", "InferenceGraph", "first_transformer"]

OUTPUT_NAMES = ("output", "params", "transformed")


def first_transformer(model: nn.Module) -> SpatialTransformer | None:
    """The first :class:`~stn.layers.SpatialTransformer` inside ``model`` (``None`` if it has none)."""
    return next((m for m in model.modules() if isinstance(m, SpatialTransformer)), None)


class InferenceGraph(nn.Module):
    """``model`` in eval use, returning ``(output,)`` or ``(output, params, transformed)`` (see
    the module notes).

    Args:
        model: takes normalised images ``(N, *input_shape)``; returns logits or log-probabilities.
            Two forward hooks on its first transformer catch ``params`` and ``transformed``
            (:meth:`remove_hooks` takes them off).
        input_shape: ``(C, H, W)``; one eager call on zeros of this shape finds out whether the
            first transformer reads the image (and lets thin-plate splines cache their systems).
        tta: flip test-time augmentation in the graph.
    """

    def __init__(self, model: nn.Module, input_shape: tuple[int, int, int], tta: bool = False) -> None:
        super().__init__()
        self.model, self.tta = model, bool(tta)
        self.input_shape = tuple(int(v) for v in input_shape)
        self.transformer = first_transformer(model)
        self._seen: dict[str, Tensor] = {}
        self._updates: list[Tensor] = []  # fc_loc's outputs in one call: a recurrent transformer's steps
        self._hooks = []
        if self.transformer is not None:
            self._hooks = [
                self.transformer.fc_loc.register_forward_hook(self._keep_update),
                self.transformer.register_forward_hook(self._keep("input", "transformed")),
            ]
        self.reads_image = False
        if self.transformer is not None:
            x = torch.zeros(2, *self.input_shape, device=_device(model))
            training = model.training
            try:
                with torch.no_grad():
                    model.eval()(x)
            finally:
                model.train(training)
            seen = self._seen
            k = self.k
            self.reads_image = (
                "input" in seen
                and seen["input"].shape == x.shape
                and bool(torch.equal(seen["input"], x))
                and seen["transformed"].shape[1] == k * x.shape[1]
            )
            self._seen, self._updates = {}, []

    def remove_hooks(self) -> None:
        """Take this graph's hooks off ``model`` (the graph's extra outputs stop working)."""
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    def _keep_update(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        self._updates.append(output)

    def _params(self) -> Tensor:
        """The first transformer's parameters in the last call, ``(N, k, P)``: ``fc_loc``'s output,
        or for a recurrent transformer its updates composed."""
        st = self.transformer
        if isinstance(st, RecurrentSpatialTransformer):
            params = st.compose_updates(self._updates[-st.steps :])
        else:
            params = self._updates[-1]
        return params.reshape(params.shape[0], self.k, -1)

    def _keep(self, *names: str):
        def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            values = dict(zip(names, (inputs[0], output) if len(names) == 2 else (output,), strict=True))
            self._seen.update(values)

        return hook

    @property
    def k(self) -> int:
        """Number of parallel transformers (1 for a single one)."""
        return self.transformer.k if isinstance(self.transformer, ParallelSpatialTransformers) else 1

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of the outputs, in order."""
        return OUTPUT_NAMES if self.reads_image else OUTPUT_NAMES[:1]

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        self._seen, self._updates = {}, []
        output = self.model(x)
        extra: tuple[Tensor, ...] = ()
        if self.reads_image:
            extra = (self._params(), self._seen["transformed"])
        if self.tta:
            mirrored = self.model(x.flip(-1))
            both = torch.stack((F.log_softmax(output, 1), F.log_softmax(mirrored, 1)))
            output = torch.logsumexp(both, 0) - math.log(2.0)
        self._seen, self._updates = {}, []
        return (output, *extra)

    def metadata(self) -> dict[str, Any]:
        """What a reader of the exported graph needs to use its outputs: their names, the
        transformer's family, options, sampling convention and ``k``, and whether TTA is inside."""
        meta: dict[str, Any] = {"outputs": list(self.output_names), "tta": self.tta}
        if self.reads_image:
            st = self.transformer
            meta["transformer"] = {
                "transform": st.transform.name,
                "options": st.transform.options,
                "align_corners": bool(st.align_corners),
                "k": self.k,
            }
        return meta


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters(), torch.empty(0)).device
