"""``nn.Module`` forms: :class:`SpatialTransformer`, :class:`ParallelSpatialTransformers` and the
usual convolutional localisation network (:func:`conv_localization`)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from stn import pixels
from stn import transforms as T
from stn.functional import Fill, check_sampling, warp

__all__ = [
    "SAMPLING_OPTIONS",
    "ParallelSpatialTransformers",
    "RecurrentSpatialTransformer",
    "SpatialTransformer",
    "conv_localization",
]

# The keywords of SpatialTransformer that say how it samples (a model passes them on to its transformer).
SAMPLING_OPTIONS = ["mode", "padding_mode", "fill", "align_corners", "check_finite"]


class _LazyParamsHead(nn.LazyLinear):
    """A ``LazyLinear`` that starts at the identity map once it knows its input size."""

    def __init__(self, out_features: int, identity: Tensor) -> None:
        super().__init__(out_features)
        self.register_buffer("_identity", identity, persistent=False)

    def reset_parameters(self) -> None:
        if self.in_features and not self.has_uninitialized_params():
            _init_identity(self, self._identity)


def _init_identity(linear: nn.Linear, identity: Tensor) -> None:
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(identity)


def _params_head(in_features: int | None, hidden: Sequence[int], identity: Tensor) -> nn.Module:
    """``Linear -> ReLU`` for each hidden width, then a linear layer that outputs the identity."""
    if in_features is not None:
        in_features = _positive_int(in_features, "in_features")
    hidden = [_positive_int(width, "hidden width") for width in hidden]
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_features, width) if in_features else nn.LazyLinear(width), nn.ReLU(True)]
        in_features = width
    if in_features:
        last = nn.Linear(in_features, identity.numel())
        _init_identity(last, identity)
    else:
        last = _LazyParamsHead(identity.numel(), identity)
    layers.append(last)
    return layers[0] if len(layers) == 1 else nn.Sequential(*layers)


def _positive_int(value: object, what: str) -> int:
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        number = 0
    if isinstance(value, bool) or number <= 0:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return number


class SpatialTransformer(nn.Module):
    """A spatial transformer: localisation net -> parameters θ -> grid -> sampled output.

    ``fc_loc`` (built here) maps the localisation net's flattened output to θ. Its last layer
    starts with zero weights and the identity as bias, so every family starts as the identity.

    Args:
        localization: any module taking the transformer's input ``(N, C, H, W)``; its output is
            flattened to ``(N, F)``.
        transform: a family name or :class:`~stn.transforms.Transform` (see :mod:`stn.transforms`).
        output_size: ``(H_out, W_out)`` of the output; defaults to the input's size.
        in_features: ``F``; inferred on the first call when omitted (create the optimizer after
            one forward pass, as with any lazy module).
        hidden: widths of hidden ``Linear + ReLU`` layers of ``fc_loc`` before the last layer.
        mode: sampling interpolation, as in :func:`stn.functional.warp`.
        padding_mode: what is read outside the input, as in :func:`stn.functional.warp`.
        fill: value read outside the input, as in :func:`stn.functional.warp`.
        align_corners: as in :func:`stn.functional.warp`.
        check_finite: as in :func:`stn.functional.warp`.

    Shapes: input ``(N, C, H, W)`` (images or feature maps, any ``C``), output
    ``(N, C, H_out, W_out)``; with a volume family (``affine3d``, ``field3d``, ...) input
    ``(N, C, D, H, W)`` and output ``(N, C, D_out, H_out, W_out)``. After each call,
    :attr:`last_params` holds the detached ``(N, P)`` parameters that were predicted and
    :attr:`last_input_size` the input's ``(H, W)`` (or ``(D, H, W)``); from them
    :attr:`last_grid` gives the sampling grid, :meth:`output_corners` and :meth:`region` where each input was read
    (none of them is kept while ``torch.export`` or ``torch.jit.trace`` trace the model).

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> loc, features = conv_localization((1, 28, 28))
        >>> st = SpatialTransformer(loc, "affine", in_features=features, hidden=(32,))
        >>> x = torch.rand(4, 1, 28, 28)
        >>> torch.allclose(st(x), x, atol=1e-5)  # it starts as the identity
        True
        >>> st.last_params[0]
        tensor([1., 0., 0., 0., 1., 0.])
        >>> crop = SpatialTransformer(nn.Flatten(), "attention", (14, 14), in_features=28 * 28)
        >>> crop(x).shape, crop.region().shape
        (torch.Size([4, 1, 14, 14]), torch.Size([4, 4, 2]))
    """

    def __init__(
        self,
        localization: nn.Module,
        transform: str | T.Transform = "affine",
        output_size: Sequence[int] | None = None,
        *,
        in_features: int | None = None,
        hidden: Sequence[int] = (),
        mode: str = "bilinear",
        padding_mode: str = "zeros",
        fill: Fill = None,
        align_corners: bool = False,
        check_finite: bool = True,
    ) -> None:
        super().__init__()
        check_sampling(mode, padding_mode, fill)
        self.transform = T.get(transform)
        ndim = self.transform.ndim
        self.output_size = None if output_size is None else T.check_size(output_size, "output_size", ndim)
        self.localization = localization
        self.mode, self.padding_mode = mode, padding_mode
        self.align_corners, self.check_finite = align_corners, check_finite
        self.fc_loc = self._head(in_features, hidden)
        # A buffer follows the module to its device, so sampling never copies the fill from the host.
        self.register_buffer("fill", None if fill is None else torch.as_tensor(fill, dtype=torch.float32), False)
        self.last_params: Tensor | None = None
        self.last_input_size: tuple[int, ...] | None = None
        self._taps: list[Callable[..., None]] = []  # stn.observe.tap's recorders, while one is on

    def _initial_params(self) -> Tensor:
        """The bias of ``fc_loc``'s last layer: the identity map."""
        return self.transform.identity(1)[0]

    def _head(self, in_features: int | None, hidden: Sequence[int]) -> nn.Module:
        """``fc_loc``: the localisation net's flattened output -> θ, starting at :meth:`_initial_params`."""
        return _params_head(in_features, hidden, self._initial_params())

    def predict(self, x: Tensor) -> Tensor:
        """Parameters θ, ``(N, P)``, for an input ``(N, C, H, W)`` (volumes: ``(N, C, D, H, W)``):
        the localisation net and ``fc_loc``, without sampling.

        Examples:
            >>> st = SpatialTransformer(torch.nn.Flatten(), "translation", in_features=12)
            >>> st.predict(torch.rand(2, 3, 2, 2))
            tensor([[0., 0.],
                    [0., 0.]], grad_fn=<AddmmBackward0>)
        """
        return self.fc_loc(self.features(x))

    def features(self, x: Tensor) -> Tensor:
        """The localisation net's flattened output ``(N, F)`` for an input ``(N, C, H, W)``
        (volumes: ``(N, C, D, H, W)``): what ``fc_loc`` reads."""
        if not isinstance(x, Tensor) or x.dim() != self.transform.ndim + 2:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            expected = "(N, C, H, W)" if self.transform.ndim == 2 else "(N, C, D, H, W)"
            raise ValueError(f"{type(self).__name__} expects input of shape {expected}, got {shape}")
        weight = next(self.fc_loc.parameters())
        if x.device != weight.device:
            raise ValueError(f"input is on {x.device} but {type(self).__name__} is on {weight.device}; move one")
        features = self.localization(x).flatten(1)
        first = self.fc_loc[0] if isinstance(self.fc_loc, nn.Sequential) else self.fc_loc
        if not isinstance(first, nn.LazyLinear) and features.shape[1] != first.in_features:
            raise ValueError(
                f"the localization net gives {features.shape[1]} features per input but in_features is "
                f"{first.in_features}"
            )
        return features

    def sample(self, x: Tensor, params: Tensor, output_size: Sequence[int] | None = None) -> Tensor:
        """Warp ``x`` ``(N, C, H, W)`` by given parameters ``(N, P)`` with this layer's sampling
        settings, to ``output_size`` (default the layer's); ``(N, C, H_out, W_out)``.

        Examples:
            >>> import torch
            >>> st = SpatialTransformer(torch.nn.Flatten(), "attention", (8, 8), in_features=3 * 16 * 16)
            >>> st.sample(torch.rand(2, 3, 16, 16), torch.tensor([[0.5, 0.0, 0.0]] * 2)).shape
            torch.Size([2, 3, 8, 8])
        """
        return warp(
            x,
            self.transform,
            params,
            self.output_size if output_size is None else output_size,
            self.mode,
            self.padding_mode,
            self.fill,
            self.align_corners,
            self.check_finite,
        )

    def forward(self, x: Tensor) -> Tensor:
        params = self.predict(x)
        out = self.sample(x, params)
        self._observed(x, params, out)
        return out

    def _observed(self, x: Tensor, params: Tensor, out: Tensor, steps: list[Tensor] | None = None) -> None:
        """Keep what a call did (:attr:`last_params`, :attr:`last_input_size`; not while a graph is
        traced, which keeps no Python state) and hand it to the active taps (:func:`stn.observe.tap`)."""
        if not torch.compiler.is_exporting() and not torch.jit.is_tracing():
            self.last_params = params.detach()
            self.last_input_size = tuple(x.shape[2:])
        for record in self._taps:
            record(self, x, params, out, steps)

    @property
    def last_grid(self) -> Tensor | None:
        """The float32 (or float64) sampling grid of the last call, ``(N, H_out, W_out, 2)``
        (``(N, k, H_out, W_out, 2)`` for parallel transformers), rebuilt from :attr:`last_params`.

        Examples:
            >>> import torch
            >>> st = SpatialTransformer(torch.nn.Flatten(), "affine", (4, 6), in_features=3 * 8 * 8)
            >>> _ = st(torch.rand(2, 3, 8, 8))
            >>> st.last_grid.shape
            torch.Size([2, 4, 6, 2])
        """
        if self.last_params is None or self.last_input_size is None:
            return None
        params = self.last_params
        params = params.to(torch.promote_types(params.dtype, torch.float32)).reshape(-1, self.transform.num_params)
        grid = self.transform.grid(params, self._last_output_size(), self.align_corners)
        return grid.view(*self.last_params.shape[:-1], *grid.shape[1:])

    def output_corners(self, input_size: Sequence[int] | None = None) -> Tensor:
        """Where the corner pixels of the last call's outputs read: ``(N, 4, 2)`` pixel **points**
        ``(x, y)`` (pixel centres at integers; ``(N, k, 4, 2)`` for parallel transformers), read by
        the output's top-left, top-right, bottom-right and bottom-left pixels (see
        :func:`stn.pixels.output_corners`). ``input_size`` ``(H, W)`` gives them in the pixels of an
        image of that size (the original of a resized input, say); default: the last input's size.

        Examples:
            >>> import torch
            >>> st = SpatialTransformer(torch.nn.Flatten(), "affine", in_features=3 * 8 * 8)
            >>> _ = st(torch.rand(1, 3, 8, 8))  # the identity: the corner pixels read the corner pixels
            >>> st.output_corners()
            tensor([[[0., 0.],
                     [7., 0.],
                     [7., 7.],
                     [0., 7.]]])
        """
        size, params = self._last_call(input_size)
        corners = pixels.output_corners(self.transform, params, size, self._last_output_size(), self.align_corners)
        return corners.view(*self.last_params.shape[:-1], 4, 2)

    def region(self, input_size: Sequence[int] | None = None) -> Tensor:
        """Where the last call's outputs read: ``(N, 4, 2)`` corners of the whole region in pixel
        **extents** (the image spans ``[0, W] x [0, H]``; ``(N, k, 4, 2)`` for parallel
        transformers), as ``stn predict --boxes`` reports it (see :func:`stn.pixels.output_region`).

        Examples:
            >>> import torch
            >>> st = SpatialTransformer(torch.nn.Flatten(), "affine", in_features=3 * 8 * 8)
            >>> _ = st(torch.rand(1, 3, 8, 8))  # the identity reads the whole image
            >>> st.region(input_size=(100, 200))
            tensor([[[  0.,   0.],
                     [200.,   0.],
                     [200., 100.],
                     [  0., 100.]]])
        """
        size, params = self._last_call(input_size)
        corners = pixels.output_region(self.transform, params, size, self.align_corners)
        return corners.view(*self.last_params.shape[:-1], 4, 2)

    def regions(self, input_size: Sequence[int] | None = None) -> Tensor:
        """Deprecated: :meth:`output_corners` (pixel points), or :meth:`region` (pixel extents)."""
        import warnings

        warnings.warn(
            "SpatialTransformer.regions() is now output_corners() (pixel points); region() gives the area read "
            "(pixel extents)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.output_corners(input_size)

    def _last_call(self, input_size: Sequence[int] | None) -> tuple[tuple[int, int], Tensor]:
        """The input size asked for (default: the last input's) and the last parameters ``(M, P)``."""
        if self.transform.ndim != 2:
            raise ValueError(
                f"output_corners and region are for image families; {self.transform.name} works on volumes"
            )
        if self.last_params is None or self.last_input_size is None:
            raise ValueError("output_corners and region need a forward pass first")
        size = self.last_input_size if input_size is None else T.check_size(input_size, "input_size")
        params = self.last_params
        return size, params.to(torch.promote_types(params.dtype, torch.float32)).reshape(-1, self.transform.num_params)

    def _last_output_size(self) -> tuple[int, ...]:
        return self.output_size or T.check_size(self.last_input_size, "input size", self.transform.ndim)

    def extra_repr(self) -> str:
        return f"transform={self.transform!r}, output_size={self.output_size}"


class ParallelSpatialTransformers(SpatialTransformer):
    """``k`` spatial transformers on one input, outputs concatenated along channels (the
    paper's 2xST / 4xST).

    The localisation net is shared; ``fc_loc`` predicts ``k`` parameter sets, each starting at the
    identity. Input ``(N, C, H, W)``; output ``(N, k*C, H_out, W_out)``, transformer ``i``'s output
    in channels ``i*C:(i+1)*C``. :attr:`last_params` is ``(N, k, P)``.

    Args:
        k: the number of transformers.
        localization: the shared localisation net (as for :class:`SpatialTransformer`).
        transform: a family name or :class:`~stn.transforms.Transform`.
        output_size: ``(H_out, W_out)`` of each output; defaults to the input's size.
        **kwargs: the other arguments of :class:`SpatialTransformer` (``in_features``, ``hidden``,
            ``mode``, ...).

    Examples:
        >>> import torch
        >>> two = ParallelSpatialTransformers(2, torch.nn.Flatten(), "attention", (14, 14), in_features=28 * 28)
        >>> out = two(torch.rand(3, 1, 28, 28))
        >>> out.shape, two.last_params.shape
        (torch.Size([3, 2, 14, 14]), torch.Size([3, 2, 3]))
    """

    def __init__(
        self,
        k: int,
        localization: nn.Module,
        transform: str | T.Transform = "attention",
        output_size: Sequence[int] | None = None,
        **kwargs: object,
    ) -> None:
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        self.k = k  # read by _initial_params during SpatialTransformer.__init__
        super().__init__(localization, transform, output_size, **kwargs)

    def _initial_params(self) -> Tensor:
        return self.transform.identity(self.k).flatten()

    def predict(self, x: Tensor) -> Tensor:
        """Parameters ``(N, k, P)`` for an input ``(N, C, H, W)``."""
        return super().predict(x).view(x.shape[0], self.k, -1)

    def sample(self, x: Tensor, params: Tensor, output_size: Sequence[int] | None = None) -> Tensor:
        """Warp ``x`` ``(N, C, H, W)`` by each of ``params`` ``(N, k, P)``; ``(N, k*C, H', W')``."""
        n, c = x.shape[:2]
        # All k warps in one grid_sample: repeat the input k times along the batch.
        flat = x.unsqueeze(1).expand(n, self.k, *x.shape[1:]).reshape(n * self.k, *x.shape[1:])
        out = super().sample(flat, params.reshape(n * self.k, -1), output_size)
        return out.view(n, self.k * c, *out.shape[2:])

    def extra_repr(self) -> str:
        return f"k={self.k}, {super().extra_repr()}"


class RecurrentSpatialTransformer(SpatialTransformer):
    """The inverse-compositional spatial transformer (IC-STN; Lin & Lucey, CVPR 2017).

    One localisation net (with its ``fc_loc``) is applied ``steps`` times. Step ``i`` reads the
    *original* input warped by the current parameters (at the input's size; the first step reads
    the input itself), predicts an update ``Δ`` (``fc_loc`` starts at the identity), and composes
    it: the new matrix is ``M_θ @ M_Δ`` (output ``q`` reads ``M_θ(M_Δ(q))``), read back into
    parameters with the family's ``from_matrix``. The input is thus resampled from the original at
    every step, never from a resampled copy; the output is the original warped once by the last
    parameters, at ``output_size``.

    The family must be a matrix family with ``from_matrix``: ``translation``, ``attention``,
    ``similarity``, ``affine`` or ``projective`` (bounded options saturate at their bounds when
    read back).

    Args:
        localization: the localisation net, applied at every step (as for :class:`SpatialTransformer`).
        transform: a family name or :class:`~stn.transforms.Transform` with ``from_matrix``.
        output_size: ``(H_out, W_out)`` of the output; defaults to the input's size.
        steps: the number of steps.
        **kwargs: the other arguments of :class:`SpatialTransformer` (``in_features``, ``hidden``,
            ``mode``, ...).

    After each call, :attr:`last_params` holds the final ``(N, P)`` parameters and
    :attr:`last_step_params` the list of each step's composed parameters (the last is
    :attr:`last_params`), detached.

    Examples:
        >>> import torch
        >>> ic = RecurrentSpatialTransformer(torch.nn.Flatten(), "affine", steps=3, in_features=28 * 28)
        >>> x = torch.rand(2, 1, 28, 28)
        >>> torch.allclose(ic(x), x, atol=1e-5), len(ic.last_step_params)  # starts as the identity
        (True, 3)
    """

    def __init__(
        self,
        localization: nn.Module,
        transform: str | T.Transform = "affine",
        output_size: Sequence[int] | None = None,
        *,
        steps: int = 4,
        **kwargs: object,
    ) -> None:
        super().__init__(localization, transform, output_size, **kwargs)
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise ValueError(f"steps must be a positive int, got {steps!r}")
        if not isinstance(self.transform, T.MatrixTransform) or not hasattr(self.transform, "from_matrix"):
            raise ValueError(
                f"the recurrent transformer composes matrices and needs a family with from_matrix "
                f"(translation, attention, similarity, affine, projective), not {self.transform.name!r}"
            )
        self.steps = steps
        self.last_step_params: list[Tensor] = []

    def predict_steps(self, x: Tensor) -> list[Tensor]:
        """The composed parameters after each step, ``steps`` tensors ``(N, P)``, for input ``(N, C, H, W)``."""
        matrix: Tensor | None = None
        out: list[Tensor] = []
        for _ in range(self.steps):
            seen = x if matrix is None else self.sample(x, out[-1], x.shape[2:])
            matrix, params = self._compose(matrix, super().predict(seen))
            out.append(params)
        return out

    def _compose(self, matrix: Tensor | None, update: Tensor) -> tuple[Tensor, Tensor]:
        """The matrix so far composed with one update's, and its parameters."""
        step = self.transform.matrix(update)
        matrix = step if matrix is None else matrix @ step
        return matrix, self.transform.from_matrix(matrix)

    def predict(self, x: Tensor) -> Tensor:
        """The final parameters ``(N, P)``."""
        return self.predict_steps(x)[-1]

    def forward(self, x: Tensor) -> Tensor:
        steps = self.predict_steps(x)
        out = self.sample(x, steps[-1])
        self._observed(x, steps[-1], out, steps)
        return out

    def _observed(self, x: Tensor, params: Tensor, out: Tensor, steps: list[Tensor] | None = None) -> None:
        super()._observed(x, params, out, steps)
        if not torch.compiler.is_exporting() and not torch.jit.is_tracing():
            self.last_step_params = [p.detach() for p in steps or [params]]
            self.last_params = self.last_step_params[-1]

    def extra_repr(self) -> str:
        return f"steps={self.steps}, {super().extra_repr()}"


def conv_localization(
    input_shape: Sequence[int],
    channels: Sequence[int] = (8, 10),
    kernel_sizes: Sequence[int] = (7, 5),
) -> tuple[nn.Sequential, int]:
    """The usual localisation net: ``[Conv2d(k) -> MaxPool2d(2) -> ReLU]`` per entry of
    ``channels``, as in the PyTorch tutorial (defaults) and the seed CIFAR-10 model.

    Args:
        input_shape: ``(C, H, W)`` of the images it will see.
        channels: output channels of each convolution.
        kernel_sizes: kernel size of each convolution (as many as ``channels``).

    Returns:
        The net and its flattened output size ``F``, to pass as ``in_features``.

    Examples:
        >>> import torch
        >>> loc, features = conv_localization((3, 32, 32))
        >>> features, loc(torch.zeros(1, 3, 32, 32)).flatten(1).shape[1]
        (160, 160)
    """
    if len(input_shape) != 3 or any(int(v) <= 0 for v in input_shape):
        raise ValueError(f"input_shape must be (C, H, W) with positive sizes, got {tuple(input_shape)}")
    if len(channels) != len(kernel_sizes):
        raise ValueError("channels and kernel_sizes must have the same length")
    layers: list[nn.Module] = []
    c_in, h, w = (int(v) for v in input_shape)
    for c_out, k in zip(channels, kernel_sizes, strict=True):
        layers += [nn.Conv2d(c_in, c_out, kernel_size=k), nn.MaxPool2d(2, stride=2), nn.ReLU(True)]
        c_in, h, w = c_out, (h - k + 1) // 2, (w - k + 1) // 2
        if h < 1 or w < 1:
            raise ValueError(f"input {tuple(input_shape)} is too small for kernels {tuple(kernel_sizes)}")
    return nn.Sequential(*layers), c_in * h * w
