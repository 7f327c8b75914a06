"""Finding and reading the official formats, the image-folder tree, the cache, and bad files."""

from __future__ import annotations

import gzip
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from stn import data
from stn.data import DataError
from stn.data.formats import read_idx

from ..conftest import make_bars_folder

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, dtype=">i4").tobytes()
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def write_mnist(folder: Path, gz: bool = True, train: int = 30, test: int = 10) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    for prefix, n in (("train", train), ("t10k", test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 28, 28)), gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", np.arange(n) % 10, gz)


def cifar_batch(n: int, offset: int) -> bytes:
    rng = np.random.default_rng(offset)
    batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": [(offset + i) % 10 for i in range(n)]}
    return pickle.dumps(batch)


def write_cifar(folder: Path, per_batch: int = 4) -> Path:
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    for i in range(1, 6):
        (batches / f"data_batch_{i}").write_bytes(cifar_batch(per_batch, i))
    (batches / "test_batch").write_bytes(cifar_batch(per_batch, 0))
    return batches


@pytest.mark.parametrize("layout", ["flat", "torchvision"])
@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_layouts(tmp_path, layout, gz, trust_idx):
    folder = tmp_path / ("MNIST/raw" if layout == "torchvision" else "mnist")
    write_mnist(folder, gz=gz)
    trust_idx("mnist", folder)
    ds = data.load("mnist", tmp_path)
    assert ds.train_images.shape == (30, 1, 28, 28) and ds.test_images.shape == (10, 1, 28, 28)
    assert ds.train_images.dtype == torch.uint8 and ds.train_labels.tolist() == [i % 10 for i in range(30)]
    assert ds.classes == [str(i) for i in range(10)] and len(ds.mean) == 1


def test_cifar_folder_and_tarball(tmp_path, trust_cifar):
    batches = write_cifar(tmp_path / "a")
    trust_cifar(batches)
    from_folder = data.load("cifar10", tmp_path / "a")
    assert from_folder.train_images.shape == (20, 3, 32, 32) and from_folder.test_images.shape == (4, 3, 32, 32)
    assert from_folder.classes[0] == "airplane"
    first = np.frombuffer(pickle.loads((batches / "data_batch_1").read_bytes())["data"][0], dtype=np.uint8)
    assert from_folder.train_images[0].flatten().tolist() == first.tolist()  # CHW, channel planes in order
    (tmp_path / "b").mkdir()
    with tarfile.open(tmp_path / "b" / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(batches, arcname="cifar-10-batches-py")
    from_tar = data.load("cifar10", tmp_path / "b")
    assert torch.equal(from_tar.train_images, from_folder.train_images)
    assert torch.equal(from_tar.test_labels, from_folder.test_labels)


def test_image_folder(tmp_path):
    root = make_bars_folder(tmp_path / "bars", train=5, test=3)
    ds = data.load("folder", root)
    assert ds.classes == ["horizontal", "vertical"] and ds.input_shape == (1, 28, 28)
    assert ds.train_labels.tolist() == [0] * 5 + [1] * 5 and len(ds.test_labels) == 6
    resized = data.load("folder", root, image_size=(16, 20))
    assert resized.input_shape == (1, 16, 20)
    colour = data.load("folder", make_bars_folder(tmp_path / "rgb", train=2, test=1, channels=3))
    assert colour.input_shape == (3, 28, 28)


def test_second_load_comes_from_the_cache(tmp_path, monkeypatch, trust_idx):
    write_mnist(tmp_path / "mnist")
    trust_idx("mnist", tmp_path / "mnist")
    first = data.load("mnist", tmp_path)
    import stn.data.official as official

    monkeypatch.setattr(official, "idx_bytes", lambda path: pytest.fail("decoded again instead of cached"))
    second = data.load("mnist", tmp_path)
    assert torch.equal(first.train_images, second.train_images) and second.mean == first.mean


def test_cache_follows_changes_to_the_files(tmp_path):
    root = make_bars_folder(tmp_path / "bars", train=3, test=2)
    assert len(data.load("folder", root).train_labels) == 6
    (root / "train" / "vertical" / "0000.png").unlink()
    assert len(data.load("folder", root).train_labels) == 5


def test_corrupt_files_are_named(tmp_path, trust_idx, trust_cifar):
    root = make_bars_folder(tmp_path / "bars", train=3, test=2)
    bad = root / "train" / "vertical" / "0001.png"
    bad.write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError, match=r"1 of 6 images .* cannot be read: .*0001\.png \(not an image file"):
        data.load("folder", root)

    write_mnist(tmp_path / "m" / "mnist")
    trust_idx("mnist", tmp_path / "m" / "mnist")
    labels = tmp_path / "m" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:20])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz"):
        data.load("mnist", tmp_path / "m")

    raw = tmp_path / "truncated-idx3-ubyte"
    write_idx(raw, np.zeros((4, 5, 5)), gz=False)
    raw.write_bytes(raw.read_bytes()[:-7])
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_idx(raw)

    batches = write_cifar(tmp_path / "c")
    (batches / "data_batch_3").write_bytes(b"\x80\x04 not a pickle")
    trust_cifar(batches)
    with pytest.raises(DataError, match=r"corrupt CIFAR-10 batch .*data_batch_3"):
        data.load("cifar10", tmp_path / "c")


def test_mismatched_sizes_and_classes(tmp_path):
    from PIL import Image

    root = make_bars_folder(tmp_path / "bars", train=2, test=1)
    Image.new("L", (30, 28)).save(root / "train" / "vertical" / "9999.png")
    with pytest.raises(DataError, match="must share one size"):
        data.load("folder", root)
    (root / "train" / "vertical" / "9999.png").unlink()
    (root / "test" / "diagonal").mkdir()
    Image.new("L", (28, 28)).save(root / "test" / "diagonal" / "0.png")
    with pytest.raises(DataError, match="classes"):
        data.load("folder", root)


def test_missing_data_says_where_it_looked(tmp_path):
    with pytest.raises(DataError) as err:
        data.load("cifar10", tmp_path)
    message = str(err.value)
    assert "cifar10 not found" in message and str(tmp_path) in message and "cifar-10-python.tar.gz" in message
    assert "downloads are off" in message and "--data-root" in message
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        data.load("mnist", tmp_path)
    with pytest.raises(DataError, match="no image folder"):
        data.load("folder", tmp_path)
    with pytest.raises(DataError, match="unknown data set 'imagenet'"):
        data.load("imagenet", tmp_path)


def test_data_root_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("STN_DATA", str(tmp_path))
    assert data.data_root() == tmp_path
    assert data.data_root("/elsewhere") == Path("/elsewhere")
    monkeypatch.delenv("STN_DATA")
    assert data.data_root() == Path.home() / ".cache" / "stn"


@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="../shared/data/mnist not present")
def test_shared_mnist_has_the_official_counts_and_statistics():
    ds = data.load("mnist", SHARED)
    assert len(ds.train_labels) == 60000 and len(ds.test_labels) == 10000
    assert torch.bincount(ds.test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert ds.mean == pytest.approx((0.1307,), abs=1e-4) and ds.std == pytest.approx((0.3081,), abs=1e-4)


def test_missing_data_is_downloaded_when_allowed(tmp_path, monkeypatch, trust_idx):
    import stn.data.builtin as builtin

    fetched = []

    def fake_download(name, root):  # what torchvision's MNIST downloader leaves behind
        fetched.append(name)
        write_mnist(root / "MNIST" / "raw")
        trust_idx("mnist", root / "MNIST" / "raw")

    monkeypatch.setenv("STN_NO_DOWNLOAD", "0")
    monkeypatch.setattr(builtin, "download", fake_download)
    assert len(data.load("mnist", tmp_path).train_labels) == 30 and fetched == ["mnist"]


def test_failed_download_is_one_clear_error(tmp_path, monkeypatch):
    import stn.data.builtin as builtin

    def offline(name, root):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setenv("STN_NO_DOWNLOAD", "0")
    monkeypatch.setattr(builtin, "download", offline)
    with pytest.raises(DataError, match=r"download failed: .*name resolution") as err:
        data.load("cifar10", tmp_path)
    assert "\n" not in str(err.value) and "Provide cifar-10-python.tar.gz" in str(err.value)


def test_a_damaged_cache_is_rebuilt_with_one_line(tmp_path, capsys):
    root = make_bars_folder(tmp_path / "bars", train=2, test=1)
    first = data.load("folder", root)
    (cached,) = list(data.cache_dir().iterdir())
    for junk in (b"", b"text, not a tensor file\n", cached.read_bytes()[:100], pickle.dumps({"a": 1}, protocol=4)):
        cached.write_bytes(junk)
        again = data.load("folder", root)
        assert torch.equal(again.train_images, first.train_images)
        err = capsys.readouterr().err
        assert err.startswith(f"stn: rebuilding damaged cache {cached}") and err.count("\n") == 1
        assert "weights_only" not in err
