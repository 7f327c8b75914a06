"""How it learned: one GIF frame per captured epoch, and a strip of stills."""

from __future__ import annotations

from PIL import Image

from stn import transforms as T
from stn.viz.images import GAP
from stn.viz.learning import learning_frames, stills, write_learning
from tests.viz.test_views import snapshots


def test_gif_has_one_frame_per_epoch_even_when_nothing_moved(tmp_path):
    state = snapshots(epochs=5)
    state["params"] = [state["params"][0]] * 5  # the transformer did not change at all
    assert write_learning(state, tmp_path / "learning.gif", tmp_path / "learning.png")
    with Image.open(tmp_path / "learning.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames == 5 and gif.info["loop"] == 0
    with Image.open(tmp_path / "learning.png") as strip:
        assert strip.format == "PNG" and strip.mode == "RGB"


def test_frames_are_the_same_size_with_or_without_outputs():
    with_outputs = learning_frames(snapshots(epochs=3))
    feature_map = learning_frames(snapshots(epochs=3, outputs=False, transform=T.get("tps")))
    assert [epoch for epoch, _ in with_outputs] == [1, 2, 3]
    assert len({frame.size for _, frame in with_outputs}) == 1
    assert feature_map[0][1].width < with_outputs[0][1].width  # the regions only


def test_stills_run_from_the_first_frame_to_the_last():
    frames = [Image.new("RGB", (10, 10), (i, 0, 0)) for i in range(20)]
    strip = stills(frames, count=4)
    assert strip.width == 10 and strip.height == 4 * 10 + 3 * GAP
    assert strip.getpixel((0, 0)) == (0, 0, 0) and strip.getpixel((0, strip.height - 1)) == (19, 0, 0)


def test_no_epochs_no_files(tmp_path):
    assert not write_learning(snapshots(epochs=0), tmp_path / "a.gif", tmp_path / "a.png")
    assert not list(tmp_path.iterdir())
