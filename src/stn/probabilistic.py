"""The probabilistic spatial transformer of Schwöbel et al. (UAI 2022, "Probabilistic Spatial
Transformer Networks"): the localisation net predicts a Gaussian over the parameters θ rather than
one θ, and the classifier sees several transformations of each image.

Training draws ``S`` samples ``θ = μ + σ ε`` (reparameterisation, ``ε ~ N(0, I)``) per image and
reports the KL divergence of ``N(μ, σ²)`` from a prior ``N(identity, prior_scale²)`` as its
:meth:`~ProbabilisticSpatialTransformer.extra_loss`, which the training loop adds to the
classification loss (any module may report one; see :func:`stn.engine.loop.extra_loss`). At test
time the ``S`` predictions are averaged: :meth:`~ProbabilisticSpatialTransformer.marginal`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stn import transforms as T
from stn.layers import SpatialTransformer, _params_head

__all__ = ["ProbabilisticSpatialTransformer", "gaussian_kl"]

EVAL_NOISE_SEED = 0  # the fixed draws that evaluation uses (deterministic, exported as constants)


def gaussian_kl(mean: Tensor, scale: Tensor, prior_mean: Tensor, prior_scale: float) -> Tensor:
    """``KL(N(mean, scale²) || N(prior_mean, prior_scale²))`` of diagonal Gaussians, summed over
    the last axis: ``(N, P)`` -> ``(N,)``.

    Example:
        >>> import torch
        >>> gaussian_kl(torch.zeros(1, 2), torch.ones(1, 2), torch.zeros(2), 1.0)
        tensor([0.])
    """
    log_ratio = math.log(prior_scale) - torch.log(scale.clamp_min(torch.finfo(scale.dtype).tiny))
    return (log_ratio + (scale**2 + (mean - prior_mean) ** 2) / (2 * prior_scale**2) - 0.5).sum(-1)


def _inverse_softplus(value: float) -> float:
    return -math.inf if value == 0 else value + math.log(-math.expm1(-value))


class ProbabilisticSpatialTransformer(SpatialTransformer):
    """A spatial transformer that predicts a Gaussian ``N(μ, diag(σ²))`` over θ and samples it.

    ``fc_loc`` predicts the mean ``μ`` (starting at the identity, as in
    :class:`~stn.layers.SpatialTransformer`); ``fc_scale``, a head of the same shape on the same
    features, predicts ``σ = softplus(·)`` (starting at ``init_scale`` for every image).

    Forward: input ``(N, C, H, W)``; output ``(S*N, C, H_out, W_out)``, the ``S`` warps of each
    image stacked **sample-major** (rows ``s*N .. s*N + N - 1`` are sample ``s`` of every
    image). In training mode the ``S`` samples are fresh draws ``μ + σ ε``; in eval mode they
    are fixed: the first is the mean ``μ`` itself and the others use ``S - 1`` standard-normal
    draws made once from a fixed seed, so evaluation is deterministic and exports as a constant.
    A classifier after it gives ``(S*N, classes)`` log-probabilities; :meth:`marginal` turns
    them into the ``(N, classes)`` log of the mean probability.

    With ``samples=1`` the eval output is the mean warp; with ``init_scale=0`` the scale is
    exactly zero (and stays so: ``softplus`` passes no gradient at ``-∞``), and the layer is the
    plain spatial transformer in training too.

    After each call :attr:`last_params` is the mean ``(N, P)``, :attr:`last_scale` ``σ``
    ``(N, P)``; observers (:func:`stn.observe.tap`, hence snapshots, statistics, the inference
    graph) see the mean θ and the first sample's warp, ``(N, C, H_out, W_out)``: the mean warp in
    eval mode. Each training-mode call stores the KL term, returned (once) by :meth:`extra_loss`.

    Args:
        localization: the localisation net, as for :class:`~stn.layers.SpatialTransformer`.
        transform: the family, as for :class:`~stn.layers.SpatialTransformer`.
        output_size: ``(H_out, W_out)``, as for :class:`~stn.layers.SpatialTransformer`.
        in_features: ``F``, as for :class:`~stn.layers.SpatialTransformer`.
        hidden: hidden widths of ``fc_loc`` (and ``fc_scale``), as for
            :class:`~stn.layers.SpatialTransformer`.
        samples: ``S``, warps per image.
        prior_scale: ``σ_p`` of the prior ``N(identity, σ_p² I)`` (normalised units, as θ).
        init_scale: ``σ`` before training, every parameter (``0``: deterministic; ``None``:
            ``prior_scale``).
        kl_weight: the weight ``β`` of the KL term (per image, summed over the ``P`` parameters).
        kl_anneal_steps: ``β`` ramps up linearly over this many training steps (forward calls
            in training mode, counted in the buffer ``steps``); ``0``: full weight at once.
        **kwargs: ``mode``, ``padding_mode``, ``fill``, ``align_corners``, ``check_finite``.

    Example:
        >>> import torch, stn
        >>> loc, features = stn.conv_localization((1, 28, 28))
        >>> st = stn.ProbabilisticSpatialTransformer(loc, "affine", in_features=features, samples=4)
        >>> st(torch.randn(8, 1, 28, 28)).shape  # 4 samples of each of the 8 images
        torch.Size([32, 1, 28, 28])
        >>> st.extra_loss().shape, st.last_scale.shape
        (torch.Size([]), torch.Size([8, 6]))
    """

    def __init__(
        self,
        localization: nn.Module,
        transform: str | T.Transform = "affine",
        output_size: Sequence[int] | None = None,
        *,
        in_features: int | None = None,
        hidden: Sequence[int] = (),
        samples: int = 4,
        prior_scale: float = 0.1,
        init_scale: float | None = None,
        kl_weight: float = 1.0,
        kl_anneal_steps: int = 0,
        **kwargs: object,
    ) -> None:
        if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
            raise ValueError(f"samples must be a positive int, got {samples!r}")
        init_scale = prior_scale if init_scale is None else init_scale
        for what, value in (("prior_scale", prior_scale), ("init_scale", init_scale)):
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < math.inf:
                raise ValueError(f"{what} must be a finite number >= 0, got {value!r}")
        if prior_scale == 0:
            raise ValueError("prior_scale must be above 0")
        if not isinstance(kl_weight, int | float) or isinstance(kl_weight, bool) or not 0 <= kl_weight < math.inf:
            raise ValueError(f"kl_weight must be a number >= 0, got {kl_weight!r}")
        if not isinstance(kl_anneal_steps, int) or isinstance(kl_anneal_steps, bool) or kl_anneal_steps < 0:
            raise ValueError(f"kl_anneal_steps must be an int >= 0, got {kl_anneal_steps!r}")
        super().__init__(localization, transform, output_size, in_features=in_features, hidden=hidden, **kwargs)
        self.samples, self.prior_scale, self.init_scale = samples, float(prior_scale), float(init_scale)
        self.kl_weight, self.kl_anneal_steps = float(kl_weight), kl_anneal_steps
        p = self.transform.num_params
        self.fc_scale = _params_head(in_features, hidden, torch.full((p,), _inverse_softplus(self.init_scale)))
        noise = torch.randn(samples - 1, p, generator=torch.Generator().manual_seed(EVAL_NOISE_SEED))
        self.register_buffer("eval_noise", torch.cat((torch.zeros(1, p), noise)), persistent=False)
        self.register_buffer("prior_mean", self.transform.identity(1)[0], persistent=False)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.last_scale: Tensor | None = None
        self._kl: Tensor | None = None

    def predict_distribution(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean ``μ`` and scale ``σ`` of θ, each ``(N, P)``, for an input ``(N, C, H, W)``."""
        features = self.features(x)
        return self.fc_loc(features), F.softplus(self.fc_scale(features))

    def sample_params(self, mean: Tensor, scale: Tensor, samples: int | None = None) -> Tensor:
        """``(S, N, P)`` parameter samples ``μ + σ ε``: fresh draws in training mode, the fixed
        ones of eval mode otherwise (``samples`` defaults to :attr:`samples`; in eval mode at
        most that many)."""
        s = self.samples if samples is None else samples
        if self.training:
            noise = torch.randn(s, *mean.shape, device=mean.device, dtype=mean.dtype)
        else:
            if s > self.samples:
                raise ValueError(f"eval mode has {self.samples} fixed samples; asked for {s}")
            noise = self.eval_noise[:s, None, :].to(mean.dtype)
        return mean + scale * noise

    def forward(self, x: Tensor) -> Tensor:
        mean, scale = self.predict_distribution(x)
        params = self.sample_params(mean, scale)
        if self.training:
            kl = gaussian_kl(mean.float(), scale.float(), self.prior_mean.float(), self.prior_scale)
            self._kl = self.current_kl_weight() * kl.mean()
            self.steps += 1
        s, n = params.shape[:2]
        repeated = x.unsqueeze(0).expand(s, *x.shape).reshape(s * n, *x.shape[1:])
        out = self.sample(repeated, params.reshape(s * n, -1))
        if not torch.compiler.is_exporting() and not torch.jit.is_tracing():
            self.last_scale = scale.detach()
        # Observers (stn.observe.tap) see one warp per image: the mean θ and the first sample,
        # which in eval mode is the mean warp. Last: a tap may stop the forward pass here.
        self._observed(x, mean, out[:n])
        return out

    def current_kl_weight(self) -> Tensor:
        """``β`` at this training step, a scalar tensor: ``kl_weight`` ramped up linearly over
        ``kl_anneal_steps`` steps (kept on the device: no sync)."""
        if self.kl_anneal_steps == 0:
            return torch.tensor(self.kl_weight, device=self.steps.device)
        return self.kl_weight * ((self.steps + 1).double() / self.kl_anneal_steps).clamp(max=1.0).float()

    def extra_loss(self) -> Tensor | None:
        """The weighted KL term of the last training-mode forward (a scalar, the mean over its
        images), once; ``None`` when no training-mode forward came since the last call."""
        kl, self._kl = self._kl, None
        return kl

    def marginal(self, log_probs: Tensor) -> Tensor:
        """``(S*N, K)`` log-probabilities of the ``S`` samples (sample-major, as :meth:`forward`
        stacks them) -> ``(N, K)``, the log of their mean probability:
        ``logsumexp`` over the samples minus ``log S``."""
        s = self.samples
        if log_probs.shape[0] % s:
            raise ValueError(f"expected S*N = {s}*N rows, got {log_probs.shape[0]}")
        stacked = log_probs.reshape(s, -1, *log_probs.shape[1:])
        return torch.logsumexp(stacked, 0) - math.log(s) if s > 1 else stacked[0]

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, samples={self.samples}, prior_scale={self.prior_scale}, "
            f"kl_weight={self.kl_weight}, kl_anneal_steps={self.kl_anneal_steps}"
        )
