"""The paper's CNN with a probabilistic spatial transformer (Schwöbel et al., UAI 2022): ``pstn-cnn``.

The network of ``paper-cnn`` (the localisation net, the 9x9 / 7x7 classifier and the input
resolution of :mod:`stn.models.paper`), its transformer a
:class:`~stn.probabilistic.ProbabilisticSpatialTransformer`: the classifier sees ``samples``
warps of every image. In training the model returns the ``(S*N, classes)`` log-probabilities of
every sample (the training loop scores each against its image's label and adds the layer's KL
term); in eval mode the ``(N, classes)`` log of their mean probability, so evaluation, export and
prediction see an ordinary classifier. ``stn=False`` gives the CNN.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from stn.models.paper import LOC_CNN_HIDDEN, Resample, classifier_size, cnn, cnn_localization
from stn.models.registry import register
from stn.probabilistic import ProbabilisticSpatialTransformer
from stn.transforms import Transform, get

__all__ = ["ProbabilisticNet", "pstn_cnn"]


class ProbabilisticNet(nn.Module):
    """A probabilistic spatial transformer, then the paper's CNN classifier.

    Args:
        input_shape: ``(C, H, W)`` of the (normalised) images.
        num_classes: outputs.
        stn: ``False``: the CNN alone (a fixed :class:`~stn.models.paper.Resample` in front).
        transform: the family (default ``affine``); ``transform_options`` its options.
        samples: warps per image (see :class:`~stn.probabilistic.ProbabilisticSpatialTransformer`).
        prior_scale: the prior's scale ``σ_p`` (as the layer's).
        init_scale: ``σ`` before training (as the layer's; ``None``: ``prior_scale``).
        kl_weight: the weight ``β`` of the KL term (as the layer's).
        kl_anneal_steps: training steps over which ``β`` ramps up (as the layer's).
        **st_options: its sampling options (``fill``, ``padding_mode``, ...).

    Shapes: ``(N, C, H, W)`` in; log-probabilities ``(N, num_classes)`` out in eval mode,
    ``(S*N, num_classes)`` (sample-major) in training mode.

    Example:
        >>> import torch
        >>> from stn import models
        >>> net = models.create("pstn-cnn", input_shape=(1, 28, 28), num_classes=10, samples=4)
        >>> net(torch.randn(2, 1, 28, 28)).shape  # training: every sample
        torch.Size([8, 10])
        >>> net.eval()(torch.randn(2, 1, 28, 28)).shape  # eval: their mean
        torch.Size([2, 10])
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        stn: bool = True,
        transform: str | Transform = "affine",
        transform_options: dict[str, object] | None = None,
        samples: int = 4,
        prior_scale: float = 0.1,
        init_scale: float | None = None,
        kl_weight: float = 1.0,
        kl_anneal_steps: int = 0,
        **st_options: object,
    ) -> None:
        super().__init__()
        if len(input_shape) != 3 or min(int(v) for v in input_shape) < 1:
            raise ValueError(f"input_shape must be (C, H, W) with positive sizes, got {tuple(input_shape)}")
        c, h, w = (int(v) for v in input_shape)
        size = classifier_size(h, w)
        self.stn: ProbabilisticSpatialTransformer | None = None
        self.resample: Resample | None = None
        if stn:
            net, features = cnn_localization((c, h, w))
            self.stn = ProbabilisticSpatialTransformer(
                net,
                get(transform, **(transform_options or {})),
                size,
                in_features=features,
                hidden=(LOC_CNN_HIDDEN,),
                samples=samples,
                prior_scale=prior_scale,
                init_scale=init_scale,
                kl_weight=kl_weight,
                kl_anneal_steps=kl_anneal_steps,
                **st_options,
            )
        else:
            self.resample = Resample(size)
        self.classifier = cnn((c, *size), num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if self.stn is None:
            return F.log_softmax(self.classifier(self.resample(x)), dim=1)
        log_probs = F.log_softmax(self.classifier(self.stn(x)), dim=1)
        return log_probs if self.training else self.stn.marginal(log_probs)


@register(
    "pstn-cnn", "mnist", "the paper's CNN behind a probabilistic spatial transformer (P-STN): S sampled warps per image"
)
def pstn_cnn(input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10, **options: object) -> ProbabilisticNet:
    """P-STN CNN (``stn=False``: the CNN)."""
    return ProbabilisticNet(input_shape, num_classes, **options)
