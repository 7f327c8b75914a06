"""The ``stn`` command: argument parsing and error reporting only; the work is in the library.

Errors a user can cause (bad flags, missing or corrupt data, foreign checkpoints) end with one
line on stderr and exit status 2; an interrupted run says how to resume it and exits 130.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

__all__ = ["main"]

EXIT_USAGE = 2


class UsageError(Exception):
    """A problem with the command line or its inputs; printed as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (not the usage block) and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _size(text: str) -> tuple[int, int]:
    try:
        parts = [int(v) for v in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected a size like 32 or 32x48 (HxW), got {text!r}")
    return parts[0], parts[1]


# --------------------------------------------------------------------------------------- train
TRAIN_FLAGS = {  # flag -> TrainConfig field; all default to None so given flags can be told apart
    "model": "model",
    "dataset": "dataset",
    "data_root": "data_root",
    "image_size": "image_size",
    "transform": "transform",
    "stn_fill": "stn_fill",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "test_batch_size": "test_batch_size",
    "optimizer": "optimizer",
    "lr": "lr",
    "momentum": "momentum",
    "nesterov": "nesterov",
    "weight_decay": "weight_decay",
    "schedule": "schedule",
    "warmup_epochs": "warmup_epochs",
    "label_smoothing": "label_smoothing",
    "augment": "augment",
    "seed": "seed",
    "log_interval": "log_interval",
    "channels_last": "channels_last",
    "compile": "compile",
    "amp": "amp",
    "drop_last": "drop_last",
}
RESUME_FLAGS = {"device", "threads"}  # may change on resume; everything else comes from config.json


def _add_train(sub) -> None:
    from stn.engine.config import AUGMENTS, COMPILE_MODES, FILLS, OPTIMIZERS, RECIPES, SCHEDULES

    p = sub.add_parser(
        "train",
        help="train a model (default: the seed CIFAR-10 experiment)",
        description="Train an STN classifier. Defaults are the seed recipe: SGD lr 0.01, batch 64, "
        "test batch 1000, a log line every 500 batches, 50 epochs.",
    )
    g = p.add_argument_group("what to train")
    g.add_argument("--model", help="registered model (stn models); default seed-cifar")
    g.add_argument("--dataset", help="registered data set (stn datasets); default: the model's own")
    g.add_argument("--data-root", help="folder holding the data (default $STN_DATA, else ~/.cache/stn)")
    g.add_argument("--image-size", type=_size, help="resize images of a folder data set to HxW")
    g.add_argument(
        "--no-stn", dest="stn", action="store_false", default=None, help="the same network without its transformer"
    )
    g.add_argument("--transform", help="transform family: translation, attention, similarity, affine, projective, tps")
    g.add_argument("--stn-fill", choices=FILLS, help="what the transformer reads outside the image (default zeros)")
    g = p.add_argument_group("recipe (defaults: --recipe seed)")
    g.add_argument("--recipe", default="seed", choices=list(RECIPES), help="named preset of the options below")
    g.add_argument("--epochs", type=_positive_int)
    g.add_argument("--batch-size", type=_positive_int)
    g.add_argument("--test-batch-size", type=_positive_int)
    g.add_argument(
        "--drop-last", action=argparse.BooleanOptionalAction, default=None, help="drop the last partial batch"
    )
    g.add_argument("--optimizer", choices=OPTIMIZERS)
    g.add_argument("--lr", type=_float, help="base learning rate")
    g.add_argument("--momentum", type=_float)
    g.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--weight-decay", type=_float, help="L2 penalty on weights (biases are not decayed)")
    g.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule, stepped per batch")
    g.add_argument("--warmup-epochs", type=_float, help="linear warm-up length")
    g.add_argument("--label-smoothing", type=_float)
    g.add_argument("--augment", choices=AUGMENTS, help="per-sample augmentation on the device")
    g.add_argument("--seed", type=int, help="random seed (default 1)")
    g = p.add_argument_group("engine")
    g.add_argument("--device", default=None, help="auto (cuda, mps, cpu), cpu, cuda, cuda:N, mps")
    g.add_argument("--threads", type=_positive_int, help="CPU threads for torch")
    g.add_argument(
        "--channels-last", action=argparse.BooleanOptionalAction, default=None, help="channels_last memory format"
    )
    g.add_argument("--compile", choices=COMPILE_MODES, help="torch.compile mode (reduce-overhead captures CUDA graphs)")
    g.add_argument("--amp", choices=("auto", "bf16", "off"), help="autocast (auto: bf16 on CUDA only)")
    g.add_argument("--log-interval", type=_positive_int, help="batches between log lines (default 500)")
    g = p.add_argument_group("output")
    g.add_argument("--out", help="run directory (default runs/<model>-<dataset>-<time>)")
    g.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR where it stopped")
    g.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar (default: on a terminal)"
    )
    g.add_argument("--no-report", dest="report", action="store_false", help="skip report.md at the end")
    p.set_defaults(run=_train)


def _train(args: argparse.Namespace) -> int:
    from stn.engine import TrainConfig, from_recipe, train
    from stn.engine.log import RunLog

    given = {field: getattr(args, flag) for flag, field in TRAIN_FLAGS.items() if getattr(args, flag) is not None}
    if args.stn is not None:
        given["stn"] = args.stn
    if args.resume:
        run_dir = Path(args.resume)
        extra = sorted(set(given)) + (["out"] if args.out else [])
        if extra:
            raise UsageError(f"--resume continues a run with its saved config; drop --{extra[0].replace('_', '-')}")
        if not (run_dir / "config.json").is_file() or not (run_dir / "last.pt").is_file():
            raise UsageError(f"{run_dir} is not a resumable run directory (needs config.json and last.pt)")
        cfg = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    else:
        cfg = from_recipe(args.recipe, **given)
        if cfg.dataset is None:
            from stn import models

            cfg.dataset = models.describe(cfg.model).default_dataset
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = Path(args.out) if args.out else Path("runs") / f"{cfg.model}-{cfg.dataset}-{stamp}"
        if (run_dir / "last.pt").exists():
            raise UsageError(f"{run_dir} already holds a run; resume it with --resume {run_dir} or pick another --out")
    if args.device:
        cfg.device = args.device
    if args.threads:
        cfg.threads = args.threads
    cfg.report = args.report and cfg.report
    run_dir.mkdir(parents=True, exist_ok=True)
    log = RunLog(run_dir / "train.log", progress=args.progress)
    try:
        summary = train(cfg, run_dir, resume=bool(args.resume), log=log)
    except KeyboardInterrupt:
        log.close()
        print(
            f"\nstn: interrupted; the last finished epoch is saved. Resume with: stn train --resume {run_dir}",
            file=sys.stderr,
        )
        return 130
    finally:
        log.close()
    print(
        f"Run directory: {run_dir}  (final {summary['final_accuracy']:.2f}%, best {summary['best_accuracy']:.2f}% "
        f"at epoch {summary['best_epoch']}, {summary['seconds']:.0f} s)"
    )
    if cfg.report:
        _maybe_report([run_dir])
    return 0


def _maybe_report(run_dirs: Sequence[Path]) -> None:
    try:
        from stn.viz.report import write_report
    except ImportError:  # the visualisation package is optional at this layer
        return
    path = write_report(run_dirs)
    print(f"Report: {path}")


# ------------------------------------------------------------------------------------ evaluate
def _add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="test a trained run or checkpoint",
        description="Print the seed-format test line and per-class accuracy of a checkpoint.",
    )
    p.add_argument("target", metavar="RUN_DIR|CHECKPOINT", help="a run directory (uses best.pt) or a .pt file")
    p.add_argument("--dataset", help="evaluate on another registered data set (same image shape and classes)")
    p.add_argument("--data-root", help="folder holding the data")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=_positive_int, default=1000)
    p.set_defaults(run=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from stn import data as stn_data
    from stn.engine import DeviceData, evaluate, resolve_device
    from stn.engine import checkpoint as ckpt

    path = ckpt.resolve(args.target)
    payload = ckpt.load(path)
    model = ckpt.build_model(payload)
    device = resolve_device(args.device)
    config = payload.get("config", {})
    name = args.dataset or payload["dataset"]
    root = args.data_root if args.data_root else config.get("data_root")
    size = config.get("image_size") if name == payload["dataset"] else None
    dataset = stn_data.load(name, root, **({"image_size": tuple(size)} if size else {}))
    expected = tuple(payload["model_options"]["input_shape"])
    if dataset.input_shape != expected:
        raise UsageError(f"{name} images are {dataset.input_shape}, the model expects {expected}")
    if dataset.num_classes != payload["model_options"]["num_classes"]:
        raise UsageError(
            f"{name} has {dataset.num_classes} classes, the model {payload['model_options']['num_classes']}"
        )
    # Normalise with the statistics the model was trained with.
    dataset.mean, dataset.std = tuple(payload["mean"]), tuple(payload["std"])
    result = evaluate(model.to(device), DeviceData(dataset, device), args.batch_size)
    print(f"{path} (epoch {payload.get('epoch', '?')}) on {name}:")
    print(result.line())
    width = max(len(c) for c in dataset.classes)
    for cls, c, t in zip(dataset.classes, result.class_correct, result.class_total, strict=True):
        print(f"  {cls:<{width}}  {100.0 * c / max(1, t):6.2f}%  ({c}/{t})")
    return 0


# ------------------------------------------------------------------------------- listings
def _add_lists(sub) -> None:
    p = sub.add_parser("models", help="list the registered models")
    p.set_defaults(run=_models)
    p = sub.add_parser("datasets", help="list the registered data sets")
    p.set_defaults(run=_datasets)


def _models(args: argparse.Namespace) -> int:
    from stn import models

    for name in models.list():
        entry = models.describe(name)
        print(f"{name:<18} {entry.summary} (data: {entry.default_dataset})")
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from stn import data

    for name in data.names():
        print(f"{name:<15} {data.summary(name)}")
    return 0


COMMANDS: list[Callable] = [_add_train, _add_evaluate, _add_lists]


def build_parser() -> argparse.ArgumentParser:
    from stn import __version__

    parser = _Parser(prog="stn", description="Spatial Transformer Networks: train, evaluate, visualise, benchmark.")
    parser.add_argument("--version", action="version", version=f"stn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stn`` console script; returns the exit status."""
    from stn.data import DataError
    from stn.engine import CheckpointError, TrainingDiverged

    try:
        args = build_parser().parse_args(argv)
        if not getattr(args, "command", None):
            build_parser().print_help()
            return EXIT_USAGE
        return args.run(args)
    except (UsageError, DataError, CheckpointError, ValueError) as err:
        print(f"stn: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingDiverged as err:
        print(f"stn: training diverged: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
