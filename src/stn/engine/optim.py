"""The optimizer and the learning-rate schedule of a run."""

from __future__ import annotations

import math

import torch
from torch import nn

from stn.engine.config import TrainConfig
from stn.observe import transformers

__all__ = ["lr_factor", "make_optimizer", "make_scheduler"]


def lr_factor(schedule: str, step: int, total: int, warmup: int) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` of ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "onecycle":
        return max(0.0, 1.0 - progress)
    return 1.0


def make_optimizer(cfg: TrainConfig, model: nn.Module, device: torch.device) -> torch.optim.Optimizer:
    """The configured optimizer, fused kernels where the device has them.

    Weight decay applies to weights only (not biases, which include the transformer's identity);
    the spatial transformers' parameters learn at ``stn_lr_scale`` times the learning rate.
    """
    in_transformer = {id(p) for m in transformers(model) for p in m.parameters()}
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}  # (lr scale, decayed) -> parameters
    for p in model.parameters():
        if p.requires_grad:
            scale = cfg.stn_lr_scale if id(p) in in_transformer else 1.0
            groups.setdefault((scale, p.dim() > 1), []).append(p)
    param_groups = [
        {"params": params, "lr": cfg.lr * scale, "weight_decay": cfg.weight_decay if decayed else 0.0}
        for (scale, decayed), params in groups.items()
    ]
    fused = {"fused": True} if device.type in ("cuda", "cpu") else {"foreach": True}
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(param_groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, **fused)
    cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return cls(param_groups, lr=cfg.lr, **fused)


def make_scheduler(
    cfg: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """The configured learning-rate schedule, stepped once per optimizer step."""
    total, warmup = cfg.epochs * steps_per_epoch, round(cfg.warmup_epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(cfg.schedule, step, total, warmup))
