"""``stn register``: its flags (one per :class:`~stn.registration.RegisterConfig` field) and its run."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from datetime import datetime
from pathlib import Path

from stn.registration.config import RegisterConfig

__all__ = ["add_register"]


def _key_value(text: str) -> tuple[str, object]:
    import json

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip().replace("-", "_"), json.loads(value)
    except json.JSONDecodeError:
        return key.strip().replace("-", "_"), value


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive ints, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive ints, got {text!r}")
    return widths


_TYPES = {"int": int, "float": float, "str": str, "tuple[int, ...]": _widths}


def add_register(sub) -> None:
    """Add ``stn register`` to the subcommands ``sub``."""
    p = sub.add_parser(
        "register",
        help="train an unsupervised registration network (volumes or images; congealing with --template)",
        description="Train a network that aligns a moving volume (or image) to a fixed one: local NCC or MSE, "
        "the field's smoothness, optionally Dice on label maps; Dice and % folding (det J <= 0) every epoch. "
        "Writes the run directory (config.json, train.log, metrics.csv, last.pt, summary.json, report.md).",
    )
    for f in dataclasses.fields(RegisterConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        help = f.metadata["help"] + ("" if default in (None, "") else f" (default {default})")
        kind = str(f.type).replace(" | None", "")
        if kind == "bool":
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help)
        elif kind == "dict[str, Any]":
            p.add_argument(flag[:-1], dest=f.name, type=_key_value, action="append", metavar="KEY=VALUE", help=help)
        else:
            p.add_argument(flag, type=_TYPES[kind], choices=f.metadata.get("choices"), default=None, help=help)
    p.add_argument("--out", help="run directory (default runs/register-<data>-<time>)")
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR where it stopped (may change --epochs, --threads, --device, --data-root)",
    )
    p.add_argument("--no-report", dest="report", action="store_false", help="skip report.md and its pictures")
    p.set_defaults(run=_register)


def _register(args: argparse.Namespace) -> int:
    given = {}
    for f in dataclasses.fields(RegisterConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            given[f.name] = dict(value) if f.name == "data_options" else value
    from stn.registration.train import register, resume_config

    if args.resume:
        if args.out:
            raise ValueError("--resume continues a run in its own directory; drop --out")
        cfg, out = resume_config(args.resume, given), Path(args.resume)
    else:
        cfg = RegisterConfig(**given).validate()
        out = Path(args.out or f"runs/register-{cfg.data}-{datetime.now():%Y%m%d-%H%M%S}")
    try:
        summary = register(cfg, out, resume=bool(args.resume), stream=sys.stdout)
    except KeyboardInterrupt:
        saved = "nothing was saved to resume"
        if (out / "last.pt").is_file():
            saved = f"the last finished epoch is saved. Resume with: stn register --resume {out}"
        print(f"\nstn: interrupted; {saved}", file=sys.stderr)
        return 130
    print(
        f"Run directory: {out}  (Dice {summary['dice_before']:.4f} -> {summary['dice']:.4f}, "
        f"folding {summary['folding_percent']:.3f}%, {summary['seconds']:.0f} s)"
    )
    if args.report:
        from stn.registration.report import write_report

        print(f"Report: {write_report(out)}")
    return 0
