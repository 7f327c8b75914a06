"""Deprecated: this module is now :mod:`stn.engine.statistics` (kept for one release)."""

import warnings

from stn.engine.statistics import *  # noqa: F403
from stn.engine.statistics import __all__  # noqa: F401

warnings.warn("stn.engine.diagnostics is now stn.engine.statistics", DeprecationWarning, stacklevel=2)
