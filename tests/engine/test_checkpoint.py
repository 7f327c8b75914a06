"""checkpoint.load on files that are not stn checkpoints: one CheckpointError line each, nothing runs."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from stn.engine import checkpoint as ckpt


def real_checkpoint(path) -> dict:
    """A small checkpoint shaped like a run's ``last.pt`` (weights, optimizer, random state)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 6)).sum().backward()
    optimizer.step()
    payload = {
        "model": "mlp",
        "model_options": {"hidden": 5},
        "state_dict": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": 3,
        "classes": ["a", "b", "c"],
        "rng": torch.get_rng_state(),
        "metrics": [{"epoch": 1, "loss": 0.5}],
    }
    ckpt.save(payload, path)
    return payload


class RunsCode:
    """Unpickling this creates the folder ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def refused(path, match: str) -> str:
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(ckpt.CheckpointError, match=match) as err:
        ckpt.load(path)
    message = str(err.value)
    assert "\n" not in message and "weights_only" not in message and str(path) in message
    assert (path.read_bytes() if path.is_file() else None) == before  # loading never changes the file
    return message


def test_a_real_checkpoint_loads(tmp_path):
    payload = real_checkpoint(tmp_path / "last.pt")
    loaded = ckpt.load(tmp_path / "last.pt")
    assert loaded["format"] == ckpt.FORMAT and loaded["epoch"] == 3
    torch.testing.assert_close(loaded["state_dict"], payload["state_dict"], rtol=0, atol=0)


def test_text_and_empty_files(tmp_path):
    (tmp_path / "notes.pt").write_text("my notes about the run\nsecond line\n")
    refused(tmp_path / "notes.pt", r"notes\.pt is not a readable checkpoint: it holds text, not a torch file$")
    (tmp_path / "empty.pt").write_bytes(b"")
    refused(tmp_path / "empty.pt", r"is not a readable checkpoint: it is empty \(0 bytes\)$")
    refused(tmp_path / "missing.pt", "no such checkpoint")
    (tmp_path / "dir.pt").mkdir()
    refused(tmp_path / "dir.pt", "is a directory, not a checkpoint file")


def test_files_from_other_programs_say_what_they_hold(tmp_path):
    torch.save(torch.zeros(3, 4), tmp_path / "tensor.pt")
    refused(tmp_path / "tensor.pt", r"is not an stn checkpoint: it holds a single tensor of shape \(3, 4\)$")
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "sd.pt")
    refused(tmp_path / "sd.pt", r"it holds a state_dict of 2 tensor\(s\) \('weight', 'bias'\), from another program")
    torch.save({"format": "other-v9", "w": 1}, tmp_path / "other.pt")
    refused(tmp_path / "other.pt", "its format is 'other-v9', not 'stn-checkpoint-v1'")
    torch.save([1, 2], tmp_path / "list.pt")
    refused(tmp_path / "list.pt", "it holds a list")
    torch.save({"x": torch.zeros(2)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    refused(tmp_path / "legacy.pt", "is not an stn checkpoint")


@pytest.mark.parametrize("how", ["torch.save", "pickle-2", "pickle-5"])
def test_a_pickle_that_would_run_code_does_not_run(tmp_path, how):
    marker, path = tmp_path / "ran", tmp_path / "evil.pt"
    if how == "torch.save":
        torch.save({"format": ckpt.FORMAT, "x": RunsCode(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(RunsCode(marker), protocol=int(how[-1])))
    pickle.loads(pickle.dumps(RunsCode(tmp_path / "proof")))  # the payload is live: plain pickle runs it
    assert (tmp_path / "proof").is_dir()
    message = refused(path, "is not a readable checkpoint")
    assert not marker.exists()
    if how != "pickle-5":
        assert "it asks to load posix.mkdir, which a checkpoint never holds" in message


def test_a_flipped_byte_in_the_weights_is_an_error(tmp_path):
    import struct
    import zipfile

    path = tmp_path / "last.pt"
    real_checkpoint(path)
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("/data/0"))
    blob = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", blob[info.header_offset + 26 : info.header_offset + 30])
    blob[info.header_offset + 30 + name_len + extra_len + 1] ^= 0x10  # torch.load alone would not notice
    path.write_bytes(bytes(blob))
    refused(path, r"it is damaged: the checksum of .*data/0 does not match")


def test_truncated_checkpoints(tmp_path):
    path = tmp_path / "last.pt"
    real_checkpoint(path)
    blob = path.read_bytes()
    for keep in (1, 10, 100, len(blob) // 2, len(blob) - 30, len(blob) - 1):
        path.write_bytes(blob[:keep])
        refused(path, "is not a readable checkpoint")
