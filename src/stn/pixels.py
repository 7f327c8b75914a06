"""Pixel geometry: normalised coordinates as pixels (and voxels), in two named conventions (points and
extents).

The functions live in :mod:`stn.transforms.pixels` (they are part of the transforms' geometry);
this module is their short public name. See that module for the conventions.
"""

from stn.transforms.pixels import *  # noqa: F403
from stn.transforms.pixels import __all__  # noqa: F401
