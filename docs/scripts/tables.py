"""The measured tables of the site, generated from the committed results, never copied by hand.

    python docs/scripts/tables.py            # writes docs/generated/{paper,speed,runs}-*.md
    python docs/scripts/tables.py --check    # exit 1 if a generated table differs from the results

Sources: ``results/paper/**/table-*.json`` (``stn bench paper``), ``results/ptn/table.json`` and
``results/pstn/table.json`` (``stn bench ptn`` and ``stn bench pstn``, rendered by the benches' own
``markdown``), ``results/benchmarks.json`` (the scripts of ``benchmarks/``, one section each, one
entry per machine key), and the reference runs' ``metrics.csv`` / ``summary.json`` / ``train.log``
under ``results/``. Every table carries the
command or script, the machine and the date its source records.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import re
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))  # the ptn and pstn tables are rendered by stn.experiments
RESULTS = ROOT / "results"
OUT = ROOT / "docs" / "generated"
VARIANTS = ["R", "RTS", "P", "E", "TC"]


# ---------------------------------------------------------------------------------------------
# shared


def _date(stamp: str) -> str:
    """``2026-11-26T05:53:13+00:00`` -> ``2026-11-26 05:53 UTC``."""
    moment = datetime.fromisoformat(stamp)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _machine(machine: dict) -> str:
    cpu = machine.get("cpu") or machine.get("gpu") or machine.get("device", "?")
    cores = f", {machine['cpu_count']} cores" if machine.get("cpu_count") else ""
    threads = f", {machine['threads']} torch thread{'s' * (machine['threads'] != 1)}" if machine.get("threads") else ""
    torch = f", torch {machine['torch']}" if machine.get("torch") else ""
    load = ""
    if machine.get("load_average"):
        load = f", load average {machine['load_average'][0]:.1f} at the start"
    return f"{cpu}{cores}{threads}{torch}{load}"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _n(value: float, digits: int = 0) -> str:
    """A number with thousands separators."""
    return f"{value:,.{digits}f}"


def _sig(value: float, figures: int = 3) -> str:
    """``value`` to about ``figures`` significant figures, without scientific notation."""
    if value == 0:
        return "0"
    digits = max(0, figures - 1 - int(f"{abs(value):e}".split("e")[1]))
    return _n(value, digits)


# ---------------------------------------------------------------------------------------------
# the paper's table (stn bench paper)


def _paper_source(meta: dict, path: Path) -> str:
    hours = meta["seconds"] / 3600
    wall = f", {meta['wall_seconds'] / 3600:.2f} hours wall" if meta.get("wall_seconds") else ""
    return (
        f"*Source: `{path.relative_to(ROOT).as_posix()}`; command `{meta['command']}`; "
        f"{_machine(meta['machine'])}; finished {_date(meta['date'])}; {hours:.2f} hours of training{wall}.*\n"
    )


def _cells(results: list[dict]) -> tuple[list[str], dict[tuple[str, str], dict]]:
    models: list[str] = []
    cells = {}
    for row in results:
        if row["model"] not in models:
            models.append(row["model"])
        cells[(row["model"], row["variant"])] = row
    return models, cells


def paper_errors(path: Path) -> str:
    """Test error in %, ours / the paper's (ours alone where the paper has no such model)."""
    meta = json.loads(path.read_text())
    models, cells = _cells(meta["results"])
    rows = []
    for model in models:
        row = [model]
        for variant in VARIANTS:
            cell = cells.get((model, variant))
            if cell is None:
                row.append("")
            else:
                ours = f"{cell['error']:.2f}"
                if len(cell.get("errors", ())) > 1:
                    ours += f" ± {cell['spread']:.2f}"
                row.append(ours if cell.get("paper_error") is None else f"{ours} / {cell['paper_error']}")
        rows.append(row)
    return _table(["model", *VARIANTS], rows) + "\n" + _paper_source(meta, path)


def paper_against(path: Path, within: float = 0.3, goals: dict[str, float] | None = None) -> str:
    """Our error minus the paper's, in points; bold where within ``within`` of the paper or below
    it, or for the row families in ``goals`` (``{"ST-CNN": 0.3}``), within their own goal."""
    meta = json.loads(path.read_text())
    models, cells = _cells(meta["results"])
    rows, close, total = [], 0, 0
    met: dict[str, list[bool]] = {family: [] for family in goals or {}}
    for model in models:
        family = next((f for f in goals or {} if model.startswith(f + " ")), None)
        limit = goals[family] if family else within
        row = [model]
        for variant in VARIANTS:
            cell = cells.get((model, variant))
            if cell is None or cell.get("paper_error") is None:
                row.append("")
                continue
            total += 1
            diff = cell["error"] - cell["paper_error"]
            text = f"{diff:+.2f}"
            if family:
                met[family].append(diff <= limit + 1e-9)
            if diff <= limit + 1e-9:
                close += 1
                text = f"**{text}**"
            row.append(text)
        if any(row[1:]):
            rows.append(row)
    if not goals:
        return (
            _table(["model", *VARIANTS], rows)
            + f"\n{close} of {total} cells within {within} points of the paper or below it.\n"
        )
    reached = "; ".join(f"{f}: {sum(m)} of {len(m)} cells within {goals[f]} points" for f, m in met.items())
    return _table(["model", *VARIANTS], rows) + f"\nGoals reached: {reached}.\n"


def paper_seeds(path: Path) -> str:
    """Mean ± half the range over the seeds, / the paper's."""
    meta = json.loads(path.read_text())
    models, cells = _cells(meta["results"])
    seeds = meta["config"].get("seeds", [])
    rows = []
    for model in models:
        row = [model]
        for variant in VARIANTS:
            cell = cells.get((model, variant))
            if cell is None:
                row.append("")
                continue
            errors = " / ".join(f"{e:.2f}" for e in cell["errors"])
            row.append(f"{cell['error']:.2f} ± {cell['spread']:.2f} ({errors}) / {cell['paper_error']}")
        rows.append(row)
    used = [v for v in VARIANTS if any((m, v) in cells for m in models)]
    rows = [[r[0]] + [r[1 + VARIANTS.index(v)] for v in used] for r in rows]
    seeds_text = ", ".join(map(str, seeds))
    note = f"Mean ± half the range over seeds {seeds_text} (each seed's error in brackets) / the paper's.\n\n"
    return note + _table(["model", *used], rows) + "\n" + _paper_source(meta, path)


def paper_against_cnn(path: Path) -> str:
    """Each ST-CNN against the CNN at the same budget, per variant."""
    meta = json.loads(path.read_text())
    models, cells = _cells(meta["results"])
    st = [m for m in models if m.startswith(("ST-CNN", "IC-STN"))]
    rows = []
    for variant in VARIANTS:
        base = cells.get(("CNN", variant))
        if base is None:
            continue
        row: list[object] = [variant, f"{base['error']:.2f}"]
        best = None
        beats = True
        for model in st:
            cell = cells.get((model, variant))
            if cell is None:
                row.append("")
                continue
            diff = cell["error"] - base["error"]
            beats &= diff < 0
            best = cell["error"] if best is None else min(best, cell["error"])
            row.append(f"{cell['error']:.2f} ({diff:+.2f})")
        removed = f"{100 * (1 - best / base['error']):.0f}%" if best is not None else ""
        rows.append([*row, "yes" if beats else "no", removed])
    header = ["variant", "CNN", *st, "every ST-CNN beats CNN", "errors removed (best)"]
    return "Test error in %; in brackets, the change from CNN in points (negative: fewer errors).\n\n" + _table(
        header, rows
    )


# ---------------------------------------------------------------------------------------------
# polar and probabilistic transformers (stn bench ptn, stn bench pstn)


def bench_table(bench: str) -> str:
    """``results/<bench>/table.json`` as the bench itself renders it (``stn.experiments.<bench>.markdown``,
    the text of its ``table.md``), without the title: the page has its own heading."""
    meta = json.loads((RESULTS / bench / "table.json").read_text())
    text = importlib.import_module(f"stn.experiments.{bench}").markdown(meta["results"], meta)
    return text.split("\n", 2)[2] if text.startswith("# ") else text


# ---------------------------------------------------------------------------------------------
# speed (results/benchmarks.json)

SCRIPTS = {
    "flops": "benchmarks/flops.py",
    "train_throughput": "benchmarks/train_throughput.py",
    "recipe_time": "benchmarks/recipe_time.py",
    "recipe_time amp=bf16": "benchmarks/recipe_time.py --set amp=bf16",
    "warp_throughput": "benchmarks/warp_throughput.py",
    "step_profile": "benchmarks/step_profile.py",
    "scaling": "benchmarks/scaling.py",
    "ddp_throughput": "benchmarks/ddp_throughput.py",
}


def _benchmarks() -> dict:
    return json.loads((RESULTS / "benchmarks.json").read_text())


def _bench_source(section: str, key: str, entry: dict) -> str:
    machine = entry["machine"]
    flag = "" if key == machine.get("device") else f" `--key {key}`"
    return (
        f"*Source: `results/benchmarks.json`, section `{section}`, key `{key}`; `{SCRIPTS[section]}`{flag}; "
        f"{_machine(machine)}; {_date(machine['date'])}.*\n"
    )


def speed_flops() -> str:
    entries = _benchmarks()["flops"]
    rows = []
    for key, e in entries.items():
        floor = e["floor_seconds_per_epoch"]["measured matmul"]["epoch"]
        rows.append(
            [
                f"`{key}`",
                e["machine"]["cpu"],
                f"{e['mflop_per_image']['forward']:.1f}",
                f"{e['mflop_per_image']['train']:.1f}",
                f"{e['peak_tflops']['fp32']:.3f}",
                _sig(e["peak_tflops"]["bf16"], 2),
                f"{floor:.1f} s ({e['floor_dtype']})",
            ]
        )
    header = ["key", "CPU", "MFLOP / image, forward", "forward + backward", "peak fp32 TFLOP/s", "bf16", "epoch floor"]
    sources = "".join(_bench_source("flops", key, e) + "\n" for key, e in entries.items())
    return _table(header, rows) + "\n" + sources


def _loop_label(row: dict) -> str:
    if row["loop"] == "tutorial":
        return "tutorial-style loop"
    parts = ["engine", "channels_last" if row["layout"] == "NHWC" else "NCHW"]
    if row["recipe"] != "seed":
        parts.append(f"{row['recipe']} recipe")
    if row["compile"] != "off":
        parts.append(f"torch.compile ({row['compile']})")
    return ", ".join(parts)


def speed_train() -> str:
    out = []
    for key, e in _benchmarks()["train_throughput"].items():
        rows = [
            [
                _loop_label(r),
                r["batch"],
                r["dtype"],
                _n(r["images_per_s"]),
                f"{r['peak_percent']:.0f}%",
                f"{r['x_tutorial']:.2f}",
            ]
            for r in e["rows"]
        ]
        out.append(f"#### `{key}`\n\n")
        out.append(_table(["loop", "batch", "dtype", "images/s", "% of peak (its dtype)", "x tutorial"], rows))
        out.append("\n" + _bench_source("train_throughput", key, e) + "\n")
    return "".join(out)


def speed_optimizer() -> str:
    e = _benchmarks()["train_throughput"]["cpu"]
    rows = [[r["sgd"], r["implementation"], f"{r['us_per_step']:.0f}"] for r in e["optimizer_step"]]
    return (
        _table(["SGD of the recipe", "implementation", "µs per step"], rows)
        + "\n"
        + _bench_source("train_throughput", "cpu", e)
    )


def speed_recipes() -> str:
    out = []
    for section in ("recipe_time", "recipe_time amp=bf16"):
        for key, e in _benchmarks()[section].items():
            rows = []
            for r in e["rows"]:
                loop = (
                    f"run `results/{r['run']}`"
                    if r["source"] == "metrics.csv"
                    else f"{r['run']}, 1 epoch x {r['epochs']}"
                )
                accuracy = f"{r['final_accuracy']:.2f}%" if "final_accuracy" in r else ""
                rows.append(
                    [
                        r["recipe"],
                        loop,
                        r["dtype"],
                        f"{r['s_per_epoch']:.1f} s",
                        f"{r['hours'] * 60:.1f} min",
                        f"{r['x_floor']:.2f}",
                        accuracy,
                    ]
                )
            header = [
                "recipe",
                "measured as",
                "dtype",
                "per epoch",
                f"{e['rows'][0]['epochs']} epochs",
                "x floor",
                "final",
            ]
            out.append(
                f"#### `{section}`, `{key}`\n\n" + _table(header, rows) + "\n" + _bench_source(section, key, e) + "\n"
            )
    return "".join(out)


def speed_warp() -> str:
    out = []
    for key, e in _benchmarks()["warp_throughput"].items():
        sizes = list(dict.fromkeys(r["size"] for r in e["rows"]))
        labels: dict[str, dict[str, dict]] = {}
        for r in e["rows"]:
            label = (
                r["family"] if r.get("sampler") in (None, "warp (grid_sample)") else f"{r['family']}, {r['sampler']}"
            )
            labels.setdefault(label, {})[r["size"]] = r
        rows = [
            [f"`{label}`" if "," not in label else label]
            + [f"{by[s]['train_ms']:.1f}" if s in by else "" for s in sizes]
            for label, by in labels.items()
        ]
        out.append(f"#### `{key}`\n\n" + _table(["family", *(s.replace("x", " x ") for s in sizes)], rows))
        out.append("\n" + _bench_source("warp_throughput", key, e) + "\n")
    return "".join(out)


def speed_profile() -> str:
    out = []
    for key, e in _benchmarks()["step_profile"].items():
        parts = list(e["results"]["fp32"]["parts"])
        rows = []
        for part in sorted(parts, key=lambda p: -e["results"]["fp32"]["parts"][p]):
            row = [part]
            for dtype in ("fp32", "bf16"):
                res = e["results"].get(dtype)
                row.append(f"{100 * res['parts'].get(part, 0) / res['profiled_step_seconds']:.1f}%" if res else "")
            rows.append(row)
        steps = [f"{d} {1000 * e['results'][d]['step_seconds']:.1f} ms" for d in ("fp32", "bf16") if d in e["results"]]
        out.append(f"Step of `seed-cifar`, batch {e['batch_size']}: {', '.join(steps)}.\n\n")
        out.append(_table(["part", "share of the fp32 step", "of the bf16 step"], rows) + "\n")
        conv = [
            [
                f"`{c['layer']}`",
                c["shape"],
                *(
                    f"{c[f'{d}_{p}_ms']:.2f} ({c[f'{d}_{p}_peak']:.0f}%)"
                    for d in ("fp32", "bf16")
                    for p in ("fwd", "bwd")
                ),
            ]
            for c in e["convolutions"]
        ]
        header = ["layer", "shape", "fp32 forward", "fp32 backward", "bf16 forward", "bf16 backward"]
        out.append("Each convolution, ms per step (its rate as a share of the matmul peak in that precision):\n\n")
        out.append(_table(header, conv) + "\n" + _bench_source("step_profile", key, e) + "\n")
    return "".join(out)


def speed_scaling() -> str:
    out = []
    for key, e in _benchmarks()["scaling"].items():
        rows, skipped = [], []
        for r in e["training"]:
            if "step_ms" not in r:
                skipped.append(f"{r['size']} x {r['batch']} ({r['dtype']}, {r['note']})")
                continue
            step = r["step_ms"]
            rows.append(
                [
                    r["size"],
                    r["batch"],
                    r["dtype"],
                    _sig(step, 3),
                    f"{100 * r['localisation_ms'] / step:.0f}%",
                    f"{r['sampling_percent']:.1f}%",
                    f"{100 * r['classifier_ms'] / step:.0f}%",
                    _sig(r["images_per_s"], 3),
                ]
            )
        header = ["input", "batch", "dtype", "step ms", "localisation", "sampling", "classifier", "images/s"]
        out.append(_table(header, rows) + "\n")
        if skipped:
            out.append(f"Left out (input x batch): {', '.join(skipped)}.\n\n")
        inference = [
            [
                r["batch"],
                _n(r["pytorch_fp32_images/s"]),
                _n(r["pytorch_bf16_images/s"]),
                _n(r["onnxruntime_fp32_images/s"]),
            ]
            for r in e["inference"]
        ]
        out.append("Inference of `seed-cifar` (32x32, eval mode), images/s:\n\n")
        out.append(_table(["batch", "PyTorch fp32", "PyTorch bf16", "ONNX Runtime fp32"], inference))
        out.append("\n" + _bench_source("scaling", key, e) + "\n")
    return "".join(out)


def speed_ddp() -> str:
    out = []
    for key, e in _benchmarks()["ddp_throughput"].items():
        rows = [[r["config"], _n(r["images_per_s"]), _n(r["ms_per_step"])] for r in e["rows"]]
        out.append(_table(["configuration", "images/s", "ms per step"], rows) + "\n")
        out.append(
            f"Global batch {e['batch']}, {e['steps']} steps each, {e['data']} data. The gradient exchange is "
            f"{100 * e['communication_share']:.0f}% of a data-parallel step; the all-reduce of the "
            f"{e['gradient_mb']:.1f} MB of gradients alone takes {e['allreduce_ms']:.1f} ms. Note: {e['note']}.\n\n"
        )
        out.append(_bench_source("ddp_throughput", key, e) + "\n")
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# the reference runs (results/<run>/metrics.csv)


def _metrics(run: str) -> list[dict[str, float]]:
    with open(RESULTS / run / "metrics.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def _at(rows: list[dict], epoch: int) -> str:
    for row in rows:
        if int(row["epoch"]) == epoch:
            return f"{row['test_accuracy']:.2f}%"
    return ""


def _first_at(rows: list[dict], accuracy: float) -> str:
    for row in rows:
        if row["test_accuracy"] >= accuracy:
            return str(int(row["epoch"]))
    return "never"


def runs_table(
    runs: Sequence[tuple[str, str]],
    epochs: Sequence[int],
    reference: list[str] | None = None,
    reach: float | None = None,
) -> str:
    header = ["run", *(f"epoch {e}" for e in epochs), "best"]
    if reach is not None:
        header.append(f"first epoch at {reach:g}%")
    rows = [reference] if reference else []
    for label, run in runs:
        metrics = _metrics(run)
        best = max(metrics, key=lambda r: r["test_accuracy"])
        row = [f"{label} (`results/{run}`)", *(_at(metrics, e) for e in epochs)]
        row.append(f"{best['test_accuracy']:.2f}% (epoch {int(best['epoch'])})")
        if reach is not None:
            row.append(_first_at(metrics, reach))
        rows.append(row)
    return _table(header, rows)


def runs_cifar() -> str:
    seed = runs_table(
        [
            ("`seed-cifar`, seed recipe", "seed-cifar"),
            ("`--no-stn`", "seed-cifar-nostn"),
            ("`--amp bf16`", "seed-cifar-bf16"),
            ("on the Intel Xeon", "seed-cifar-xeon"),
        ],
        [1, 10, 20, 50],
        reference=["seed write-up (reference)", "35%", "56%", "63%", "66%", "67%"],
    )
    return seed


def runs_fast() -> str:
    return runs_table(
        [
            ("seed recipe", "seed-cifar"),
            ("`--recipe fast`", "fast-cifar"),
            ("`--recipe fast --no-stn`", "fast-cifar-nostn"),
            ("`--recipe fast --amp bf16`", "fast-cifar-bf16"),
        ],
        [1, 10, 20, 50],
        reach=66,
    )


def runs_mnist() -> str:
    return runs_table(
        [("`tutorial-mnist`", "tutorial-mnist")],
        [1, 10, 20],
        reference=["PyTorch tutorial (reference)", "", "", "about 98.8%", ""],
    )


def runs_demo() -> str:
    rows = []
    for label, run in (
        ("CNN with an affine spatial transformer", "with-stn"),
        ("the same CNN without it", "without-stn"),
    ):
        summary = json.loads((RESULTS / "demo" / run / "summary.json").read_text())
        rows.append([f"{label} (`results/demo/{run}`)", f"{summary['final_accuracy']:.2f}%", summary["epochs"]])
    return _table(["`stn demo`", "test accuracy", "epochs"], rows)


def runs_diagnostics() -> str:
    rows = []
    for label, run in (
        ("seed recipe", "diagnostics/seed-cifar-2ep"),
        ("fast recipe", "diagnostics/fast-cifar-3ep"),
        ("tutorial-mnist", "diagnostics/tutorial-mnist-3ep"),
        ("demo, with the STN", "diagnostics/demo"),
    ):
        last = _metrics(run)[-1]
        log = (RESULTS / run / "train.log").read_text()
        warned = sorted(set(re.findall(r"stn: warning: epoch (\d+): stn ([^:(]+)", log)), key=lambda w: int(w[0]))
        warnings = "; ".join(f"{what.strip()} (epoch {epoch})" for epoch, what in warned) or "none"
        rows.append(
            [
                f"{label} (`results/{run}`)",
                int(last["epoch"]),
                f"{last['stn_scale_mean']:.2f} ± {last['stn_scale_std']:.2f}",
                f"{100 * last['stn_outside_share']:.0f}%",
                f"{100 * last['stn_outside_samples']:.0f}%",
                warnings,
            ]
        )
    header = ["run", "epoch", "scale", "reads outside (grid)", "samples > 15% outside", "warnings"]
    return _table(header, rows)


# ---------------------------------------------------------------------------------------------

PAPER = RESULTS / "paper"
TABLES: dict[str, Callable[[], str]] = {
    "paper-match.md": lambda: paper_errors(PAPER / "table-match.json"),
    "paper-match-against.md": lambda: paper_against(PAPER / "table-match.json", goals={"ST-CNN": 0.3, "ST-FCN": 0.5}),
    "paper-match-against-cnn.md": lambda: paper_against_cnn(PAPER / "table-match.json"),
    "paper-long.md": lambda: paper_errors(PAPER / "table-long.json"),
    "paper-long-against.md": lambda: paper_against(PAPER / "table-long.json"),
    "paper-long-seeds.md": lambda: paper_seeds(PAPER / "long-seeds" / "table-long.json"),
    "paper-long-seeds-proj-tps.md": lambda: paper_seeds(PAPER / "long-seeds-proj-tps" / "table-long.json"),
    "paper-cpu.md": lambda: paper_errors(PAPER / "table-cpu.json"),
    "paper-cpu-against-cnn.md": lambda: paper_against_cnn(PAPER / "table-cpu.json"),
    "ptn.md": lambda: bench_table("ptn"),
    "pstn.md": lambda: bench_table("pstn"),
    "speed-flops.md": speed_flops,
    "speed-train.md": speed_train,
    "speed-optimizer.md": speed_optimizer,
    "speed-recipes.md": speed_recipes,
    "speed-warp.md": speed_warp,
    "speed-profile.md": speed_profile,
    "speed-scaling.md": speed_scaling,
    "speed-ddp.md": speed_ddp,
    "runs-cifar.md": runs_cifar,
    "runs-fast.md": runs_fast,
    "runs-mnist.md": runs_mnist,
    "runs-demo.md": runs_demo,
    "runs-diagnostics.md": runs_diagnostics,
}


def generate() -> dict[str, str]:
    return {name: make() for name, make in TABLES.items()}


def check(out: Path = OUT) -> list[str]:
    return [
        f"stale or missing {(out / name).relative_to(ROOT)} (run python docs/scripts/tables.py)"
        for name, text in generate().items()
        if not (out / name).is_file() or (out / name).read_text() != text
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="check, do not write")
    args = parser.parse_args()
    if args.check:
        problems = check()
        print("\n".join(problems) or "tables up to date")
        return 1 if problems else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in generate().items():
        (OUT / name).write_text(text)
    print(f"wrote {len(TABLES)} tables to {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
