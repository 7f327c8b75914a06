"""Deprecated: this module is now :mod:`stn.viz.statistics` (kept for one release)."""

import warnings

from stn.viz.statistics import *  # noqa: F403
from stn.viz.statistics import __all__  # noqa: F401

warnings.warn("stn.viz.diagnostics is now stn.viz.statistics", DeprecationWarning, stacklevel=2)
