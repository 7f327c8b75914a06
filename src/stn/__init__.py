"""stn: Spatial Transformer Networks for PyTorch (Jaderberg et al., 2015).

The coordinate convention shared by every part is stated once, in :mod:`stn.transforms`.
"""

from stn import functional, sampling, transforms
from stn.functional import normalized_fill, warp
from stn.layers import ParallelSpatialTransformers, RecurrentSpatialTransformer, SpatialTransformer, conv_localization

__version__ = "0.1.0"

__all__ = [
    "ParallelSpatialTransformers",
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
