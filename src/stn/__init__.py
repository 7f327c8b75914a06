"""stn: Spatial Transformer Networks for PyTorch (Jaderberg et al., 2015).

The coordinate convention shared by every part is stated once, in :mod:`stn.transforms`.
"""

from stn import functional, sampling, transforms
from stn.functional import normalized_fill, warp
from stn.layers import ParallelSpatialTransformers, RecurrentSpatialTransformer, SpatialTransformer, conv_localization
from stn.polar import PolarTransformer
from stn.probabilistic import ProbabilisticSpatialTransformer

__version__ = "0.1.0"

__all__ = [
    "ParallelSpatialTransformers",
    "PolarTransformer",
    "ProbabilisticSpatialTransformer",
    "RecurrentSpatialTransformer",
    "SpatialTransformer",
    "__version__",
    "conv_localization",
    "functional",
    "normalized_fill",
    "sampling",
    "transforms",
    "warp",
]

# The other parts load on first use (``stn.models.create(...)`` after ``import stn``), so that
# ``import stn`` stays light and never imports an optional extra (onnx, tensorboard).
_LAZY = ("data", "engine", "experiments", "export", "files", "inference", "layers", "models", "normalization")
_LAZY += ("observe", "predict", "registration", "viz")


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"stn.{name}")
    raise AttributeError(f"module 'stn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
