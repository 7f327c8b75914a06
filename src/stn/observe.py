"""Observing spatial transformers: one tap, and what is built on it.

:func:`tap` is the one way to see what a model's transformers do: while it is on, every call of
every :class:`~stn.layers.SpatialTransformer` of the model (parallel and recurrent ones included)
is recorded as a :class:`TransformerCall`: the image or feature map it read, the parameters it
predicted and what it made. It works in eager mode and while ``torch.export`` traces the model
(the calls then hold the traced tensors). Everything that observes uses it: :func:`observe` (the
pictures of snapshots, reports and ``stn predict``), :class:`stn.inference.InferenceGraph` (the
parameters and outputs of exported graphs) and the transformer statistics
(:func:`stn.engine.statistics.measure`).

A model's transformers are its :class:`~stn.layers.SpatialTransformer` submodules, in module
order; a model whose transformer is not a submodule (one that keeps the seed's own layout, say)
names them with a ``spatial_transformers()`` method.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from stn import transforms as T
from stn.layers import RecurrentSpatialTransformer, SpatialTransformer
from stn.normalization import Normalizer

__all__ = [
    "Tap",
    "TransformerCall",
    "TransformerView",
    "first_transformer",
    "fixed_batch",
    "observe",
    "tap",
    "transformers",
]


@dataclass
class TransformerCall:
    """One call of a spatial transformer.

    Attributes:
        module: the transformer.
        input: what it read, ``(N, C, H, W)`` (the image, or a feature map; volumes
            ``(N, C, D, H, W)``).
        params: the parameters it predicted (and sampled with), ``(N, P)`` or ``(N, k, P)`` for
            parallel transformers; live tensors (they carry gradients, or a traced graph).
        output: what it made, ``(N, k*C, H_out, W_out)`` (volumes ``(N, k*C, D_out, H_out, W_out)``).
        steps: a recurrent transformer's composed parameters after each step (the last is
            ``params``); ``None`` for the others.

    Examples:
        >>> import stn
        >>> model = stn.models.create("paper-cnn", recurrent_steps=2)
        >>> with tap(model) as seen:
        ...     _ = model(torch.zeros(1, 1, 42, 42))
        >>> call = seen.calls[0]
        >>> call.input_size, len(call.steps), tuple(call.steps[-1].shape)
        ((42, 42), 2, (1, 6))
    """

    module: SpatialTransformer
    input: Tensor
    params: Tensor
    output: Tensor
    steps: list[Tensor] | None = None

    @property
    def input_size(self) -> tuple[int, ...]:
        """``(H, W)`` of what it read; ``(D, H, W)`` for a volume."""
        return tuple(int(n) for n in self.input.shape[2:])

    @property
    def output_size(self) -> tuple[int, ...]:
        """``(H, W)`` of what it made; ``(D, H, W)`` for a volume."""
        return tuple(int(n) for n in self.output.shape[2:])


class Tap:
    """What the tapped transformers did while :func:`tap` was on: :attr:`calls`, in order
    (:class:`TransformerCall`); made by :func:`tap`.

    Args:
        watched: the transformers whose calls are recorded.
        stop: :meth:`run` cuts a forward pass short once every watched transformer has run.

    Examples:
        >>> import stn
        >>> model = stn.models.create("tutorial-mnist")
        >>> with tap(model, stop=True) as seen:
        ...     seen.run(model, torch.zeros(3, 1, 28, 28))  # stops once the transformer has run
        >>> [tuple(call.output.shape) for call in seen.of(model.stn)]
        [(3, 1, 28, 28)]
    """

    class Done(Exception):
        """Raised by a tap with ``stop=True`` once every tapped transformer has run."""

    def __init__(self, watched: Sequence[SpatialTransformer], stop: bool = False) -> None:
        self.watched = list(watched)
        self.stop = stop
        self.calls: list[TransformerCall] = []
        self._ran: set[int] = set()

    def __call__(
        self, module: SpatialTransformer, x: Tensor, params: Tensor, out: Tensor, steps: list[Tensor] | None
    ) -> None:
        self.calls.append(TransformerCall(module, x, params, out, steps))
        self._ran.add(id(module))
        if self.stop and len(self._ran) == len(self.watched):
            raise Tap.Done

    def of(self, module: SpatialTransformer) -> list[TransformerCall]:
        """The calls of ``module``, in order.

        Examples:
            >>> import stn
            >>> model = stn.models.create("tutorial-mnist")
            >>> with tap(model) as seen:
            ...     _ = model(torch.zeros(1, 1, 28, 28))
            ...     _ = model(torch.zeros(2, 1, 28, 28))
            >>> [call.params.shape[0] for call in seen.of(model.stn)]
            [1, 2]
        """
        return [call for call in self.calls if call.module is module]

    def run(self, model: nn.Module, x: Tensor) -> None:
        """``model(x)``; with ``stop``, cut short once every tapped transformer has run (the rest
        of the model is not computed).

        Examples:
            >>> import stn
            >>> model = stn.models.create("tutorial-mnist")
            >>> with tap(model, stop=True) as seen:
            ...     seen.run(model, torch.zeros(2, 1, 28, 28))
            >>> len(seen.calls)
            1
        """
        self._ran.clear()
        with contextlib.suppress(Tap.Done):
            model(x)


def transformers(model: nn.Module) -> list[SpatialTransformer]:
    """The spatial transformers of ``model``: what its ``spatial_transformers()`` returns, else its
    :class:`~stn.layers.SpatialTransformer` submodules in module order (nested ones not twice).

    Args:
        model: any module.

    Examples:
        >>> import stn
        >>> [type(st).__name__ for st in transformers(stn.models.create("paper-cnn", parallel=2))]
        ['ParallelSpatialTransformers']
        >>> transformers(stn.models.create("paper-cnn", stn=False))
        []
    """
    named = getattr(model, "spatial_transformers", None)
    if callable(named):
        return list(named())
    found: list[SpatialTransformer] = []
    for module in model.modules():
        if isinstance(module, SpatialTransformer):
            found.append(module)
        elif module is not model and callable(getattr(module, "spatial_transformers", None)):
            found += module.spatial_transformers()
    return list(dict.fromkeys(found))


def first_transformer(model: nn.Module) -> SpatialTransformer | None:
    """The first of :func:`transformers` (``None`` if ``model`` has none).

    Args:
        model: any module.

    Examples:
        >>> import stn
        >>> model = stn.models.create("tutorial-mnist")
        >>> first_transformer(model) is model.stn, first_transformer(torch.nn.Linear(2, 2))
        (True, None)
    """
    found = transformers(model)
    return found[0] if found else None


@contextlib.contextmanager
def tap(model: nn.Module, *, stop: bool = False) -> Iterator[Tap]:
    """Record every call of ``model``'s spatial transformers (:func:`transformers`) while the
    block runs.

    Args:
        model: any module holding spatial transformers.
        stop: :meth:`Tap.run` cuts a forward pass short once every transformer has run.

    Examples:
        >>> import torch, stn
        >>> model = stn.models.create("tutorial-mnist")
        >>> with tap(model) as seen:
        ...     _ = model(torch.zeros(2, 1, 28, 28))
        >>> call = seen.calls[0]
        >>> tuple(call.params.shape), call.input_size, call.output_size
        ((2, 6), (28, 28), (28, 28))
    """
    recorder = Tap(transformers(model), stop)
    for module in recorder.watched:
        module._taps.append(recorder)
    try:
        yield recorder
    finally:
        for module in recorder.watched:
            module._taps.remove(recorder)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode without gradients; every submodule's mode restored after."""
    modes = {m: m.training for m in model.modules()}
    try:
        with torch.no_grad():
            yield model.eval()
    finally:
        for module, training in modes.items():
            module.training = training


@dataclass
class TransformerView:
    """One batch of images (or volumes) seen through a spatial transformer.

    Attributes:
        images: the raw inputs, uint8 ``(N, C, H, W)``; volumes ``(N, C, D, H, W)``.
        transform: the transformer's family.
        params: its parameters for each image, ``(N, k, P)``: ``k = 1`` for a
            :class:`~stn.layers.SpatialTransformer`, ``k`` for
            :class:`~stn.layers.ParallelSpatialTransformers`, the steps of a
            :class:`~stn.layers.RecurrentSpatialTransformer`. ``(N, P)`` is taken as ``k = 1``.
        outputs: what it made of them, uint8 ``(N, k, C, h, w)`` (volumes ``(N, k, C, d, h, w)``),
            de-normalised; ``None`` when it works on a feature map rather than on the image.
        align_corners: the transformer's sampling convention (see :mod:`stn.transforms`).

    Examples:
        >>> from stn import transforms as T
        >>> images = torch.zeros(4, 1, 28, 28, dtype=torch.uint8)
        >>> view = TransformerView(images, T.get("affine"), T.get("affine").identity(4))
        >>> view.k, tuple(view.params.shape)  # (N, P) is taken as one transformer
        (1, (4, 1, 6))
    """

    images: Tensor
    transform: T.Transform
    params: Tensor
    outputs: Tensor | None = None
    align_corners: bool = False

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() not in (4, 5):
            raise ValueError(
                "images must be uint8 (N, C, H, W) or volumes (N, C, D, H, W), "
                f"got {self.images.dtype} {tuple(self.images.shape)}"
            )
        n = len(self.images)
        if self.params.dim() == 2:
            self.params = self.params.unsqueeze(1)
        if self.params.dim() != 3 or self.params.shape[0] != n:
            raise ValueError(f"params must be (N, P) or (N, k, P) for {n} images, got {tuple(self.params.shape)}")
        dims = self.images.dim() + 1
        if self.outputs is not None and (self.outputs.dim() != dims or self.outputs.shape[:2] != self.params.shape[:2]):
            layout = "(N, k, C, h, w)" if dims == 5 else "(N, k, C, d, h, w)"
            expected = tuple(self.params.shape[:2])
            raise ValueError(f"outputs must be {layout} with (N, k) = {expected}, got {tuple(self.outputs.shape)}")

    @property
    def k(self) -> int:
        """Number of transformers (parameter sets per image)."""
        return self.params.shape[1]

    @property
    def volumes(self) -> bool:
        """Whether the inputs are volumes ``(N, C, D, H, W)``."""
        return self.images.dim() == 5


def fixed_batch(labels: Tensor, count: int) -> Tensor:
    """Indices of ``count`` images taking the classes in turn: class 0's first image, class 1's
    first, ..., then each class's second image, ...

    Args:
        labels: ``(N,)`` int class labels.
        count: how many indices (fewer if there are fewer images).

    Examples:
        >>> fixed_batch(torch.tensor([0, 0, 1, 1, 2]), 4).tolist()
        [0, 2, 4, 1]
    """
    labels = labels.cpu()
    per_class = [torch.nonzero(labels == c).flatten().tolist() for c in range(int(labels.max()) + 1)]
    picked: list[int] = []
    for rank in range(max(len(p) for p in per_class)):
        picked += [p[rank] for p in per_class if rank < len(p)]
        if len(picked) >= count:
            break
    return torch.tensor(picked[:count], dtype=torch.long)


def reads_image(call: TransformerCall, x: Tensor) -> bool:
    """Whether ``call`` read the model's input ``x`` itself (not a feature map) and gave pictures:
    as many channels per transformer as the image has."""
    k = call.params.shape[1] if call.params.dim() == 3 else 1
    return call.input.shape == x.shape and bool(torch.equal(call.input, x)) and call.output.shape[1] == k * x.shape[1]


def observe(model: nn.Module, images: Tensor, mean: Sequence[float], std: Sequence[float]) -> TransformerView | None:
    """Run uint8 ``images`` ``(N, C, H, W)`` (or volumes ``(N, C, D, H, W)``) through ``model`` in
    eval mode, normalised with ``mean`` and ``std``, and keep what its first spatial transformer
    did; ``None`` if it has none.

    The model's mode (train or eval) is restored. The outputs are pictures only when the
    transformer read the images themselves (not a feature map) and gave as many channels per
    transformer; the view's images are on the CPU. A
    :class:`~stn.layers.RecurrentSpatialTransformer` is shown step by step, its steps in place of
    parallel transformers: ``params`` ``(N, steps, P)``, ``outputs`` ``(N, steps, C, h, w)``. A
    sampling transformer (:class:`~stn.probabilistic.ProbabilisticSpatialTransformer`) is shown by
    what it reports to the tap: its mean parameters and, in eval mode, the mean warp.

    Args:
        model: a module holding spatial transformers.
        images: uint8 ``(N, C, H, W)``, or volumes ``(N, C, D, H, W)``.
        mean: the per-channel means of the model's normalisation, on ``[0, 1]``.
        std: its per-channel standard deviations.

    Examples:
        >>> import stn
        >>> model = stn.models.create("tutorial-mnist")
        >>> view = observe(model, torch.zeros(4, 1, 28, 28, dtype=torch.uint8), [0.13], [0.31])
        >>> tuple(view.params.shape), tuple(view.outputs.shape)
        ((4, 1, 6), (4, 1, 1, 28, 28))
    """
    st = first_transformer(model)
    if st is None:
        return None
    normalizer = Normalizer(mean, std)
    device = next(model.parameters(), torch.empty(0)).device
    x = normalizer(images.to(device))
    with eval_mode(model), tap(model) as seen:
        model(x)
    calls = seen.of(st)
    if not calls:
        raise ValueError(f"the model's first spatial transformer ({type(st).__name__}) was not called in its forward")
    call = calls[0]
    pictures = reads_image(call, x)
    if isinstance(st, RecurrentSpatialTransformer):  # every step, as k transformers
        params = torch.stack(call.steps, 1).float().cpu()
        outputs = None
        if pictures:
            with torch.no_grad():
                outputs = torch.stack([normalizer.invert(st.sample(x, p)) for p in call.steps], 1)
        return TransformerView(images.cpu(), st.transform, params, outputs, st.align_corners)
    params = call.params.float().cpu()
    k = params.shape[1] if params.dim() == 3 else 1
    out, n, c = call.output, *x.shape[:2]
    outputs = None
    if pictures:
        outputs = normalizer.invert(out.reshape(n * k, c, *out.shape[2:])).view(n, k, c, *out.shape[2:])
    return TransformerView(images.cpu(), st.transform, params, outputs, st.align_corners)
