"""The engine's fast paths compute the same function as the plain ones: channels_last, fused
optimizers and torch.compile change the speed of a training step, not its result; augmentation
is per sample and seeded; the fast recipe trains."""

from __future__ import annotations

import copy
import csv
import math

import pytest
import torch
import torch.nn.functional as F

from stn import data as stn_data
from stn.engine import RECIPES, DeviceData, evaluate, from_recipe, train
from stn.engine.augment import random_crop, random_flip
from stn.engine.loop import train_step
from stn.engine.model import build_model, compile_model
from stn.engine.optim import make_optimizer
from stn.engine.precision import autocast_dtype
from tests.conftest import amp_tolerance


@pytest.fixture
def cifar_like() -> stn_data.Dataset:
    """32 training and 20 test images of CIFAR-10's shape, random."""
    g = torch.Generator().manual_seed(0)
    return stn_data.Dataset(
        "random",
        torch.randint(0, 256, (32, 3, 32, 32), generator=g, dtype=torch.uint8),
        torch.randint(0, 10, (32,), generator=g),
        torch.randint(0, 256, (20, 3, 32, 32), generator=g, dtype=torch.uint8),
        torch.randint(0, 10, (20,), generator=g),
        classes=[str(i) for i in range(10)],
    )


def one_step(cfg, dataset, compile: str = "off"):
    """Loss, gradients and updated parameters of one engine step of ``cfg`` on a fixed batch."""
    device = torch.device("cpu")
    torch.manual_seed(0)
    model = build_model(cfg, dataset, device)
    optimizer = make_optimizer(cfg, model, device)
    data = DeviceData(dataset, device, cfg.channels_last)
    images, labels = data.normalize(dataset.train_images[:8]), dataset.train_labels[:8]
    torch.manual_seed(1)  # the same dropout masks
    dtype = autocast_dtype(cfg.amp, device)
    loss = train_step(compile_model(model, compile), optimizer, images, labels, dtype, cfg.label_smoothing)
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    params = {name: p.detach().clone() for name, p in model.named_parameters()}
    return loss, grads, params


def assert_same_step(a, b, **tolerance) -> None:
    torch.testing.assert_close(a[0], b[0], **tolerance)
    for part in (a[1], b[1]), (a[2], b[2]):
        assert part[0].keys() == part[1].keys()
        for name in part[0]:
            torch.testing.assert_close(part[0][name], part[1][name], **tolerance, msg=lambda m, n=name: f"{n}: {m}")


def step_tolerance(amp: str) -> dict[str, float]:
    """Two kernels (oneDNN's blocked layouts against plain ones) of one step: fp32 to 1e-4 relative,
    bf16 autocast to its own precision."""
    return dict(rtol=1e-4, atol=1e-5) if amp == "off" else amp_tolerance(amp)


@pytest.mark.parametrize("recipe", ["seed", "fast"])
def test_channels_last_is_the_same_step(cifar_like, recipe, amp):
    fast = one_step(from_recipe(recipe, channels_last=True, amp=amp), cifar_like)
    plain = one_step(from_recipe(recipe, channels_last=False, amp=amp), cifar_like)
    assert_same_step(fast, plain, **step_tolerance(amp))


def test_the_engine_step_is_the_tutorials(cifar_like):
    """channels_last, fused SGD and cross-entropy on log-probabilities give the tutorial's
    contiguous model, plain SGD and nll_loss."""
    fast = one_step(from_recipe("seed", amp="off"), cifar_like)  # the tutorial is fp32
    torch.manual_seed(0)
    model = build_model(from_recipe("seed", channels_last=False), cifar_like, torch.device("cpu"))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    images = DeviceData(cifar_like, torch.device("cpu")).normalize(cifar_like.train_images[:8])
    torch.manual_seed(1)
    optimizer.zero_grad()
    loss = F.nll_loss(model(images), cifar_like.train_labels[:8])
    loss.backward()
    optimizer.step()
    tutorial = (
        loss.detach(),
        {name: p.grad for name, p in model.named_parameters()},
        {name: p.detach() for name, p in model.named_parameters()},
    )
    assert_same_step(fast, tutorial, **step_tolerance("off"))


@pytest.mark.parametrize(
    "settings",
    [
        dict(optimizer="sgd"),
        dict(optimizer="sgd", momentum=0.9, nesterov=True, weight_decay=5e-4),
        dict(optimizer="adam", lr=1e-3, weight_decay=1e-4),
        dict(optimizer="adamw", lr=1e-3, weight_decay=0.05),
    ],
    ids=["sgd", "sgd-nesterov", "adam", "adamw"],
)
def test_fused_optimizers_step_as_the_for_loop(cifar_like, settings):
    cfg = from_recipe("seed", **settings)
    torch.manual_seed(0)
    model = build_model(cfg, cifar_like, torch.device("cpu"))
    reference = copy.deepcopy(model)
    fused = make_optimizer(cfg, model, torch.device("cpu"))
    plain = make_optimizer(cfg, reference, torch.device("cpu"))
    assert all(group["fused"] for group in fused.param_groups)
    for group in plain.param_groups:  # the same optimizer on its for-loop implementation
        group.update(fused=None, foreach=False)
    for _ in range(3):
        for p, q in zip(model.parameters(), reference.parameters(), strict=True):
            p.grad = torch.randn_like(p)
            q.grad = p.grad.clone()
        fused.step()
        plain.step()
    for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.slow  # torch.compile takes about a minute
def test_compiled_step_is_the_eager_step(cifar_like, amp):
    # Inductor's own config patch: monkeypatch's undo deletes the setting from torch's config module,
    # which breaks every later torch.export in the process.
    cfg = from_recipe("seed", amp=amp)
    tolerance = dict(rtol=1e-4, atol=1e-4) if amp == "off" else amp_tolerance(amp)
    import torch._inductor.config

    with torch._inductor.config.patch(fallback_random=True):  # eager's dropout masks
        compiled = one_step(cfg, cifar_like, compile="default")
    assert_same_step(compiled, one_step(cfg, cifar_like), **tolerance)
    assert torch._inductor.config.fallback_random is False


def test_evaluate_counts_per_class(cifar_like):
    device = torch.device("cpu")
    torch.manual_seed(0)
    model = build_model(from_recipe("seed"), cifar_like, device)
    data = DeviceData(cifar_like, device, channels_last=True)
    result = evaluate(model, data, batch_size=6)
    with torch.no_grad():
        output = model(data.normalize(cifar_like.test_images))
    labels = cifar_like.test_labels
    hits = labels[output.argmax(1) == labels]
    assert result.class_correct == torch.bincount(hits, minlength=10).tolist()
    assert result.class_total == torch.bincount(labels, minlength=10).tolist()
    assert result.correct == len(hits) and result.total == 20
    assert math.isclose(result.loss, F.nll_loss(output, labels).item(), rel_tol=1e-5)


def test_flip_tta_averages_the_probabilities_of_image_and_mirror(cifar_like):
    torch.manual_seed(0)
    model = build_model(from_recipe("seed", stn_fill="black"), cifar_like, torch.device("cpu"))
    data = DeviceData(cifar_like, torch.device("cpu"))
    result = evaluate(model, data, batch_size=8, flip_tta=True)
    with torch.no_grad():
        x = data.normalize(cifar_like.test_images)
        probs = (model(x).exp() + model(x.flip(-1)).exp()) / 2
    labels = cifar_like.test_labels
    expected = F.nll_loss(probs.log(), labels, reduction="sum").item() / len(labels)
    assert result.loss == pytest.approx(expected, rel=1e-5)
    assert result.correct == int((probs.argmax(1) == labels).sum())
    assert result.loss != pytest.approx(evaluate(model, data, batch_size=8).loss, rel=1e-5)


def numbered(n: int, size: int = 8) -> torch.Tensor:
    """``(n, 2, size, size)`` uint8 images whose pixels say where they are (1-based), so any crop
    or mirror of them can be recognised."""
    rows = torch.arange(size).view(size, 1).expand(size, size)
    cols = torch.arange(size).view(1, size).expand(size, size)
    return (torch.stack((rows + 1, cols + 1)) * torch.ones(n, 1, 1, 1, dtype=torch.long)).to(torch.uint8)


def crop_offset(original: torch.Tensor, crop: torch.Tensor, padding: int) -> tuple[int, int]:
    """The offset ``(dy, dx)`` in ``[0, 2 * padding]`` at which ``crop`` was cut from ``original``
    zero-padded by ``padding``; fails if there is none."""
    h, w = original.shape[-2:]
    padded = F.pad(original, (padding,) * 4)
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            if torch.equal(padded[..., dy : dy + h, dx : dx + w], crop):
                return dy, dx
    raise AssertionError("not a crop of the padded image")


def test_random_crop_cuts_each_image_at_its_own_offset():
    images = numbered(64)
    out = random_crop(images, 3, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    offsets = [crop_offset(images[i], out[i], 3) for i in range(64)]
    assert len(set(offsets)) > 20  # 49 possible offsets, drawn per sample
    assert {dy for dy, _ in offsets} == set(range(7)) and {dx for _, dx in offsets} == set(range(7))
    assert torch.equal(random_crop(images, 0, torch.Generator()), images)


def test_random_flip_mirrors_some_images_and_keeps_the_rest():
    images = numbered(64)
    out = random_flip(images, torch.Generator().manual_seed(0))
    flipped = [bool(torch.equal(out[i], images[i].flip(-1))) for i in range(64)]
    kept = [bool(torch.equal(out[i], images[i])) for i in range(64)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))
    assert 10 < sum(flipped) < 54
    assert torch.equal(random_flip(images, torch.Generator(), p=0.0), images)
    assert torch.equal(random_flip(images, torch.Generator(), p=1.0), images.flip(-1))


def test_augmentation_is_seeded():
    images = numbered(32)

    def augment(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return random_flip(random_crop(images, 4, g), g)

    assert torch.equal(augment(5), augment(5))
    assert not torch.equal(augment(5), augment(6))


@pytest.mark.parametrize("channels_last", [False, True])
def test_an_epoch_of_batches_is_the_training_set_once(cifar_like, channels_last):
    data = DeviceData(cifar_like, torch.device("cpu"), channels_last)
    batches = list(data.train_batches(10, torch.Generator().manual_seed(0), augment="crop-flip"))
    assert [len(labels) for _, labels in batches] == [10, 10, 10, 2] and data.num_batches(10) == 4
    assert all(x.dtype == torch.float32 and x.shape[1:] == (3, 32, 32) for x, _ in batches)
    assert all(x.is_contiguous(memory_format=torch.channels_last) == channels_last for x, _ in batches)
    seen = torch.cat([labels for _, labels in batches])
    assert torch.equal(seen.sort().values, cifar_like.train_labels.sort().values)
    kept = list(data.train_batches(10, torch.Generator().manual_seed(0), drop_last=True))
    assert [len(labels) for _, labels in kept] == [10, 10, 10] and data.num_batches(10, drop_last=True) == 3

    x = data.normalize(cifar_like.test_images[:4])
    mean, std = torch.tensor(cifar_like.mean).view(1, 3, 1, 1), torch.tensor(cifar_like.std).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (cifar_like.test_images[:4] / 255 - mean) / std)


def test_the_fast_recipe_trains(bars, tmp_path):
    cfg = from_recipe(
        "fast",
        model="tutorial-mnist",
        dataset="folder",
        data_root=str(bars),
        epochs=4,
        amp="off",
        device="cpu",
        batch_size=16,
        test_batch_size=16,
        log_interval=2,
        threads=1,
        snapshot_images=2,
    )
    preset = {
        key: getattr(cfg, key)
        for key in RECIPES["fast"]
        if key not in ("batch_size", "test_batch_size", "log_interval")
    }
    assert cfg.recipe == "fast" and preset == {k: v for k, v in RECIPES["fast"].items() if k in preset}
    assert cfg.augment != "none" and cfg.momentum > 0 and cfg.flip_tta  # what makes the recipe fast
    summary = train(cfg, tmp_path / "run")
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").read_text().splitlines()))
    assert [row["epoch"] for row in rows] == ["1", "2", "3", "4"]
    assert all(math.isfinite(float(row["train_loss"])) for row in rows)
    # Bars are easy: it learns them (it reaches 100% here; chance is 50%).
    assert summary["recipe"] == "fast" and summary["best_accuracy"] >= 90


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_steps_do_not_wait_for_the_gpu(cifar_like):
    cfg = from_recipe("fast")
    device = torch.device("cuda")
    model = build_model(cfg, cifar_like, device)
    optimizer = make_optimizer(cfg, model, device)
    data = DeviceData(cifar_like, device, cfg.channels_last)
    batches = data.train_batches(8, torch.Generator(device=device).manual_seed(0), cfg.augment, drop_last=True)
    images, labels = next(batches)
    train_step(model, optimizer, images, labels, None, cfg.label_smoothing)  # first call: lazy setup may sync
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for images, labels in batches:
            train_step(model, optimizer, images, labels, None, cfg.label_smoothing)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_transformer_learning_rate_scale_and_weight_decay_groups(cifar_like):
    model = build_model(from_recipe("seed"), cifar_like, torch.device("cpu"))
    st = {id(p) for p in model.stn.parameters()}
    plain = make_optimizer(from_recipe("seed", weight_decay=1e-3), model, torch.device("cpu"))
    assert len(plain.param_groups) == 2 and {g["lr"] for g in plain.param_groups} == {0.01}
    assert all((g["weight_decay"] > 0) == (g["params"][0].dim() > 1) for g in plain.param_groups)

    scaled = make_optimizer(from_recipe("seed", stn_lr_scale=0.1), model, torch.device("cpu"))
    for group in scaled.param_groups:
        inside = {id(p) in st for p in group["params"]}
        assert len(inside) == 1 and group["lr"] == pytest.approx(0.001 if inside == {True} else 0.01)
    assert sum(len(g["params"]) for g in scaled.param_groups) == len(list(model.parameters()))
