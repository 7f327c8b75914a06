"""Model registry (timm-style): ``stn.models.create(name, **options)`` and ``stn.models.list_models()``.

Every factory takes the data's ``input_shape=(C, H, W)`` and ``num_classes``, ``stn=False`` for
the same network without its transformer (the baseline), ``transform=<family>`` with its
``transform_options``, and the kind of transformer layer: ``parallel=k`` (k transformers, the paper's
2xST / 4xST) or ``recurrent_steps=n`` (IC-STN; see :func:`stn.models.transformer.spatial_transformer`);
:func:`options` lists what else a model takes.
"""

import warnings

from stn.models.registry import check_options, create, describe, list_models, load_weights, options, register

# Importing the families registers their models.
from stn.models import paper, pstn, ptn, tutorial, volume  # noqa: F401  isort: skip

__all__ = ["check_options", "create", "describe", "list_models", "load_weights", "options", "register"]


def __getattr__(name: str):
    if name == "list":  # it shadowed the builtin; kept for one release
        warnings.warn("stn.models.list() is now stn.models.list_models()", DeprecationWarning, stacklevel=2)
        return list_models
    raise AttributeError(f"module 'stn.models' has no attribute {name!r}")
