"""Deprecated: this module is now :mod:`stn.viz.tensorboard` (kept for one release)."""

import warnings

from stn.viz.tensorboard import *  # noqa: F403
from stn.viz.tensorboard import __all__  # noqa: F401

warnings.warn("stn.viz.board is now stn.viz.tensorboard", DeprecationWarning, stacklevel=2)
