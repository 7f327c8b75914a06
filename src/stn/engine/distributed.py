"""Data-parallel training over several processes: PyTorch's ``torchrun`` starts them, and
``DistributedDataParallel`` averages their gradients.

A process started by ``torchrun`` finds ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in its
environment; :meth:`Group.from_env` reads them. In one process (no ``torchrun``, or one worker)
the group is inactive and every method here is the identity: ``torch.distributed`` is neither
imported nor initialised.

The meaning of a run does not depend on the number of processes: ``--batch-size`` is the global
batch, and rank ``r`` of ``W`` trains on the slice ``[B*r//W, B*(r+1)//W)`` of every global batch
``B``, drawn (and augmented) from the same seeded generator on every rank, so the union over ranks
is the one-process batch. Each rank's loss is scaled by ``W * b_r / B`` so that DDP's average of
the ranks' gradients is the gradient of the global batch's mean loss, even when the slices differ
in size. The test set is split the same way and the sums are all-reduced. Only rank 0 writes.
"""

from __future__ import annotations

import atexit
import datetime
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

__all__ = ["LAUNCHER_ENV", "TIMEOUT_ENV", "Group", "Silent", "launch", "lost_peer"]

T = TypeVar("T")

# Seconds a collective may wait for a peer before it fails (a hung or vanished rank). Rank 0
# alone saves checkpoints between collectives, so this must exceed a checkpoint's save time.
TIMEOUT_ENV = "STN_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 120.0
# Set for the ranks that `stn train --nproc-per-node` starts: a rank that loses a peer then stays
# quiet, and the launcher names the rank that died, in one line.
LAUNCHER_ENV = "STN_LAUNCHER"


class Silent:
    """A text stream that drops what it is given: the log of ranks other than 0."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


@dataclass
class Group:
    """This process's place among the ``world_size`` processes of one training run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Group:
        """The group ``torchrun`` started this process in (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``);
        a group of one without them."""
        try:
            group = cls(
                int(os.environ.get("RANK", "0")),
                int(os.environ.get("WORLD_SIZE", "1")),
                int(os.environ.get("LOCAL_RANK", "0")),
            )
        except ValueError:
            raise ValueError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (as torchrun sets them)") from None
        if not 0 <= group.rank < group.world_size:
            raise ValueError(f"RANK {group.rank} is outside WORLD_SIZE {group.world_size}")
        return group

    @property
    def active(self) -> bool:
        """Whether there is more than one process (only then is ``torch.distributed`` used)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes the run directory and the log."""
        return self.rank == 0

    # ----------------------------------------------------------------------------- set up
    def start(self, device: torch.device) -> torch.device:
        """Join the process group (NCCL on CUDA, gloo otherwise) and return this rank's device:
        ``cuda:LOCAL_RANK`` on CUDA, ``device`` otherwise. One process: ``device``, nothing started."""
        if not self.active:
            return device
        import torch.distributed as dist

        if device.type == "cuda":
            if device.index is not None:
                raise ValueError("with several processes, pass --device cuda (each rank takes cuda:LOCAL_RANK)")
            if self.local_rank >= torch.cuda.device_count():
                raise ValueError(
                    f"LOCAL_RANK {self.local_rank} but only {torch.cuda.device_count()} CUDA devices on this machine"
                )
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        elif device.type != "cpu":
            raise ValueError(f"distributed training runs on cuda or cpu, not {device.type}")
        if not dist.is_initialized():
            timeout = datetime.timedelta(seconds=_timeout_s())
            backend = "nccl" if device.type == "cuda" else "gloo"
            kwargs: dict[str, Any] = {"device_id": device} if device.type == "cuda" else {}
            dist.init_process_group(backend, timeout=timeout, **kwargs)
            atexit.register(_close)
        if dist.get_world_size() != self.world_size or dist.get_rank() != self.rank:
            raise ValueError("the process group does not match RANK and WORLD_SIZE")
        return device

    def wrap(self, module: nn.Module, seed: int) -> nn.Module:
        """``module`` in ``DistributedDataParallel`` (which broadcasts rank 0's weights), and this
        rank's own random stream (dropout) seeded apart from the others'. One process: ``module``."""
        if not self.active:
            return module
        from torch.nn.parallel import DistributedDataParallel

        self.seed_local(seed)
        device = next(module.parameters()).device
        return DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None)

    def seed_local(self, seed: int, epoch: int = 0) -> None:
        """Seed the global torch generator per rank (dropout masks); rank 0 keeps its stream, so a
        group of one is untouched."""
        if self.rank:
            torch.manual_seed(seed + 1_000_003 * self.rank + epoch)

    # ------------------------------------------------------------------------------ work
    def part(self, n: int) -> slice:
        """This rank's slice of ``n`` items (sizes differ by at most one)."""
        return slice(n * self.rank // self.world_size, n * (self.rank + 1) // self.world_size)

    def sum(self, tensor: Tensor) -> Tensor:
        """``tensor`` summed over the ranks, in place (and returned)."""
        if self.active:
            import torch.distributed as dist

            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def mean_loss(self, loss: Tensor, count: int, total: int) -> Tensor:
        """The global batch's mean loss from this rank's mean ``loss`` over ``count`` of ``total``
        items. One process: ``loss`` itself."""
        if not self.active:
            return loss
        return self.sum(loss.float() * count) / total

    def share(self, make: Callable[[], T]) -> T:
        """Rank 0's ``make()``, on every rank (pickled). If it raised, rank 0 raises it and the others
        exit quietly with status 2 (rank 0 reports the error). One process: ``make()``."""
        if not self.active:
            return make()
        import torch.distributed as dist

        box: list[Any] = [None]
        error: BaseException | None = None
        if self.is_main:
            try:
                box[0] = (True, make())
            except Exception as err:
                error = err
                box[0] = (False, None)
        dist.broadcast_object_list(box, src=0)
        ok, value = box[0]
        if not ok:
            dist.barrier()  # every rank has the news before rank 0 ends (and torchrun stops the rest)
        if error is not None:
            raise error
        if not ok:
            raise SystemExit(2)
        return value


def _timeout_s() -> float:
    text = os.environ.get(TIMEOUT_ENV, "")
    try:
        value = float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        raise ValueError(f"{TIMEOUT_ENV} must be a number of seconds, got {text!r}") from None
    if not value > 0:
        raise ValueError(f"{TIMEOUT_ENV} must be positive, got {text!r}")
    return value


def lost_peer(err: BaseException) -> str | None:
    """If ``err`` is a failed collective of a multi-process run (a peer died, hung or timed out),
    one line saying so; else ``None``."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    dist = sys.modules.get("torch.distributed")
    known = dist is not None and isinstance(err, getattr(dist, "DistError", ()))
    text = str(err)
    markers = ("gloo", "NCCL", "Connection reset", "Connection closed", "timed out", "Timed out", "Socket")
    if not (known or (isinstance(err, RuntimeError) and any(m in text for m in markers))):
        return None
    reason = re.sub(r"^[\s:\d]+", "", text.split("]")[-1]).split(". ")[0].strip().rstrip(".")
    reason = reason or type(err).__name__
    return f"rank {os.environ.get('RANK', '?')} stopped: lost contact with another process ({reason})"


def _close() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def _root_failure(err: Any) -> tuple[int, Any]:
    """The rank whose failure stopped the run: one killed outright (SIGKILL, say), then one that
    exited with a status (it said what went wrong), before one that aborted after losing the others
    (SIGABRT) or that torchrun stopped (SIGTERM); else the first seen."""
    collateral = ("SIGABRT", "SIGTERM")
    failures = sorted(err.failures.items())
    killed = [(r, f) for r, f in failures if f.exitcode < 0 and f.signal_name() not in collateral]
    said = [(r, f) for r, f in failures if f.exitcode > 0]
    return (killed or said or [err.get_first_failure()])[0]


def launch(nproc_per_node: int, argv: Sequence[str], run_dir: str | None = None) -> int:
    """Run ``python -m stn <argv>`` as ``nproc_per_node`` processes on this machine through
    ``torch.distributed.run`` (torchrun); return the exit status.

    The ranks report their own errors (rank 0) and interruptions; a rank that dies without a word
    (killed) is named here in one line, after torchrun has stopped the others."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    for name in [*logging.Logger.manager.loggerDict, "torch.distributed.elastic", "torch.distributed.run"]:
        if name.startswith(("torch.distributed.elastic", "torch.distributed.run")):
            logging.getLogger(name).setLevel(logging.CRITICAL)  # the ranks and the line below say it all
    args = get_args_parser().parse_args(["--nproc-per-node", str(nproc_per_node), "--module", "stn", *argv])
    os.environ[LAUNCHER_ENV] = "1"
    try:
        run(args)
    except SignalException:  # SIGTERM or SIGINT: torchrun passed it on, the ranks saved and said so
        return 130
    except ChildFailedError as err:
        rank, failure = _root_failure(err)
        if failure.exitcode >= 0:
            return failure.exitcode  # the rank said what went wrong (an error, an interruption)
        name = failure.signal_name()
        if name in ("SIGTERM", "SIGINT") and failure.exitcode in (-signal.SIGTERM, -signal.SIGINT):
            return 130
        print(
            f"stn: error: rank {rank} of {nproc_per_node} (pid {failure.pid}) died of {name}; the other ranks were "
            f"stopped. The last finished epoch is saved: continue with stn train --resume {run_dir or 'RUN_DIR'}",
            file=sys.stderr,
        )
        return 1
    finally:
        os.environ.pop(LAUNCHER_ENV, None)
    return 0
