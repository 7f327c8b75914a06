"""The loop the engine is measured against: the PyTorch STN tutorial's, run on CIFAR-10.

Data are served as ``torchvision.datasets.CIFAR10`` serves them (an ``(N, H, W, C)`` uint8 array;
per sample ``PIL.Image.fromarray``, ``ToTensor`` and ``Normalize``) by a ``DataLoader`` with the
tutorial's four workers; the model is the engine's, trained with plain SGD on ``nll_loss``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import chain, count
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader
from torchvision import transforms

from stn import data as stn_data
from stn import models
from stn.engine import TrainConfig


class CIFAR10Like(torch.utils.data.Dataset):
    """Images held and served as ``torchvision.datasets.CIFAR10`` holds and serves them."""

    def __init__(self, images: Tensor, labels: Tensor, transform: Callable[[Image.Image], Any]) -> None:
        self.data = images.permute(0, 2, 3, 1).contiguous().numpy()  # (N, H, W, C), as CIFAR10.data
        self.targets = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        img, target = self.data[index], self.targets[index]
        img = Image.fromarray(img if img.shape[-1] == 3 else img[..., 0])
        return self.transform(img), target


class TutorialLoop:
    """The tutorial's model, optimizer, loaders, training step and test loop for ``cfg``'s
    model, batch sizes and learning rate."""

    def __init__(self, cfg: TrainConfig, dataset: stn_data.Dataset, device: torch.device, workers: int = 4) -> None:
        self.device = device
        torch.manual_seed(cfg.seed)
        model = models.create(cfg.model, input_shape=dataset.input_shape, num_classes=dataset.num_classes)
        for module in model.modules():  # the tutorial's network checks nothing
            if hasattr(module, "check_finite"):
                module.check_finite = False
        self.model = model.to(device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg.lr)
        transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(dataset.mean, dataset.std)])
        self.train_loader = DataLoader(
            CIFAR10Like(dataset.train_images, dataset.train_labels, transform),
            batch_size=cfg.batch_size,
            shuffle=True,
            num_workers=workers,
        )
        self.test_loader = DataLoader(
            CIFAR10Like(dataset.test_images, dataset.test_labels, transform),
            batch_size=cfg.test_batch_size,
            num_workers=workers,
        )

    def batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        """Training batches, epoch after epoch, as the loader gives them (on the host)."""
        return chain.from_iterable(self.train_loader for _ in count())

    def step(self, data: Tensor, target: Tensor) -> None:
        self.model.train()
        data, target = data.to(self.device), target.to(self.device)
        self.optimizer.zero_grad()
        output = self.model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        self.optimizer.step()

    @torch.no_grad()
    def test(self) -> float:
        """The tutorial's test loop; returns the accuracy in percent."""
        self.model.eval()
        correct = 0
        for data, target in self.test_loader:
            data, target = data.to(self.device), target.to(self.device)
            output = self.model(data)
            F.nll_loss(output, target, reduction="sum").item()
            pred = output.max(1, keepdim=True)[1]
            correct += pred.eq(target.view_as(pred)).sum().item()
        return 100.0 * correct / len(self.test_loader.dataset)
