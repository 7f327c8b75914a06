"""``stn bench paper`` end to end on a tiny fake MNIST, and its table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import stn
from stn.cli import main
from stn.engine import Run
from stn.experiments import paper
from stn.experiments import runs as bench_runs
from tests.data.test_distorted import fake_mnist


@pytest.fixture
def mnist_root(tmp_path, monkeypatch):
    return fake_mnist(tmp_path / "data", train=24, test=8, monkeypatch=monkeypatch)


def test_the_plan_covers_the_papers_table():
    cells = paper.plan()
    assert len(cells) == 4 * 8 + 4 + 4 + 2 + 4 + 4  # the paper's, then the new rows (paper.NEW_ROWS)
    assert [v for v, e in cells if e.label == "ST-CNN Polar"] == ["R", "RTS"]
    assert {e.label for v, e in cells if v == "TC"} == {"FCN", "CNN", "ST-FCN Aff", "ST-CNN Aff"}
    assert paper.plan(["rts"], ["st-cnn-tps", "CNN"]) == [("RTS", paper.ENTRIES[7]), ("RTS", paper.ENTRIES[1])]
    with pytest.raises(ValueError, match="unknown variant"):
        paper.plan(["X"])
    with pytest.raises(ValueError, match="unknown model"):
        paper.plan(None, ["ST-RNN"])


def test_smoke_bench_trains_writes_the_table_and_reuses_finished_runs(mnist_root, tmp_path, monkeypatch):
    out, runs = tmp_path / "results", tmp_path / "runs"
    args = dict(out=out, runs=runs, data_root=str(mnist_root), variants=["R", "TC"], models=["cnn", "st-cnn-aff"])
    path = paper.run("smoke", threads=1, command="stn bench paper --budget smoke", log=lambda line: None, **args)
    assert path == out / "table-smoke.md"
    table = path.read_text()
    assert "| CNN | " in table and "| ST-CNN Aff | " in table and "| model | R | TC |" in table
    assert "ST-CNN against CNN" in table and "`smoke`-budget numbers" in table
    report = json.loads((out / "table-smoke.json").read_text())
    assert report["budget"] == "smoke" and report["command"] == "stn bench paper --budget smoke"
    assert {"cpu", "cpu_count", "device", "torch"} <= set(report["machine"]) and report["date"]
    assert [(r["variant"], r["model"]) for r in report["results"]] == [
        ("R", "CNN"),
        ("R", "ST-CNN Aff"),
        ("TC", "CNN"),
        ("TC", "ST-CNN Aff"),
    ]
    assert all(0 <= r["error"] <= 100 for r in report["results"])
    config = json.loads((runs / "tc-st-cnn-aff" / "config.json").read_text())
    assert config["dataset"] == "mnist-tc" and config["stn"] and config["transform"] == "affine"

    # Run again: every cell is finished, nothing trains.
    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(bench_runs, "train", no_training)  # the benches train through stn.experiments.runs
    again = paper.run("smoke", log=lambda line: None, **args).read_text()
    assert again.split("\nRun ")[0] == table.split("\nRun ")[0]
    with pytest.raises(ValueError, match="holds a run with another"):
        paper.run("cpu", log=lambda line: None, **args)


def test_seeds_train_every_cell_once_each_and_the_table_shows_mean_and_spread(mnist_root, tmp_path):
    args = dict(out=tmp_path / "results", runs=tmp_path / "runs", data_root=str(mnist_root), threads=1)
    path = paper.run("smoke", variants=["TC"], models=["fcn"], seeds=[1, 2], log=lambda line: None, **args)
    (cell,) = json.loads(path.with_suffix(".json").read_text())["results"]
    assert cell["seeds"] == [1, 2] and len(cell["errors"]) == 2
    assert cell["error"] == pytest.approx(sum(cell["errors"]) / 2, abs=0.006)
    assert cell["spread"] == pytest.approx(abs(cell["errors"][0] - cell["errors"][1]) / 2, abs=0.006)
    assert cell["run_dirs"] == [str(tmp_path / "runs" / "tc-fcn"), str(tmp_path / "runs" / "tc-fcn-seed2")]
    for seed, run_dir in zip([1, 2], cell["run_dirs"], strict=True):
        assert json.loads((Path(run_dir) / "config.json").read_text())["seed"] == seed
    table = path.read_text()
    assert f"| FCN | {cell['error']:.2f} ± {cell['spread']:.2f} / 13.2 |" in table
    assert "mean over seeds 1, 2" in table and "## Against the paper" in table
    with pytest.raises(ValueError, match="seeds must differ"):
        paper.run("smoke", seeds=[1, 1], log=lambda line: None, **args)


def _meta(budget: str, description: str) -> dict:
    """A table's metadata as ``paper.run`` writes it, for ``paper.markdown``."""
    machine = dict(cpu="a CPU", cpu_count=2, threads=1, device="cpu", torch="2")
    return dict(
        budget=budget,
        budget_description=description,
        machine=machine,
        date="today",
        command="stn bench paper",
        seconds=60.0,
    )


def test_the_comparison_says_by_how_much_st_cnn_beats_cnn():
    results = [
        dict(variant="R", model="CNN", error=4.0),
        dict(variant="R", model="ST-CNN Aff", error=1.0),
        dict(variant="R", model="ST-CNN TPS", error=5.0),
    ]
    meta = _meta("cpu", "short")
    text = paper.markdown(results, meta)
    assert "| variant | CNN | ST-CNN Aff | ST-CNN TPS | every ST-CNN beats CNN | errors removed (best) |" in text
    assert "| R | 4.00 | 1.00 (-3.00) | 5.00 (+1.00) | **no** | 75% |" in text
    assert "| ST-CNN Aff | 1.00 / 0.7 |" in text
    assert "| CNN | +2.80 |" in text and "| ST-CNN Aff | **+0.30** |" in text and "| ST-CNN TPS | +4.30 |" in text
    assert "1 of 3 cells within 0.3 points of the paper or below it." in text and "1.0 min (0.02 hours)" in text


def test_the_table_shows_the_papers_tc_numbers_beside_ours():
    results = [dict(variant="TC", model=m, error=e) for m, e in (("FCN", 20.0), ("CNN", 5.0), ("ST-CNN Aff", 1.5))]
    meta = _meta("long", "long")
    text = paper.markdown(results, meta)
    assert "| FCN | 20.00 / 13.2 |" in text and "| CNN | 5.00 / 3.5 |" in text and "| ST-CNN Aff | 1.50 / 1.7 |" in text
    assert "| ST-CNN Aff | **-0.20** |" in text and "| FCN | +6.80 |" in text
    assert {m: e["TC"] for m, e in paper.PAPER_ERRORS.items() if "TC" in e} == {
        "FCN": 13.2,
        "CNN": 3.5,
        "ST-FCN Aff": 2.0,
        "ST-CNN Aff": 1.7,
    }


def test_cli_bench_paper(mnist_root, tmp_path, capsys):
    argv = ["bench", "paper", "--budget", "smoke", "--variants", "E", "--models", "fcn", "--threads", "1"]
    argv += ["--data-root", str(mnist_root), "--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs")]
    assert main([*argv, "--seeds", "1", "3"]) == 0
    assert (tmp_path / "out" / "table-smoke.md").is_file()
    assert json.loads((tmp_path / "out" / "table-smoke.json").read_text())["results"][0]["seeds"] == [1, 3]
    assert "Table: " in capsys.readouterr().out
    assert main(["bench"]) == 2
    assert main([*argv[:4], "--variants", "Q"]) == 2
    assert "unknown variant 'Q'" in capsys.readouterr().err


@pytest.mark.parametrize("budget", list(paper.BUDGETS))
def test_every_budget_is_a_valid_training_config(budget):
    cfg = paper.config_for("TC", paper.ENTRIES[7], paper.BUDGETS[budget], None, 1, "cpu", None)  # ST-CNN TPS
    assert cfg.dataset == "mnist-tc" and cfg.stn and cfg.transform == "tps" and cfg.stn_fill == "black"
    if budget == "full":  # the paper's 150,000 steps of 256 images
        assert cfg.batch_size == 256 and cfg.epochs * 60000 // 256 >= 150000
        assert cfg.dataset_options["fresh_distortions"]
    if budget == "long":
        assert cfg.dataset_options["fresh_distortions"] and cfg.epochs >= 10


def test_a_budget_with_fresh_distortions_trains_on_them(mnist_root, tmp_path, monkeypatch):
    from stn.engine import RECIPES

    smoke = RECIPES["paper-smoke"]
    options = {**smoke["dataset_options"], "fresh_distortions": True}
    monkeypatch.setitem(RECIPES, "paper-smoke", {**smoke, "dataset_options": options})
    args = dict(out=tmp_path / "results", runs=tmp_path / "runs", data_root=str(mnist_root), threads=1)
    path = paper.run("smoke", variants=["E"], models=["fcn"], log=lambda line: None, **args)
    saved = json.loads((tmp_path / "runs" / "e-fcn" / "config.json").read_text())
    assert saved["dataset_options"]["fresh_distortions"] is True
    assert json.loads(path.with_suffix(".json").read_text())["config"]["dataset_options"]["fresh_distortions"] is True


@pytest.mark.parametrize("model, transform", [("paper-fcn", "projective"), ("paper-cnn", "tps")])
def test_stn_train_runs_the_paper_models_on_a_variant(mnist_root, tmp_path, model, transform):
    argv = ["train", "--model", model, "--dataset", "mnist-rts", "--data-root", str(mnist_root), "--epochs", "1"]
    argv += ["--transform", transform, "--threads", "1", "--out", str(tmp_path / "st"), "--no-report"]
    assert main(argv) == 0
    assert main([*argv[:-3], "--no-stn", "--out", str(tmp_path / "plain"), "--no-report"]) == 0
    st, plain = Run.open(tmp_path / "st"), Run.open(tmp_path / "plain")
    assert st.config.transform == transform and st.config.stn and not plain.config.stn
    family = stn.transforms.get(transform)
    assert st.model().stn.transform == family and plain.model().stn is None
    row = st.metrics()[-1]
    assert "stn_outside_share" in row and not any(key.startswith("stn") for key in plain.metrics()[-1])
    if transform == "tps":
        assert "stn_tps_offset_max" in row and row["stn_tps_offset_max"] > 0  # the spline has moved
    else:
        assert 0 < row["stn_scale_mean"] < 10
    options = json.loads((tmp_path / "st" / "config.json").read_text())
    assert options["transform"] == transform and options["dataset"] == "mnist-rts"


def test_new_rows_pass_their_model_options(mnist_root, tmp_path):
    ic = next(e for e in paper.ENTRIES if e.label == "IC-STN Aff")
    cfg = paper.config_for("R", ic, paper.BUDGETS["smoke"], None, 1, "cpu", None)
    assert cfg.model_options == {"recurrent_steps": 4} and cfg.transform == "affine"
    args = dict(out=tmp_path / "results", runs=tmp_path / "runs", data_root=str(mnist_root))
    path = paper.run("smoke", variants=["R"], models=["st-cnn-polar", "cnn"], threads=1, log=lambda line: None, **args)
    table = path.read_text()
    against = table.split("## Against the paper")[1].split("##")[0]
    assert "| CNN | " in against and "Polar" not in against  # no paper number, no row
    assert "| ST-CNN Polar | " in table and " / None" not in table
    assert "One training step" not in table  # benchmarks/paper_steps.py times steps


SHARED_MNIST = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="../shared/data/mnist not present")
def test_jobs_train_runs_in_worker_processes_with_the_same_results(tmp_path):
    # Real MNIST: worker processes check the files against the official fingerprints themselves.
    args = dict(data_root=str(SHARED_MNIST.parent), variants=["R"], models=["fcn", "cnn"], threads=1)
    tables = {}
    for jobs in (1, 2):
        out = tmp_path / f"out{jobs}"
        lines = []
        paper.run("smoke", out, tmp_path / f"runs{jobs}", jobs=jobs, log=lines.append, **args)
        tables[jobs] = json.loads((out / "table-smoke.json").read_text())
        assert sorted(line.split("] ")[1].split(":")[0] for line in lines[1:]) == [
            "R   CNN          seed 1",
            "R   FCN          seed 1",
        ]
    assert [r["errors"] for r in tables[2]["results"]] == [r["errors"] for r in tables[1]["results"]]
    assert tables[2]["jobs"] == 2 and tables[2]["machine"]["threads"] == 1 and tables[2]["wall_seconds"] > 0
    assert "2 runs at a time" in (tmp_path / "out2" / "table-smoke.md").read_text()


def test_a_worker_process_error_stops_the_bench_with_its_message(mnist_root, tmp_path):
    args = dict(out=tmp_path / "out", runs=tmp_path / "runs", data_root=str(mnist_root), variants=["R"], models=["fcn"])
    paper.run("smoke", threads=1, log=lambda line: None, **args)
    with pytest.raises(ValueError, match="holds a run with another"):  # raised in the worker process
        paper.run("cpu", threads=1, jobs=2, log=lambda line: None, **args)
    with pytest.raises(ValueError, match="jobs must be an integer >= 1"):
        paper.run("smoke", jobs=0, log=lambda line: None, **args)


def test_the_bench_pins_its_precision_and_the_table_says_which(mnist_root, tmp_path, capsys):
    for budget in paper.BUDGETS.values():  # fp32 unless asked, whatever the recipe or the machine
        assert paper.config_for("R", paper.ENTRIES[5], budget, None, 1, "cpu", None).amp == "off"
    assert paper.config_for("R", paper.ENTRIES[5], paper.BUDGETS["long"], None, 1, "cpu", None, "bf16").amp == "bf16"
    args = dict(out=tmp_path / "out", runs=tmp_path / "runs", data_root=str(mnist_root), threads=1)
    path = paper.run("smoke", variants=["E"], models=["fcn"], log=lambda line: None, **args)
    report = json.loads(path.with_suffix(".json").read_text())
    assert report["precision"] == "fp32" and report["config"]["amp"] == "off"
    assert json.loads((tmp_path / "runs" / "e-fcn" / "config.json").read_text())["amp"] == "off"
    assert ", precision fp32;" in path.read_text()
    with pytest.raises(ValueError, match="amp must be one of off, bf16"):
        paper.run("smoke", variants=["E"], models=["fcn"], amp="auto", log=lambda line: None, **args)
    argv = ["bench", "paper", "--budget", "smoke", "--variants", "E", "--models", "fcn", "--threads", "1"]
    argv += ["--data-root", str(mnist_root), "--out", str(tmp_path / "bf16"), "--runs", str(tmp_path / "runs-bf16")]
    assert main([*argv, "--amp", "bf16"]) == 0
    assert json.loads((tmp_path / "bf16" / "table-smoke.json").read_text())["precision"] == "bf16"
    assert json.loads((tmp_path / "runs-bf16" / "e-fcn" / "config.json").read_text())["amp"] == "bf16"
    assert main([*argv, "--amp", "auto"]) == 2  # not a choice: it would depend on the machine
    capsys.readouterr()


def test_a_budget_gives_variants_their_own_options_and_rows_their_own_seeds(mnist_root, tmp_path, monkeypatch):
    smoke = paper.BUDGETS["smoke"]
    cells = (paper.CellOptions({"epochs": 2}, variants=("R",)), paper.CellOptions({"epochs": 3}, ("ST-CNN",), ("R",)))
    budget = paper.Budget("smoke", smoke.description, cells, {"ST-CNN": (1, 2)})
    monkeypatch.setitem(paper.BUDGETS, "smoke", budget)
    args = dict(out=tmp_path / "out", runs=tmp_path / "runs", data_root=str(mnist_root), threads=1)
    lines = []
    path = paper.run("smoke", variants=["R", "E"], models=["cnn", "st-cnn-aff"], log=lines.append, **args)
    report = json.loads(path.with_suffix(".json").read_text())
    seeds = {(r["variant"], r["model"]): r["seeds"] for r in report["results"]}
    assert seeds == {("R", "CNN"): [1], ("R", "ST-CNN Aff"): [1, 2], ("E", "CNN"): [1], ("E", "ST-CNN Aff"): [1, 2]}
    epochs = {d.name: json.loads((d / "config.json").read_text())["epochs"] for d in (tmp_path / "runs").iterdir()}
    assert epochs == {
        "r-cnn": 2,
        "r-st-cnn-aff": 3,
        "r-st-cnn-aff-seed2": 3,
        "e-cnn": 1,
        "e-st-cnn-aff": 1,
        "e-st-cnn-aff-seed2": 1,
    }
    assert report["config"]["cells"] == [
        {"rows": [], "variants": ["R"], "options": {"epochs": 2}},
        {"rows": ["ST-CNN"], "variants": ["R"], "options": {"epochs": 3}},
    ]
    assert report["config"]["row_seeds"] == {"ST-CNN": [1, 2]}
    table = path.read_text()
    assert "Ours is, for ST-CNN Aff: the mean over seeds 1, 2 ± half the range" in table
    assert "; for CNN: seed 1." in table
    assert lines[1].split("] ")[1].startswith("R   ST-CNN Aff")  # the longest runs first
    # Every run's CPU time, kept with the run and read back when it is reused.
    assert all(r["cpu_seconds"] > 0 for r in report["results"]) and report["cpu_seconds"] > 0
    assert "hours of CPU time)" in table
    cnn = next(r for r in report["results"] if (r["variant"], r["model"]) == ("R", "CNN"))
    again = paper.run("smoke", variants=["R"], models=["cnn"], log=lambda line: None, **args)
    assert json.loads(again.with_suffix(".json").read_text())["results"][0]["cpu_seconds"] == cnn["cpu_seconds"]
    # --seeds names the seeds of every row.
    path = paper.run("smoke", variants=["E"], models=["st-cnn-aff"], seeds=[1], log=lambda line: None, **args)
    assert json.loads(path.with_suffix(".json").read_text())["results"][0]["seeds"] == [1]


def test_the_longest_runs_start_first():
    def job(variant, label):
        entry = next(e for e in paper.ENTRIES if e.label == label)
        cfg = paper.config_for(variant, entry, paper.BUDGETS["long"], None, 1, "cpu", None)
        return paper.Job(variant, entry, 1, cfg, Path(label))

    jobs = [job("R", "FCN"), job("R", "CNN"), job("TC", "ST-CNN Aff"), job("R", "ST-FCN TPS"), job("RTS", "ST-CNN Aff")]
    order = sorted(jobs, key=paper._expected_cost, reverse=True)
    assert [(j.variant, j.entry.label) for j in order] == [
        ("TC", "ST-CNN Aff"),
        ("RTS", "ST-CNN Aff"),
        ("R", "CNN"),
        ("R", "ST-FCN TPS"),
        ("R", "FCN"),
    ]


def test_the_table_says_how_each_row_family_meets_its_goal():
    results = [
        dict(variant="R", model="ST-CNN Aff", error=1.0),  # +0.3
        dict(variant="RTS", model="ST-CNN Aff", error=0.9),  # +0.4
        dict(variant="R", model="ST-FCN Aff", error=1.6),  # +0.4
    ]
    text = paper.markdown(results, _meta("long", "long"))
    assert "Goals: ST-CNN: 1 of 2 cells within 0.3 points or below (worst +0.40); " in text
    assert "ST-FCN: 1 of 1 cells within 0.5 points or below (worst +0.40)." in text


def test_the_match_budget_trains_two_seeds_of_every_st_cnn_and_the_wider_cnn():
    budget = paper.BUDGETS["match"]
    by_label = {e.label: e for e in paper.ENTRIES}
    for label in ("ST-CNN Aff", "ST-CNN Proj", "ST-CNN TPS"):
        assert budget.seeds_for(by_label[label], [1]) == [1, 2]
    assert budget.seeds_for(by_label["CNN"], [1]) == [1] and budget.seeds_for(by_label["ST-FCN Aff"], [1]) == [1]
    cfg = {(v, e.label): paper.config_for(v, e, budget, None, 1, "cpu", 1) for v, e in paper.plan()}
    assert cfg["R", "CNN"].model_options == {"channels": [32, 64]} == cfg["TC", "ST-CNN Aff"].model_options
    assert cfg["R", "IC-STN Aff"].model_options == {"channels": [32, 64], "recurrent_steps": 4}
    assert cfg["R", "FCN"].model_options == {} and cfg["R", "ST-FCN Aff"].model_options == {}
    assert [cfg[v, "ST-CNN Aff"].epochs for v in paper.VARIANTS] == [24, 24, 12, 12, 20]
    assert [cfg[v, "CNN"].epochs for v in paper.VARIANTS] == [24, 24, 12, 12, 20]  # as its ST-CNNs
    assert [cfg[v, "ST-FCN Aff"].epochs for v in paper.VARIANTS] == [48, 48, 15, 15, 72]
    assert cfg["R", "ST-CNN TPS"].stn_lr_scale == 3.0 and cfg["RTS", "ST-CNN TPS"].stn_lr_scale == 1.0
    assert all(c.dataset_options.get("fresh_distortions") and c.amp == "off" for c in cfg.values())


def test_the_long_budgets_train_the_papers_eight_models_unless_told(tmp_path, monkeypatch):
    planned = []

    def stop(jobs, workers, log):
        planned.append({(job.variant, job.entry.label) for job in jobs})
        raise KeyboardInterrupt

    monkeypatch.setattr(paper, "_train_all", stop)
    for budget in ("cpu", "long", "match", "full", "match"):
        models = ["cnn"] if len(planned) == 4 else None  # named models win over the budget's
        with pytest.raises(KeyboardInterrupt):
            paper.run(budget, tmp_path / "out", tmp_path / "runs", models=models, device="cpu", log=lambda line: None)
    every, long, match, full, named = planned
    assert len(every) == len(paper.plan()) == 50 and long == match == full
    assert len(match) == 36 and {label for _, label in match} == set(paper.PAPER_ERRORS)
    assert named == {(v, "CNN") for v in paper.VARIANTS}
