"""How the transformer learned: every epoch captured in a run's ``snapshots.pt`` as one frame of
an animated GIF, and a few of them as a strip of stills (volumes: their middle slices)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from stn.viz.grids import input_panel, transformed_panels
from stn.viz.images import cell_scale, hstack, save, titled, vstack
from stn.viz.outlines import draw_regions, regions_title
from stn.viz.views import TransformerView, snapshot_views

__all__ = ["frame", "learning_frames", "save_gif", "stills", "write_learning"]


def frame(view: TransformerView, title: str, nrow: int | None = None, scale: int | None = None) -> Image.Image:
    """``title`` over the regions the transformer samples ("Where it looks") and, when it reads
    the image itself, what it made of them. Volumes: their middle slices, and what the
    transformer made of them (where it looks is not drawn)."""
    if view.volumes:
        panels = [input_panel(view, nrow, scale, target=64)]
    else:
        scale = scale or cell_scale(view.images.shape[-2:], target=64)
        regions = draw_regions(view.images, view.transform, view.params, view.align_corners, nrow, scale)
        panels = [titled(regions, regions_title(view.k))]
    if view.outputs is not None:
        panels += transformed_panels(view, nrow, scale, target=64)
    return titled(hstack(panels), title, size=16)


def learning_frames(snapshots: dict[str, Any]) -> list[tuple[int, Image.Image]]:
    """``(epoch, frame)`` for each captured epoch of ``snapshots`` (see :func:`~stn.viz.views.load_snapshots`).

    Args:
        snapshots: a run's snapshots.

    Returns:
        A titled RGB picture per epoch: where the transformer looks and, when it reads the image,
        what it made of it.

    Examples:
        >>> import io, os
        >>> from unittest import mock
        >>> from stn.engine import from_recipe, train
        >>> cfg = from_recipe("demo", model="tutorial-mnist", epochs=2, device="cpu", amp="off",
        ...                   dataset_options=dict(train_size=32, test_size=16, canvas=28))  # a tiny run
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())  # a new, empty folder
        >>> with mock.patch.dict(os.environ, {"STN_CACHE": str(folder)}):  # the drawn glyphs are cached there
        ...     _ = train(cfg, folder / "run", stream=io.StringIO(), progress=False)
        >>> from stn.viz import load_snapshots
        >>> frames = learning_frames(load_snapshots(folder / "run" / "snapshots.pt"))
        >>> [(epoch, picture.mode) for epoch, picture in frames]
        [(1, 'RGB'), (2, 'RGB')]
    """
    return [(epoch, frame(view, f"Epoch {epoch}")) for epoch, view in snapshot_views(snapshots)]


def save_gif(frames: list[Image.Image], path: str | os.PathLike, seconds: float = 0.6, hold: float = 2.0) -> Path:
    """Write ``frames`` as a looping GIF, ``seconds`` each and ``hold`` seconds on the last; one
    GIF frame per picture (frames must differ, e.g. by their titles, or the GIF merges them).

    Args:
        frames: the pictures, in order.
        path: the GIF file to write.
        seconds: how long each frame shows.
        hold: how long the last frame shows.

    Examples:
        >>> from PIL import Image
        >>> frames = [Image.new("RGB", (8, 8), colour) for colour in ("red", "green", "blue")]
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())  # a new, empty folder
        >>> path = save_gif(frames, folder / "colours.gif")
        >>> Image.open(path).n_frames
        3
    """
    if not frames:
        raise ValueError("a GIF needs at least one frame")
    durations = [round(1000 * seconds)] * (len(frames) - 1) + [round(1000 * hold)]
    # One palette, from a few frames, for all of them: half the bytes of a palette per frame.
    palette = stills(frames).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    frames = [f.convert("RGB").quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    save(frames[0], path, save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return Path(path)


def stills(frames: list[Image.Image], count: int = 6) -> Image.Image:
    """Up to ``count`` frames evenly spaced from first to last, one above the other."""
    if not frames:
        raise ValueError("no frames to make stills of")
    picks = torch.linspace(0, len(frames) - 1, min(count, len(frames))).round().long().unique().tolist()
    return vstack([frames[i] for i in picks])


def write_learning(snapshots: dict[str, Any], gif: str | os.PathLike, strip: str | os.PathLike) -> bool:
    """Write the learning GIF (one frame per captured epoch) and its strip of stills (PNG);
    ``False`` (nothing written) if no epoch was captured.

    Args:
        snapshots: a run's snapshots (:func:`~stn.viz.views.load_snapshots`).
        gif: the GIF file to write.
        strip: the PNG file of the stills to write.

    Examples:
        >>> import io, os
        >>> from unittest import mock
        >>> from stn.engine import from_recipe, train
        >>> cfg = from_recipe("demo", model="tutorial-mnist", epochs=2, device="cpu", amp="off",
        ...                   dataset_options=dict(train_size=32, test_size=16, canvas=28))  # a tiny run
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())  # a new, empty folder
        >>> with mock.patch.dict(os.environ, {"STN_CACHE": str(folder)}):  # the drawn glyphs are cached there
        ...     _ = train(cfg, folder / "run", stream=io.StringIO(), progress=False)
        >>> from stn.viz import load_snapshots
        >>> snapshots = load_snapshots(folder / "run" / "snapshots.pt")
        >>> write_learning(snapshots, folder / "learning.gif", folder / "learning.png")
        True
        >>> sorted(p.name for p in folder.glob("learning.*"))
        ['learning.gif', 'learning.png']
    """
    frames = [picture for _, picture in learning_frames(snapshots)]
    if not frames:
        return False
    save_gif(frames, gif)
    save(stills(frames), strip)
    return True
