"""Unsupervised registration with spatial transformers: a network aligns a moving volume (or image)
to a fixed one, trained on image similarity (local NCC or MSE), the field's smoothness and,
optionally, Dice on label maps; the folding of the map (% of voxels with ``det J <= 0``) is measured
every epoch. ``stn register`` runs it; :func:`register` is the library form.

The transforms are stn's families (``field3d`` dense or diffeomorphic, or a matrix family such as
``affine3d``), in the convention of :mod:`stn.transforms`.
"""

from stn.registration.config import RegisterConfig
from stn.registration.data import RegistrationData, load_data
from stn.registration.losses import dice_loss, dice_score, folding, local_ncc, mse, smoothness
from stn.registration.network import RegistrationNet, UNet
from stn.registration.train import Registration, evaluate, load_registration, register, resume_config

__all__ = [
    "RegisterConfig",
    "Registration",
    "RegistrationData",
    "RegistrationNet",
    "UNet",
    "dice_loss",
    "dice_score",
    "evaluate",
    "folding",
    "load_data",
    "load_registration",
    "local_ncc",
    "mse",
    "register",
    "resume_config",
    "smoothness",
]
