"""The ``stn`` command: argument parsing and error reporting only; the work is in the library.

Errors a user can cause (bad flags, missing or corrupt data, foreign checkpoints) end with one
line on stderr and exit status 2; an interrupted run says how to resume it and exits 130.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["main"]

EXIT_USAGE = 2


class UsageError(Exception):
    """A problem with the command line or its inputs; printed as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (not the usage block) and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see {self.prog} --help)")


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
# --model of evaluate, export and predict: the target is then a plain state_dict.
WEIGHTS_OF = (
    "a registered model (stn models): the file is a plain state_dict of it, from stn or another program "
    "(the seed's or the PyTorch tutorial's Net for seed-cifar and tutorial-mnist)"
)
# Flags of `stn train` that set a data set option (the data sets that take them declare them).
DATA_OPTION_FLAGS = ("image_size", "skip_bad_images", "fresh_distortions")


def _key_value(text: str) -> tuple[str, object]:
    """``KEY=VALUE``: the value read as JSON (numbers, true/false, lists), else as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip().replace("-", "_"), parsed


def _flag_type(annotation: str) -> Callable[[str], object] | None:
    """The argparse type of a :class:`~stn.engine.TrainConfig` field from its annotation."""
    base = annotation.replace(" | None", "")
    return {"int": int, "float": _float, "tuple[int, int]": _size, "dict[str, Any]": _key_value}.get(base)


def _add_config_flags(parser: argparse.ArgumentParser) -> dict[str, argparse._ArgumentGroup]:
    """One flag per :class:`~stn.engine.TrainConfig` field, from the field's metadata. Every flag
    defaults to ``None`` (not given), so the recipe's value stands unless a flag overrides it.
    Returns the flag groups by name."""
    from stn.engine.config import TrainConfig

    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in dataclasses.fields(TrainConfig):
        meta = f.metadata
        if not meta.get("help") or meta.get("cli") is False:
            continue
        group = groups.get(meta["group"]) or groups.setdefault(meta["group"], parser.add_argument_group(meta["group"]))
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        help = meta["help"] + ("" if default in (None, "") else f" (default {default})")
        kind = str(f.type)
        if kind == "bool":
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help)
        elif kind == "dict[str, Any]":
            singular = flag[:-1] if flag.endswith("s") else flag
            group.add_argument(singular, dest=f.name, type=_key_value, action="append", metavar="KEY=VALUE", help=help)
        else:
            group.add_argument(flag, type=_flag_type(kind), choices=meta.get("choices"), default=None, help=help)
    return groups


def _add_train(sub) -> None:
    from stn.engine.config import RECIPES

    p = sub.add_parser(
        "train",
        help="train a model (default: the seed CIFAR-10 experiment)",
        description="Train an STN classifier. Defaults are the seed recipe: SGD lr 0.01, batch 64, "
        "test batch 1000, a log line every 500 batches, 50 epochs. A flag overrides the recipe's value.",
    )
    p.add_argument("--recipe", default=None, choices=list(RECIPES), help="named preset of the options (default seed)")
    groups = _add_config_flags(p)
    data = groups["what to train"]
    data.add_argument(
        "--image-size", type=_size, metavar="HxW", help="resize images to HxW (the data set option image_size)"
    )
    data.add_argument(
        "--skip-bad-images",
        action="store_true",
        default=None,
        help="leave out unreadable image files and say how many (the data set option skip_bad_images)",
    )
    data.add_argument(
        "--fresh-distortions",
        action="store_true",
        default=None,
        help="distorted MNIST: distort the training images anew for every batch (the data set option "
        "fresh_distortions)",
    )
    g = groups.get("output") or p.add_argument_group("output")
    g.add_argument("--out", help="run directory (default runs/<model>-<dataset>-<time>)")
    g.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR where it stopped (may change --epochs, --threads, --device, --data-root)",
    )
    g.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar (default: on a terminal)"
    )
    g.add_argument("--no-report", dest="report", action="store_false", help="skip report.md at the end")
    g.add_argument(
        "--tensorboard",
        nargs="?",
        const="",
        metavar="DIR",
        help="log to TensorBoard (default DIR: RUN_DIR/tensorboard), on resume too; needs pip install "
        "'torch-stn[tensorboard]'",
    )
    p.add_argument(
        "--nproc-per-node",
        type=_positive_int,
        default=None,
        metavar="N",
        help="train on N processes of this machine (torchrun; one GPU each on CUDA); see README 'Many GPUs'",
    )
    p.set_defaults(run=_train)


def _given(args: argparse.Namespace) -> dict[str, object]:
    """The config fields set by flags on this command line."""
    from stn.engine.config import TrainConfig

    given = {}
    for f in dataclasses.fields(TrainConfig):
        value = getattr(args, f.name, None) if f.metadata.get("cli") is not False else None  # --recipe is its own
        if value is not None:
            given[f.name] = dict(value) if f.name.endswith("_options") else value
    return given


def _without_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` less its ``--nproc-per-node N`` (or ``--nproc-per-node=N``)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc-per-node":
            skip = True
        elif not arg.startswith("--nproc-per-node="):
            out.append(arg)
    return out


def _launch(args: argparse.Namespace, cfg, run_dir: Path) -> int:
    """``stn train --nproc-per-node N``: this command again in N processes, through torchrun (the
    config checked here first, so that a mistake is reported once)."""
    from stn.engine.distributed import launch

    if "WORLD_SIZE" in os.environ:
        raise UsageError("--nproc-per-node under torchrun: give the process count to torchrun only")
    cfg.validate()
    if cfg.batch_size < args.nproc_per_node:
        raise UsageError(f"--batch-size {cfg.batch_size} is below --nproc-per-node {args.nproc_per_node}")
    argv = _without_nproc(args.argv) + ([] if args.out or args.resume else ["--out", str(run_dir)])
    code = launch(args.nproc_per_node, argv, str(run_dir))
    if code == 130:  # interrupted: the ranks stay quiet under the launcher, which says it once
        print(f"\nstn: {_interrupted(run_dir)}", file=sys.stderr)
    return code


def _train_config(args: argparse.Namespace):
    """The config and run directory of ``stn train``'s command line (a resumed run's, changed by
    the given flags)."""
    from stn.engine import Run, check_names, from_recipe

    given = _given(args)
    if args.tensorboard is not None:
        given["tensorboard"] = args.tensorboard
    shortcuts = {name: getattr(args, name) for name in DATA_OPTION_FLAGS if getattr(args, name) is not None}
    if args.resume:
        if args.out or args.recipe:
            raise UsageError(
                f"--resume continues a run with its saved config; drop --{'out' if args.out else 'recipe'}"
            )
        run = Run.open(args.resume)
        if shortcuts:
            given["dataset_options"] = {**given.get("dataset_options", run.config.dataset_options), **shortcuts}
        return run.resume_config(given), Path(args.resume)
    if shortcuts:
        given["dataset_options"] = {**given.get("dataset_options", {}), **shortcuts}
    cfg = check_names(from_recipe(args.recipe or "seed", **given))
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return cfg, Path(args.out) if args.out else Path("runs") / f"{cfg.model}-{cfg.dataset}-{stamp}"


def _train(args: argparse.Namespace) -> int:
    from stn.engine import configure_process, train
    from stn.files import WriteError

    main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun, only rank 0 reports
    cfg, run_dir = _train_config(args)
    if args.nproc_per_node is not None:
        return _launch(args, cfg, run_dir)
    callbacks = []
    if cfg.tensorboard is not None and main_rank:  # the run's own setting; under torchrun, rank 0 alone writes
        from stn.viz.tensorboard import TensorBoard

        callbacks.append(TensorBoard(cfg.tensorboard or None))
    configure_process(cfg)
    try:
        summary = train(cfg, run_dir, resume=bool(args.resume), progress=args.progress, callbacks=callbacks)
    except WriteError as err:  # a full disk while saving: say what is kept and how to go on
        print(f"stn: error: {_one_line(err)}; {_kept(run_dir)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if _speaks_for_the_run():
            print(f"\nstn: {_interrupted(run_dir)}", file=sys.stderr)
        return 130
    if not main_rank:
        return 0
    print(
        f"Run directory: {run_dir}  (final {summary['final_accuracy']:.2f}%, best {summary['best_accuracy']:.2f}% "
        f"at epoch {summary['best_epoch']}, {summary['seconds']:.0f} s)"
    )
    if args.report:
        from stn.viz.report import write_report

        print(f"Report: {write_report([run_dir])}")
    return 0


def _interrupted(run_dir: Path) -> str:
    """What is true after Ctrl-C or SIGTERM: the run can be resumed, or nothing was saved yet."""
    from stn.engine import Run

    try:
        resumable = Run.open(run_dir).can_resume
    except ValueError:
        resumable = False
    if resumable:
        return f"interrupted; the last finished epoch is saved. Resume with: stn train --resume {run_dir}"
    return "interrupted before the first epoch finished; nothing was saved to resume"


def _kept(run_dir: Path) -> str:
    """What a failed write left of the run in ``run_dir``, for the error line."""
    from stn.engine import Run

    try:
        run = Run.open(run_dir)
        done, resumable = run.epochs_done, run.can_resume
    except ValueError:
        return "nothing of the run was saved"
    if not done:
        return "no epoch was saved"
    then = f"free space, then resume with: stn train --resume {run_dir}" if resumable else "the run is complete"
    return f"the run is saved up to epoch {done} (last.pt, best.pt, metrics.csv intact); {then}"


# ------------------------------------------------------------------------------------ evaluate
def _add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="test a trained run or checkpoint",
        description="Print the seed-format test line and per-class accuracy of a checkpoint, on exactly the test "
        "set its run used (data set options included) and as the run evaluated it.",
    )
    p.add_argument("target", metavar="RUN_DIR|CHECKPOINT", help="a run directory (uses best.pt) or a .pt file")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best", help="which of a run's checkpoints")
    p.add_argument(
        "--model",
        metavar="NAME",
        help=WEIGHTS_OF,
    )
    p.add_argument("--dataset", help="evaluate on another registered data set (same image shape and classes)")
    p.add_argument("--data-root", help="folder holding the data (default: the run's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=_positive_int, help="test batch size (default: the run's)")
    p.set_defaults(run=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from stn.engine import evaluate_checkpoint

    result, payload, path = evaluate_checkpoint(
        args.target, args.checkpoint, args.dataset, args.data_root, args.device, args.batch_size, args.model
    )
    print(f"{path} (epoch {payload.get('epoch', '?')}) on {args.dataset or payload['dataset']}:")
    print(result.line())
    width = max(len(c) for c in result.classes)
    for (cls, accuracy), c, t in zip(result.per_class().items(), result.class_correct, result.class_total, strict=True):
        print(f"  {cls:<{width}}  {accuracy:6.2f}%  ({c}/{t})")
    return 0


def _add_export(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export a trained model to ONNX or torch.export (.pt2), checked against PyTorch",
        description="Write the model of a run or checkpoint, spatial transformer included, as an ONNX file or a "
        "torch.export program (.pt2) taking normalised float32 images (N, C, H, W) with N free, and returning the "
        "log-probabilities and (with a transformer that reads the image) its parameters and output. The metadata "
        "holds the classes, mean and std. The file then runs beside PyTorch on random inputs (ONNX Runtime, or "
        "torch.export.load) and the largest difference is printed and stored in the metadata (parity). "
        "ONNX needs the export extra: pip install 'torch-stn[export]'.",
    )
    p.add_argument("target", metavar="RUN_DIR|CHECKPOINT", help="a run directory (uses best.pt) or a .pt file")
    p.add_argument("--format", choices=("onnx", "pt2"), help="default: the --out suffix, else onnx")
    p.add_argument("--out", metavar="FILE", help="the file (default: model.onnx or model.pt2 beside the checkpoint)")
    p.add_argument("--opset", type=_positive_int, default=None, help="ONNX opset, 16 or later (default 18; volumes 20)")
    p.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="flip test-time augmentation in the graph (default: as the run was evaluated)",
    )
    p.add_argument("--no-check", action="store_true", help="do not run the file beside PyTorch")
    p.add_argument(
        "--model",
        metavar="NAME",
        help=WEIGHTS_OF,
    )
    p.add_argument("--data-root", help="with --model: folder holding its data set (classes and statistics)")
    p.set_defaults(run=_export)


def _export(args: argparse.Namespace) -> int:
    import torch

    from stn.engine import load_model
    from stn.export import check, export

    suffix = Path(args.out).suffix if args.out else ""
    fmt = args.format or ("pt2" if suffix == ".pt2" else "onnx")
    if suffix in (".onnx", ".pt2") and suffix != f".{fmt}":
        raise UsageError(f"--out {args.out} ends in {suffix} but --format is {fmt}: make them agree")
    if args.opset is not None and fmt != "onnx":
        raise UsageError("--opset is for --format onnx")
    model, payload, path = load_model(args.target, model=args.model, data_root=args.data_root)
    shape = tuple(payload["model_options"]["input_shape"])
    metadata = {key: payload[key] for key in ("model", "model_options", "dataset", "classes", "mean", "std")}
    tta = args.tta if args.tta is not None else bool(payload.get("config", {}).get("flip_tta", False))
    out = Path(args.out) if args.out else path.with_name(f"model.{fmt}")
    export(model, shape, out, format=fmt, metadata=metadata, opset=args.opset, tta=tta)
    what = "log-probabilities" + (" with flip test-time augmentation" if tta else "")
    print(f"Wrote {out} ({out.stat().st_size / 1e6:.1f} MB): input 'images' (N, {', '.join(map(str, shape))}), {what}")
    if not args.no_check:
        inputs = torch.randn(8, *shape, generator=torch.Generator().manual_seed(0))
        report = check(out, model, inputs)
        runtime = "ONNX Runtime" if fmt == "onnx" else "torch.export.load"
        print(
            f"{runtime} against PyTorch on 8 random inputs: max |difference| {report['max_abs_difference']:.2e} "
            "(stored in the file's metadata as 'parity')"
        )
    return 0


# ------------------------------------------------------------------------------- listings
def _add_lists(sub) -> None:
    p = sub.add_parser("models", help="list the registered models")
    p.set_defaults(run=_models)
    p = sub.add_parser("datasets", help="list the registered data sets")
    p.set_defaults(run=_datasets)


def _models(args: argparse.Namespace) -> int:
    from stn import models

    for name in models.list_models():
        entry = models.describe(name)
        print(f"{name:<18} {entry.description} (data: {entry.default_dataset})")
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from stn import data

    for name in data.names():
        print(f"{name:<15} {data.description(name)}")
    return 0


# ------------------------------------------------------------------------- visualize, report
def _add_viz(sub) -> None:
    p = sub.add_parser(
        "visualize",
        help="draw what a trained run's transformer learned (PNG and GIF)",
        description="Write a trained run's pictures: curves.png (loss and accuracy per epoch), "
        "before_after.png (test images beside the transformer's outputs), regions.png (where it looks), "
        "learning.gif and learning.png (the transformer after each epoch), statistics.png and histograms.png "
        "(its statistics). Volumes are drawn as their middle slices across D, H and W; regions.png is not "
        "drawn for them.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by stn train")
    p.add_argument("--out", metavar="DIR", help="where to write the pictures (default RUN_DIR/figures)")
    p.add_argument(
        "--count",
        type=_positive_int,
        help="test images to show (default: the run's snapshot batch of 16; more are read from the data set)",
    )
    p.add_argument("--data-root", help="folder holding the data, when --count needs it (default: the run's)")
    p.set_defaults(run=_visualize)

    p = sub.add_parser(
        "inspect",
        help="print a run's transformer statistics per epoch and its warnings",
        description="Print, per epoch, what the run's spatial transformers do (scale, anisotropy, rotation, shear, "
        "shift, share of the grid read outside the image, mirrored and collapsed samples, TPS offsets) and the "
        "warnings they raise (zooming out, collapse, reflection, pinned at a bound, no movement).",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by stn train")
    p.set_defaults(run=_inspect)

    p = sub.add_parser(
        "report",
        help="write report.md and report.html about one or more runs",
        description="Write report.md and report.html (pictures inline) with each run's config, final, best and "
        "per-class accuracy, the learning curves of all runs on one plot, and the transformer pictures.",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories written by stn train")
    p.add_argument("--out", metavar="DIR", help="where to write the report (default: the first RUN_DIR)")
    p.set_defaults(run=_report)


def _inspect(args: argparse.Namespace) -> int:
    from stn.engine import Run
    from stn.engine.statistics import format_table, run_ndim, run_statistics, warnings_for

    run = Run.open(args.run_dir)
    rows, source = run_statistics(run)
    print(f"{run.dir}: {run.config.model} on {run.config.dataset}, {run.epochs_done} of {run.config.epochs} epochs")
    if not rows:
        why = "the model has no spatial transformer (--no-stn)" if not run.config.stn else source
        print(f"No transformer statistics: {why}.")
        return 0
    print(f"Transformer statistics from {source}:")
    print(format_table(rows))
    warnings = warnings_for(rows, run.config.stn_fill, run.config.stn_lr_scale, run_ndim(run))
    print(f"Warnings: {len(warnings) or 'none'}")
    for line in warnings:
        print(f"  {line}")
    return 0


def _visualize(args: argparse.Namespace) -> int:
    from stn.viz.figures import write_figures

    written = write_figures(args.run_dir, args.out, args.count, args.data_root)
    for path in written.values():
        print(path)
    if "histograms" not in written:  # drawn for every transformer, of images or of volumes
        print("stn: this model has no spatial transformer: only its curves were drawn", file=sys.stderr)
    elif "regions" not in written:  # a transformer of volumes
        print(
            "stn: volumes are drawn as their middle slices (before_after.png); where the transformer looks "
            "(regions.png) is not drawn for volumes",
            file=sys.stderr,
        )
    return 0


def _report(args: argparse.Namespace) -> int:
    from stn.viz.report import write_report

    path = write_report(args.run_dirs, args.out)
    print(f"Report: {path} and {path.with_suffix('.html')}")
    return 0


# ------------------------------------------------------------------------------ demo, bench
def _add_experiments(sub) -> None:
    from stn.experiments.demo import SIZES
    from stn.experiments.paper import BUDGETS, ENTRIES, PRECISIONS, VARIANTS

    p = sub.add_parser(
        "demo",
        help="see a spatial transformer at work: no data set, no download",
        description="Draw distorted digits with Pillow's font, train the paper's CNN with and without an affine "
        "spatial transformer, and write report.md and report.html: accuracy of both, the transformer's view of "
        "the test glyphs, where it looks, and how it learned.",
    )
    p.add_argument("--out", default="runs/demo", help="folder for the two runs and the report (default runs/demo)")
    p.add_argument("--size", choices=list(SIZES), default="default", help="small: seconds; default: a few minutes")
    p.add_argument("--epochs", type=_positive_int, help="training epochs (default: the size's)")
    p.add_argument("--seed", type=int, default=1, help="seed of the glyphs and of training (default 1)")
    p.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N, mps")
    p.add_argument("--threads", type=_positive_int, help="CPU threads for torch")
    p.set_defaults(run=_demo)

    p = sub.add_parser("bench", help="benchmarks (stn bench paper: the paper's distorted-MNIST table; ptn; pstn)")
    bench = p.add_subparsers(dest="benchmark", metavar="BENCHMARK", parser_class=_Parser, required=True)
    q = _bench_parser(
        bench,
        "paper",
        BUDGETS,
        help="train the paper's Table 1 models on distorted MNIST and write the table",
        description="Train FCN, CNN, ST-FCN and ST-CNN (affine, projective, TPS) on MNIST R, RTS, P, E and TC, "
        "and write table-<budget>.md and .json (test error beside the paper's) into --out. Finished runs in --runs "
        "are reused, so an interrupted bench continues when run again.",
    )
    q.add_argument("--variants", nargs="+", metavar="V", help=f"subset of {' '.join(VARIANTS)}")
    q.add_argument(
        "--models",
        nargs="+",
        metavar="M",
        help=f"subset of {' '.join(e.slug for e in ENTRIES)} (default: every one for the smoke and cpu budgets, "
        "the paper's eight for long, match and full)",
    )
    q.add_argument(
        "--seeds",
        "--seed",
        nargs="+",
        type=int,
        metavar="N",
        help="training seeds: each cell is trained once per seed and the table shows the mean ± spread (default: "
        "the budget's, else 1)",
    )
    q.add_argument(
        "--amp",
        choices=list(PRECISIONS),
        default="off",
        help="precision of every run, on any machine: off (fp32, the default) or bf16; the table records it",
    )
    q.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N, mps")
    q.add_argument("--threads", type=_positive_int, help="CPU threads for torch (per run)")
    q.add_argument(
        "--jobs",
        type=_positive_int,
        default=1,
        help="runs trained at once, each in its own process (default 1); on a CPU, jobs x threads <= cores",
    )
    q.set_defaults(run=_bench_paper)
    _add_bench_ptn(bench)
    _add_bench_pstn(bench)


def _bench_parser(bench, name: str, budgets: Mapping[str, Any], help: str, description: str) -> argparse.ArgumentParser:
    """The parser of ``stn bench <name>`` with what every benchmark takes: --budget (one of
    ``budgets``, each described in the help), --out, --runs and --data-root."""
    budget_list = "; ".join(f"{b.name}: {b.description}" for b in budgets.values())
    q = bench.add_parser(name, help=help, description=f"{description} Budgets: {budget_list}")
    q.add_argument("--budget", choices=list(budgets), default="cpu", help="how long each model trains (default cpu)")
    q.add_argument("--out", default=f"results/{name}", help=f"folder for the table (default results/{name})")
    q.add_argument("--runs", help=f"folder for the run directories (default runs/{name}-<budget>)")
    q.add_argument("--data-root", help="folder holding MNIST (default $STN_DATA, else ~/.cache/stn)")
    return q


def _add_bench_ptn(bench) -> None:
    from stn.experiments.ptn import BUDGETS, ROWS, VARIANTS

    q = _bench_parser(
        bench,
        "ptn",
        BUDGETS,
        help="polar transformer network against CNN and ST-CNN on rotated MNIST, R and RTS",
        description="Train the paper's CNN, ST-CNN (affine) and the polar transformer network (ptn-cnn) on rotated "
        "MNIST (mnist-rot), R and RTS, in float32, and write table.md and table.json (test error beside the "
        "published one) into --out. Finished runs in --runs are reused.",
    )
    q.add_argument("--variants", nargs="+", metavar="V", choices=list(VARIANTS), help=f"subset of {' '.join(VARIANTS)}")
    q.add_argument("--models", nargs="+", metavar="M", help=f"subset of {' '.join(r.slug for r in ROWS)}")
    q.add_argument("--seeds", nargs="+", type=int, default=[1], metavar="N", help="training seeds (default 1)")
    q.add_argument("--threads", type=_positive_int, help="CPU threads for torch")
    q.set_defaults(run=_bench_ptn)


def _add_bench_pstn(bench) -> None:
    from stn.experiments.pstn import BUDGETS, SIZES

    q = _bench_parser(
        bench,
        "pstn",
        BUDGETS,
        help="probabilistic against plain spatial transformer: accuracy and calibration on small MNIST subsets",
        description="Train ST-CNN (affine) and the P-STN CNN (pstn-cnn) on MNIST subsets of --sizes training images "
        "with each seed, in float32, and write table.md and table.json (test error, NLL and 15-bin ECE on the "
        "10,000 test images) into --out. Finished runs in --runs are reused.",
    )
    q.add_argument(
        "--sizes", nargs="+", type=_positive_int, default=list(SIZES), metavar="N", help="training subset sizes"
    )
    q.add_argument("--seeds", nargs="+", type=int, default=[1, 2], metavar="N", help="seeds (default 1 2)")
    q.add_argument("--threads", type=_positive_int, help="CPU threads for torch")
    q.set_defaults(run=_bench_pstn)


def _bench_ptn(args: argparse.Namespace) -> int:
    from stn.experiments import ptn

    command = shlex.join(["stn", *map(str, args.argv)])
    path = ptn.run(
        args.budget, args.out, args.runs, args.data_root, args.variants, args.models, args.seeds, args.threads, command
    )
    print(f"Table: {path} and {path.with_suffix('.json')}")
    return 0


def _bench_pstn(args: argparse.Namespace) -> int:
    from stn.experiments import pstn

    command = shlex.join(["stn", *map(str, args.argv)])
    path = pstn.run(args.budget, args.out, args.runs, args.data_root, args.sizes, args.seeds, args.threads, command)
    print(f"Table: {path} and {path.with_suffix('.json')}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from stn.experiments import demo

    result = demo.run(args.out, args.size, args.epochs, args.seed, args.device, args.threads)
    print(result.line())
    print(f"Report: {result.report} and {result.report.with_suffix('.html')}")
    return 0


def _bench_paper(args: argparse.Namespace) -> int:
    from stn.experiments import paper

    path = paper.run(
        args.budget,
        args.out,
        args.runs,
        args.data_root,
        args.variants,
        args.models,
        device=args.device,
        threads=args.threads,
        seeds=args.seeds,
        jobs=args.jobs,
        amp=args.amp,
    )
    print(f"Table: {path} and {path.with_suffix('.json')}")
    return 0


# ------------------------------------------------------------------------------------- predict
def _add_predict(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="classify image files with a trained run or an exported ONNX / .pt2 file",
        description="Read each image as the run's data were (its channels, input size and normalisation), print "
        "the top classes and their probabilities, and with --out write predictions.csv and predictions.json. "
        "An .onnx file runs in ONNX Runtime, a .pt2 file through torch.export, without the training code; "
        "classes, mean and std come from the file's metadata. Folders are searched recursively for images.",
    )
    p.add_argument("target", metavar="RUN_DIR|MODEL.onnx|MODEL.pt2", help="a run directory, checkpoint or export")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER", help="image files and folders of them")
    p.add_argument("--top-k", type=_positive_int, default=3, help="classes to show per image (default 3)")
    p.add_argument("--out", metavar="DIR", help="write predictions.csv and predictions.json here")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="images per batch (default 64)")
    p.add_argument(
        "--boxes", action="store_true", help="add where the transformer looks (input pixels) to predictions.json"
    )
    p.add_argument(
        "--save-transformed",
        action="store_true",
        help="write each image's transformer output (transformed/*.png) and contact sheets into --out",
    )
    p.add_argument("--skip-bad-images", action="store_true", help="skip unreadable images and count them")
    p.add_argument(
        "--model",
        metavar="NAME",
        help=WEIGHTS_OF,
    )
    p.add_argument("--data-root", help="with --model: folder holding its data set (classes and statistics)")
    p.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar (default: on a terminal)"
    )
    p.set_defaults(run=_predict)


def _count(n: int, noun: str) -> str:
    """``"1 image"``, ``"2 images"``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _predict(args: argparse.Namespace) -> int:
    from stn.data.formats import IMAGE_SUFFIXES
    from stn.predict import image_files, load_predictor, predict_files

    if (args.boxes or args.save_transformed) and not args.out:
        raise UsageError(f"{'--boxes' if args.boxes else '--save-transformed'} writes files: give --out DIR")
    predictor = load_predictor(args.target, model=args.model, data_root=args.data_root)
    predictor.check_reads_images(args.target)  # a volume model: refused before any input is read
    if next(image_files(args.inputs), None) is None:
        raise UsageError(f"no image files in {', '.join(args.inputs)} (looked for {', '.join(IMAGE_SUFFIXES)})")
    summary = predict_files(
        predictor,
        args.inputs,
        args.out,
        top_k=args.top_k,
        batch_size=args.batch_size,
        boxes=args.boxes,
        save_transformed=args.save_transformed,
        skip_bad_images=args.skip_bad_images,
        progress=args.progress,
        echo=print,
    )
    for _, reason in summary.skipped:
        print(f"stn: skipped: {reason}", file=sys.stderr)
    counts = _count(summary.count, "image") + (
        f", {len(summary.skipped)} skipped (unreadable)" if summary.skipped else ""
    )
    where = f"; wrote {', '.join(str(p) for p in summary.written)}" if summary.written else ""
    print(f"{counts} ({predictor.backend}: {predictor.source}){where}")
    return 0


COMMANDS: list[Callable] = [_add_train, _add_evaluate, _add_export, _add_lists, _add_viz, _add_experiments]
COMMANDS.append(_add_predict)


def _add_register(sub) -> None:
    from stn.registration.cli import add_register

    add_register(sub)


COMMANDS.append(_add_register)


def build_parser() -> argparse.ArgumentParser:
    from stn import __version__

    parser = _Parser(
        prog="stn", description="Spatial Transformer Networks: train, evaluate, export, visualise, benchmark."
    )
    parser.add_argument("--version", action="version", version=f"stn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    return parser


def _speaks_for_the_run() -> bool:
    """Whether this process reports an interruption: alone, or rank 0 under a torchrun of the user's;
    under ``stn train --nproc-per-node`` the launcher does (a rank cannot tell a user's Ctrl-C from
    torchrun stopping it after a peer died)."""
    from stn.engine.distributed import LAUNCHER_ENV

    return os.environ.get("RANK", "0") == "0" and not os.environ.get(LAUNCHER_ENV)


_signalled = False  # set by a SIGINT or SIGTERM during a command


def _interrupt(signum: int, frame: object) -> None:
    global _signalled
    _signalled = True
    raise KeyboardInterrupt


def _one_line(err: BaseException) -> str:
    text = " / ".join(line.strip() for line in str(err).strip().splitlines() if line.strip())
    return text or type(err).__name__


def _internal_error(err: BaseException) -> int:
    """An error no input explains: a bug. One line, and the traceback in a file."""
    fd, path = tempfile.mkstemp(prefix="stn-traceback-", suffix=".txt")
    with os.fdopen(fd, "w") as f:
        traceback.print_exception(err, file=f)
    print(
        f"stn: internal error: {type(err).__name__}: {_one_line(err)} (a bug; the traceback is in {path}, "
        "STN_DEBUG=1 shows it here)",
        file=sys.stderr,
    )
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stn`` console script; returns the exit status.

    The one error boundary: a problem with what the user gave (flags, files, data, run
    directories) is one line on stderr and exit 2; a failed write (disk full) or a diverged run
    is one line and exit 1; anything else is a bug: one line, the traceback in a file, exit 1.
    """
    rank = int(os.environ.get("WORLD_SIZE", "1")) > 1
    try:
        code = _main(argv)
    except SystemExit as err:  # --help, a usage error, or a rank told of rank 0's error (rank 0 reports it)
        if not rank:
            raise
        code = err.code if isinstance(err.code, int) else 1
    if code and rank:
        # A rank that failed leaves now: tearing a process group down after its peers have gone
        # aborts in C++ ("terminate called ..."), a second message for one failure.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _main(argv: Sequence[str] | None) -> int:
    from stn.data import DataError
    from stn.engine import CheckpointError, RunError, TrainingDiverged
    from stn.files import WriteError

    global _signalled
    _signalled = False
    previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill` ends a run as Ctrl-C does: saved, resumable
    previous_int = signal.signal(signal.SIGINT, _interrupt)
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args, extra = build_parser().parse_known_args(argv)
        if extra:  # unknown flags reach the top parser: point to the help of the command they were given to
            where = " ".join(["stn", *(n for n in (getattr(args, k, None) for k in ("command", "benchmark")) if n)])
            raise UsageError(f"unrecognized arguments: {' '.join(extra)} (see {where} --help)")
        args.argv = argv
        if not getattr(args, "command", None):
            build_parser().print_help()
            return EXIT_USAGE
        return args.run(args)
    except (UsageError, DataError, CheckpointError, RunError, ValueError) as err:
        print(f"stn: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingDiverged as err:
        print(f"stn: training diverged: {_one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if _speaks_for_the_run():
            print("stn: interrupted", file=sys.stderr)
        return 130
    except WriteError as err:  # a full disk: what was saved before is kept, and the message says so
        print(f"stn: error: {_one_line(err)}", file=sys.stderr)
        return 1
    except OSError as err:
        where = f" {err.filename}" if err.filename else ""
        print(f"stn: error: could not read or write{where}: {err.strerror or _one_line(err)}", file=sys.stderr)
        return 1
    except Exception as err:
        if _signalled:  # what the interruption broke (a checkpoint being written, say): the last one is kept
            if _speaks_for_the_run():
                print("stn: interrupted", file=sys.stderr)
            return 130
        if os.environ.get("STN_DEBUG"):
            raise
        from stn.engine.distributed import LAUNCHER_ENV, lost_peer

        if lost := lost_peer(err):  # under torchrun: a peer died or hung; torchrun stops the rest
            if not os.environ.get(LAUNCHER_ENV):  # under stn's own launcher, it names the rank that died
                print(f"stn: error: {lost}", file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)  # a process group with a dead peer cannot shut down cleanly (C++ aborts at exit)
        return _internal_error(err)
    finally:
        signal.signal(signal.SIGTERM, previous)  # a SIGTERM while the interpreter exits is not an error
        signal.signal(signal.SIGINT, previous_int)


if __name__ == "__main__":
    sys.exit(main())
