"""Model registry (timm-style): ``stn.models.create(name, **options)`` and ``stn.models.list()``.

Every factory takes the data's ``input_shape=(C, H, W)`` and ``num_classes``, ``stn=False`` for
the same network without its transformer (the baseline), and ``transform=<family>``.
"""

from stn.models.registry import create, describe, list_models, register

# Importing the families registers their models.
from stn.models import paper, tutorial, volume  # noqa: F401  isort: skip

list = list_models

__all__ = ["create", "describe", "list", "list_models", "register"]
