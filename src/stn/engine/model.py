"""The model a training config describes, on its device, and its compiled form."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from stn import models
from stn.data import Dataset
from stn.engine.config import TrainConfig
from stn.functional import normalized_fill
from stn.observe import transformers

__all__ = ["build_model", "channels_last_format", "compile_model", "model_options"]


def model_options(cfg: TrainConfig, dataset: Dataset) -> dict[str, Any]:
    """Factory options of ``cfg.model`` on ``dataset`` (saved in checkpoints to rebuild it)."""
    options: dict[str, Any] = dict(input_shape=dataset.input_shape, num_classes=dataset.num_classes, stn=cfg.stn)
    if cfg.stn:
        options["transform"] = cfg.transform
        if cfg.stn_fill == "black":
            options["fill"] = normalized_fill(dataset.mean, dataset.std)
        elif cfg.stn_fill == "border":
            options["padding_mode"] = "border"
    return {**options, **cfg.model_options}


def build_model(cfg: TrainConfig, dataset: Dataset, device: torch.device) -> nn.Module:
    """``cfg.model`` for ``dataset``, on ``device`` in the configured memory format, with the
    transformers' finiteness check off (it syncs every step; the loss is checked at log points)."""
    model = models.create(cfg.model, **model_options(cfg, dataset)).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=channels_last_format(dataset))
    for module in transformers(model):
        module.check_finite = False
    return model


def channels_last_format(dataset: Dataset) -> torch.memory_format:
    """``channels_last`` for images, ``channels_last_3d`` for volumes."""
    return torch.channels_last if dataset.train_images.dim() == 4 else torch.channels_last_3d


def compile_model(model: nn.Module, mode: str = "off") -> nn.Module:
    """``torch.compile(model)`` in ``mode`` (``default``, ``reduce-overhead``: CUDA graphs,
    ``max-autotune``), or ``model`` itself for ``off``.

    Shapes are static: the last, smaller batch of an epoch and evaluation get graphs of their
    own rather than turning every graph dynamic.
    """
    if mode == "off":
        return model
    return torch.compile(model, mode=None if mode == "default" else mode, dynamic=False)
