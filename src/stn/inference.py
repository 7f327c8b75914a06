"""A trained model as prediction and export run it: :class:`InferenceGraph`.

The graph takes float32 images ``(N, C, H, W)`` normalised as in training and returns a tuple:

* ``output``: the model's log-probabilities ``(N, classes)`` (with flip test-time augmentation,
  the log of the mean of the probabilities for each image and its mirror image, as
  ``stn evaluate`` computes them);
* and, when the model's first spatial transformer reads the image itself (not a feature map):
  ``params`` ``(N, k, P)``, the parameters it predicted (``k`` transformers, ``k = 1`` for a
  :class:`~stn.layers.SpatialTransformer`; a recurrent transformer's final, composed parameters),
  and ``transformed`` ``(N, k*C, h, w)``, what it made of the image (still normalised). With flip
  test-time augmentation both are those of the unmirrored image. A sampling transformer
  (:class:`~stn.probabilistic.ProbabilisticSpatialTransformer`) gives its mean ``params`` and the
  mean warp (what it reports to :func:`stn.observe.tap` in eval mode).

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

from stn.layers import ParallelSpatialTransformers, SpatialTransformer
from stn.observe import first_transformer, reads_image, tap

__all__ = ["OUTPUT_NAMES", "InferenceGraph", "first_transformer", "flip_tta"]

OUTPUT_NAMES = ("output", "params", "transformed")


def flip_tta(model: nn.Module, x: Tensor, output: Tensor | None = None) -> Tensor:
    """Flip test-time augmentation: the log of the mean of the probabilities ``model`` gives for
    normalised images ``x`` ``(N, C, H, W)`` and for their mirror images, ``(N, classes)``.

    Args:
        model: returns logits or log-probabilities (normalised here either way).
        x: normalised images ``(N, C, H, W)``.
        output: ``model(x)`` when the caller has it already.

    Examples:
        >>> import stn
        >>> model = stn.models.create("tutorial-mnist").eval()
        >>> log_probs = flip_tta(model, torch.zeros(2, 1, 28, 28))
        >>> tuple(log_probs.shape), torch.allclose(log_probs.exp().sum(1), torch.ones(2))
        ((2, 10), True)
    """
    output = model(x) if output is None else output
    both = torch.stack((F.log_softmax(output.float(), 1), F.log_softmax(model(x.flip(-1)).float(), 1)))
    return torch.logsumexp(both, 0) - math.log(2.0)


class InferenceGraph(nn.Module):
    """``model`` in eval use, returning ``(output,)`` or ``(output, params, transformed)`` (see
    the module notes).

    Args:
        model: takes normalised images ``(N, *input_shape)``; returns logits or log-probabilities.
            Its first transformer is watched with :func:`stn.observe.tap` during each call.
        input_shape: ``(C, H, W)``; one eager call on zeros of this shape finds out whether the
            first transformer reads the image (and lets thin-plate splines cache their systems).
        tta: flip test-time augmentation in the graph.

    Examples:
        >>> import stn
        >>> graph = InferenceGraph(stn.models.create("tutorial-mnist"), (1, 28, 28))
        >>> graph.output_names, graph.k
        (('output', 'params', 'transformed'), 1)
        >>> [tuple(out.shape) for out in graph(torch.zeros(3, 1, 28, 28))]
        [(3, 10), (3, 1, 6), (3, 1, 28, 28)]
        >>> graph.metadata()["transformer"]["transform"]
        'affine'
    """

    def __init__(self, model: nn.Module, input_shape: tuple[int, int, int], tta: bool = False) -> None:
        super().__init__()
        self.model, self.tta = model, bool(tta)
        self.input_shape = tuple(int(v) for v in input_shape)
        self.reads_image = False
        if self.transformer is not None:
            x = torch.zeros(2, *self.input_shape, device=_device(model))
            training = model.training
            try:
                with torch.no_grad(), tap(model) as seen:
                    model.eval()(x)
            finally:
                model.train(training)
            calls = seen.of(self.transformer)
            self.reads_image = bool(calls) and reads_image(calls[0], x)

    @property
    def transformer(self) -> SpatialTransformer | None:
        """The model's first spatial transformer (looked up, not held: the graph registers no module twice)."""
        return first_transformer(self.model)

    def remove_hooks(self) -> None:
        """Deprecated: the graph holds no hooks any more (it taps the model during each call)."""
        import warnings

        warnings.warn("InferenceGraph holds no hooks; remove_hooks() does nothing", DeprecationWarning, stacklevel=2)

    @property
    def k(self) -> int:
        """Number of parallel transformers (1 for a single one)."""
        return self.transformer.k if isinstance(self.transformer, ParallelSpatialTransformers) else 1

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of the outputs, in order."""
        return OUTPUT_NAMES if self.reads_image else OUTPUT_NAMES[:1]

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        with tap(self.model) as seen:
            output = self.model(x)
        extra: tuple[Tensor, ...] = ()
        if self.reads_image:
            call = seen.of(self.transformer)[0]
            extra = (call.params.reshape(call.params.shape[0], self.k, -1), call.output)
        if self.tta:
            output = flip_tta(self.model, x, output)
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
