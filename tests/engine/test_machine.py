"""The machine settings a run makes: glibc's malloc keeps freed blocks for reuse on the CPU."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest
import torch

from stn.engine import loop
from stn.engine.loop import configure_process, train

from .test_train import tiny_config

# Eight 4 MiB blocks taken and freed ten times over: glibc hands them back to the OS and maps them
# afresh (a page fault per 4 KiB page touched) unless it keeps what was freed. Prints the page
# faults of the ten rounds.
ROUNDS = """
import resource, sys, torch
from stn.engine.machine import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def round():
    blocks = [torch.ones(1 << 20) for _ in range(8)]
    del blocks
round()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    round()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only"
)


def page_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True, check=True).stdout
    return int(out)


@glibc_only
def test_kept_blocks_are_reused_without_page_faults():
    pages = 10 * 8 * (4 << 20) // 4096
    # Where the heap's top lands decides whether glibc can hand blocks back: not every process does.
    if not any(page_faults("default") > pages // 4 for _ in range(3)):
        pytest.skip("this glibc (or transparent huge pages) already avoids the faults here")
    assert page_faults("keep") < pages // 20


@pytest.mark.parametrize("keep", [True, False])
def test_a_cpu_run_keeps_freed_memory_unless_told_not_to(bars, monkeypatch, keep):
    calls = []
    monkeypatch.setattr(loop, "keep_freed_memory", lambda: calls.append(1) or True)
    configure_process(tiny_config(bars, keep_freed_memory=keep))
    assert len(calls) == keep


def test_preparing_and_training_change_nothing_process_wide(bars, tmp_path, monkeypatch):
    """train() leaves threads and the allocator to configure_process(), and the caller's random
    state as it was; configure_process() sets the threads the config asks for."""
    calls = []
    monkeypatch.setattr(loop, "keep_freed_memory", lambda: calls.append(1) or True)
    threads = torch.get_num_threads()
    cfg = tiny_config(bars, threads=threads + 1, epochs=1)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    train(cfg, tmp_path / "run", progress=False)
    assert torch.get_num_threads() == threads and not calls
    assert torch.equal(torch.get_rng_state(), state)
    configure_process(cfg)
    assert torch.get_num_threads() == threads + 1 and calls == [1]
