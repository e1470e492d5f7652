"""Sweeps: grid validation before anything runs, run keys, resume after a kill, failed runs recorded
while the others finish, collect, and the same smoke grid on a real local Ray instance."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml

from ncbook._io import write_json
from ncbook.pipeline import cli, sweep
from ncbook.pipeline import grid as grid_module

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "sweeps" / "smoke.yaml"
PAPER = ROOT / "sweeps" / "paper-a-full.yaml"
OVERVIEW = "notebooks/00_overview.py"


def _grid(tmp_path: Path, **spec) -> sweep.Grid:
    return sweep.grid_from_mapping({"profile": "smoke", **spec}, "t", ROOT, out=tmp_path / "runs")


def _records(out: Path) -> dict[str, dict]:
    return {path.parent.name: json.loads(path.read_text()) for path in out.glob("*/run.json")}


# ------------------------------------------------------------------ validation (nothing runs)


def test_smoke_grid_expands_to_the_product_of_its_axes(tmp_path):
    grid = sweep.load_grid(SMOKE, out=tmp_path)
    combos = {(run.parameters["steps"], run.parameters["seed"]) for run in grid.runs}
    assert combos == {(2000, 0), (2000, 1), (3000, 0), (3000, 1)}
    assert all(run.parameters["profile"] == "smoke" and run.parameters["loss_tolerance"] == 0.1
               for run in grid.runs)
    assert len({run.key for run in grid.runs}) == 4 and grid.out == tmp_path


def test_explicit_runs_are_added_and_duplicates_dropped(tmp_path):
    grid = _grid(tmp_path, notebook=OVERVIEW, parameters={"seed": [0, 1]},
                 runs=[{"notebook": "00_overview", "seed": 1}, {"notebook": OVERVIEW, "seed": 7}])
    assert [run.parameters["seed"] for run in grid.runs] == [0, 1, 7]


def test_key_covers_source_parameters_and_code(monkeypatch):
    parameters = {"profile": "smoke", "seed": 0}
    key = sweep.run_key("nb", "a = 1\n", parameters)
    blob = json.dumps({"source": "a = 1\n", "parameters": parameters, "code": grid_module.code_hash()},
                      sort_keys=True)
    assert key == f"nb-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"
    assert sweep.run_key("nb", "a = 2\n", parameters) != key
    assert sweep.run_key("nb", "a = 1\n", {**parameters, "seed": 1}) != key
    assert sweep.run_key("nb", "a = 1\n", dict(reversed(parameters.items()))) == key
    monkeypatch.setattr(grid_module, "code_hash", lambda: "other code")
    assert sweep.run_key("nb", "a = 1\n", parameters) != key


def test_unknown_notebook_is_rejected_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match=r"unknown notebook 'notebooks/99_nope.py'.*00_overview"):
        _grid(tmp_path, notebook=OVERVIEW, runs=[{"notebook": "notebooks/99_nope.py"}])
    assert not (tmp_path / "runs").exists()


def test_unknown_parameter_is_rejected_naming_the_allowed_ones(tmp_path):
    # The typo sits in the last block, after a valid one: still nothing runs.
    with pytest.raises(ValueError, match=r"unknown parameter `stpes` for notebook 00_overview; "
                                         r"its parameters cell assigns: device, seed, .*steps"):
        _grid(tmp_path, grid=[{"notebook": OVERVIEW, "parameters": {"steps": [1, 2]}},
                              {"notebook": OVERVIEW, "parameters": {"stpes": 5}}])
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"notebook": OVERVIEW, "parameters": {"profile": "full"}}, r"set `profile` at the top"),
        ({"notebook": OVERVIEW, "colour": 1}, r"unknown key\(s\) colour in grid 't'; allowed: name"),
        ({"notebook": OVERVIEW, "parameters": {"seed": []}}, r"parameter `seed` has an empty list"),
        ({"notebook": OVERVIEW, "parameters": [1]}, r"`parameters` must be a mapping"),
        ({"notebook": OVERVIEW, "profile": "huge"}, r"`profile` must be one of 'smoke', 'full'"),
        ({"grid": [{"parameters": {"seed": 0}}]}, r"a grid block needs `notebook` or `notebooks`"),
        ({"grid": [5]}, r"each `grid` entry must be a mapping"),
        ({"grid": [{"notebook": OVERVIEW, "seeds": 1}]}, r"unknown key\(s\) seeds in a grid block"),
        ({"grid": {"notebook": OVERVIEW}}, r"`grid` must be a list"),
        ({"runs": [{"seed": 1}]}, r"each entry of `runs` must be a mapping with a `notebook`"),
        ({}, r"grid 't' has no runs"),
        ({"notebook": OVERVIEW, "resources": {"num_gpus": -1}}, r"`num_gpus` must be a number >= 0"),
        ({"notebook": OVERVIEW, "resources": {"num_cpus": 0}}, r"`num_cpus` must be a number > 0"),
        ({"notebook": OVERVIEW, "resources": {"gpus": 1}}, r"unknown key\(s\) gpus in resources"),
        ({"notebook": OVERVIEW, "resources": 2}, r"`resources` must be a mapping"),
    ],
)
def test_bad_grids_are_rejected(tmp_path, spec, message):
    with pytest.raises(ValueError, match=message):
        sweep.grid_from_mapping({"profile": "smoke", **spec}, "t", ROOT, out=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_grid_must_be_a_mapping_and_the_file_must_exist(tmp_path):
    with pytest.raises(ValueError, match=r"grid 'x' must be a mapping"):
        sweep.grid_from_mapping([1, 2], "x", ROOT)
    with pytest.raises(ValueError, match=r"grid file .*missing.yaml does not exist"):
        sweep.load_grid(tmp_path / "missing.yaml")


def test_notebook_needs_exactly_one_parameters_cell(tmp_path):
    notebook = tmp_path / "bare.py"
    notebook.write_text("# %%\nx = 1\n")
    with pytest.raises(ValueError, match=r"exactly one code cell tagged `parameters`, found 0"):
        sweep.notebook_parameters(notebook)


def test_parameters_cell_is_read_from_the_notebook():
    names = sweep.notebook_parameters(ROOT / OVERVIEW)
    assert list(names)[:3] == ["profile", "device", "seed"] and "steps" in names and "np" not in names


def test_executor_options_are_checked(tmp_path):
    grid = _grid(tmp_path, notebook=OVERVIEW)
    with pytest.raises(ValueError, match=r"`executor` must be one of 'local', 'ray'; got 'slurm'"):
        sweep.run_sweep(grid, "slurm")
    with pytest.raises(ValueError, match=r"`jobs` is for the local executor"):
        sweep.run_sweep(grid, "ray", jobs=2)
    with pytest.raises(ValueError, match=r"`address` is for the ray executor"):
        sweep.run_sweep(grid, "local", address="auto")
    with pytest.raises(ValueError, match=r"`jobs` must be an integer >= 1, got 0"):
        sweep.run_sweep(grid, "local", jobs=0)
    assert not (tmp_path / "runs").exists()


def test_cli_reports_an_invalid_grid_and_runs_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"notebook": OVERVIEW, "parameters": {"stpes": [1]}}))
    assert cli.main(["sweep", str(bad), "--out", str(tmp_path / "runs")]) == 2
    assert "unknown parameter `stpes`" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_gpus_go_one_per_job(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert sweep.gpu_slots(sweep._visible_gpus(), 3) == ["3", "5", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert sweep.gpu_slots(sweep._visible_gpus(), 2) == [None, None]


def test_paper_grid_matches_the_notebooks_that_exist():
    spec = yaml.safe_load(PAPER.read_text())
    assert spec["profile"] == "full" and spec["resources"]["num_gpus"] == 1
    present = [block for block in spec["grid"] if (ROOT / block["notebook"]).is_file()]
    if not present:
        pytest.skip("none of the paper-A experiment notebooks exists yet")
    grid = sweep.grid_from_mapping({**spec, "grid": present}, "paper-a-full", ROOT)
    # Counted by hand from Sections 4 and 5.3: 4 depths; MLP 2 datasets x 4 depths x 3 widths plus
    # 2 conv backbones x 2 datasets x 4 depths; imbalanced 2 datasets x 3 depths.
    expected = {"21_synthetic_balanced": 4, "22_synthetic_imbalanced": 4, "23_practical_balanced": 40,
                "24_practical_imbalanced": 6}
    stems = {Path(block["notebook"]).stem for block in present}
    assert Counter(run.stem for run in grid.runs) == {stem: expected[stem] for stem in stems}


def test_table_format_is_checked(tmp_path, monkeypatch):
    frame = pd.DataFrame({"a": [1]})
    with pytest.raises(ValueError, match=r"must end in .csv or .parquet, got 'out.xlsx'"):
        sweep.write_table(frame, tmp_path / "out.xlsx")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "pyarrow" else real(name))
    with pytest.raises(ValueError, match=r"writing Parquet needs pyarrow"):
        sweep.write_table(frame, tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


def test_finished_runs_are_skipped_and_failed_ones_retried_on_request(tmp_path, monkeypatch):
    grid = _grid(tmp_path, notebook=OVERVIEW, parameters={"seed": [0, 1, 2, 3]})
    states = {grid.runs[0].key: "done", grid.runs[1].key: "failed", grid.runs[2].key: "running"}
    for key, state in states.items():
        write_json(grid.out / key / "run.json", {"status": state, "error": f"{state} error"})
    given: list[list[str]] = []

    def fake_pool(runs, grid, jobs, on_result):
        given.append([run.key for run in runs])
        for run in runs:  # what execute_run does, without the notebook
            record = {"status": "done", "error": None}
            write_json(grid.out / run.key / "run.json", record)
            on_result(run, record)

    monkeypatch.setattr(sweep, "_run_local", fake_pool)
    keys = [run.key for run in grid.runs]
    report = sweep.run_sweep(grid, jobs=1)
    assert given == [keys[2:]]  # the killed ("running") run and the new one
    assert report.status == {**dict.fromkeys(keys, "done"), keys[1]: "failed"}
    assert report.errors == {keys[1]: "failed error"}
    report = sweep.run_sweep(grid, jobs=1, retry_failed=True)
    assert given[-1] == [keys[1]] and report.errors == {} and report.count("done") == 4


# ------------------------------------------------------------------ real runs


def _wait_for_a_finished_run(out: Path, process: subprocess.Popen, limit: float = 300) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if any(record["status"] == "done" for record in _records(out).values()):
            return
        assert process.poll() is None, f"the sweep ended early: {process.communicate()}"
        time.sleep(0.3)
    raise AssertionError("no run finished in time")


@pytest.fixture(scope="module")
def smoke_sweep(tmp_path_factory):
    """The smoke grid through the CLI (local pool, 2 jobs), stopped by SIGTERM once a run finished;
    then resumed through the Python API with a deliberately failing run added, on two "GPUs"."""
    out = tmp_path_factory.mktemp("smoke") / "runs"
    env = {**os.environ, "NCBOOK_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "ncbook.pipeline.cli", "sweep", str(SMOKE), "--out", str(out),
               "--jobs", "2"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for_a_finished_run(out, process)
        children = psutil.Process(process.pid).children(recursive=True)  # pool workers and kernels
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    _, alive = psutil.wait_procs(children, timeout=10)  # a kernel notices its parent left within 1 s
    before = _records(out)
    spec = yaml.safe_load(SMOKE.read_text())
    spec["runs"] = [{"notebook": OVERVIEW, "steps": -5}]
    grid = sweep.grid_from_mapping(spec, "smoke", ROOT, out=out)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CUDA_VISIBLE_DEVICES", "5,6")  # one per job; the runs themselves are on CPU
        report = sweep.run_sweep(grid, jobs=2)
    return {"grid": sweep.load_grid(SMOKE, out=out), "failing": grid.runs[-1].key, "out": out,
            "before": before, "report": report, "returncode": process.returncode,
            "stderr": stderr.decode(), "alive": alive}


def test_killed_sweep_stops_its_workers_and_resumes_with_only_the_missing_runs(smoke_sweep):
    assert smoke_sweep["returncode"] == 130, smoke_sweep["stderr"]
    assert "run the same command again to resume" in smoke_sweep["stderr"]
    assert smoke_sweep["alive"] == []
    before, report = smoke_sweep["before"], smoke_sweep["report"]
    finished = {key for key, record in before.items() if record["status"] == "done"}
    # A run in flight at the kill is left "running" on disk: pending, not finished.
    assert finished and all(record["status"] in ("done", "running") for record in before.values())
    keys = {run.key for run in smoke_sweep["grid"].runs}
    assert sorted(report.executed) == sorted(keys - finished | {smoke_sweep["failing"]})
    after = _records(smoke_sweep["out"])
    assert all(after[key] == before[key] for key in finished)  # untouched, not re-run


def test_failed_run_is_recorded_and_the_others_finish(smoke_sweep):
    report, failing = smoke_sweep["report"], smoke_sweep["failing"]
    assert list(report.errors) == [failing]
    error = report.errors[failing]
    assert re.fullmatch(r"cell \d+: ValueError: `steps` must be an integer >= 1, got -5", error)
    assert report.count("done") == 4 and report.count("failed") == 1
    records = _records(smoke_sweep["out"])
    assert records[failing]["status"] == "failed" and records[failing]["error"] == report.errors[failing]
    assert {records[key]["gpu"] for key in report.executed} == {"5", "6"}  # one "GPU" per job


def test_finished_sweep_executes_nothing(smoke_sweep):
    report = sweep.run_sweep(smoke_sweep["grid"], jobs=2)
    assert report.executed == () and report.count("done") == 4


def test_runs_hold_source_executed_notebook_results_and_record(smoke_sweep):
    for run in smoke_sweep["grid"].runs:
        folder = smoke_sweep["out"] / run.key
        record = json.loads((folder / "run.json").read_text())
        assert record["parameters"] == run.parameters and record["error"] is None and record["wall_s"] > 0
        assert (folder / "00_overview.ipynb").is_file()
        assert (folder / "00_overview.py").read_text() == run.source
        history = pd.read_csv(folder / "smoke" / "00_overview" / "history.csv")
        assert history["step"].max() == run.parameters["steps"]  # the grid's value reached the notebook


def test_collect_makes_one_tidy_table(smoke_sweep, tmp_path):
    table = sweep.collect(smoke_sweep["grid"])
    assert table["run"].nunique() == 4  # the failed run is not collected
    for run in smoke_sweep["grid"].runs:
        folder = smoke_sweep["out"] / run.key / "smoke" / "00_overview"
        rows = table[(table["run"] == run.key) & (table["table"] == "history")]
        history = pd.read_csv(folder / "history.csv")
        assert (rows["steps"] == run.parameters["steps"]).all()
        assert (rows["seed"] == run.parameters["seed"]).all()
        # The columns of other tables are NaN on these rows, so integers come back as floats.
        pd.testing.assert_frame_equal(rows[history.columns].reset_index(drop=True), history,
                                      check_dtype=False)
        claims = table[(table["run"] == run.key) & (table["table"] == "claims")]
        assert list(claims["claim"]) == [c["claim"] for c in json.loads((folder / "claims.json").read_text())]
        assert claims["passed"].all()
    assert cli.main(["collect", str(SMOKE), "--runs", str(smoke_sweep["out"]),
                     "--out", str(tmp_path / "t.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "t.csv")) == len(table)


@pytest.mark.slow
def test_ray_gives_the_same_results_as_the_local_pool(smoke_sweep, tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        gpu_grid = replace(sweep.load_grid(SMOKE, out=tmp_path / "never"), resources=sweep.Resources(1))
        with pytest.raises(ValueError, match=r"num_gpus=1 per run but the Ray cluster has 0 GPUs"):
            sweep.run_sweep(gpu_grid, "ray")
        grid = sweep.load_grid(SMOKE, out=tmp_path / "ray")
        report = sweep.run_sweep(grid, "ray")
    finally:
        ray.shutdown()
    assert report.count("done") == 4 and len(report.executed) == 4
    assert [run.key for run in grid.runs] == [run.key for run in smoke_sweep["grid"].runs]
    local, remote = sweep.collect(smoke_sweep["grid"]), sweep.collect(grid)
    # Same rows, bit for bit (CPU runs are deterministic); only the timings and each run's own id
    # differ. A tidy trace holds its timings as rows (metric "seconds"), a wide table as columns.
    varying = [column for column in local.columns if column in ("wall_s", "seconds", "run_id")]
    local, remote = (frame[frame["metric"] != "seconds"].drop(columns=varying)
                     .sort_values(["run", "table"], kind="stable").reset_index(drop=True)
                     for frame in (local, remote))
    assert len(local) > 0
    pd.testing.assert_frame_equal(local, remote)


# ------------------------------------------------------------------ faults (issue 15, item 7)


@pytest.mark.parametrize("name", ["../..", "a/b", ".hidden", "..", "a\\b"])
def test_grid_name_that_is_not_a_plain_folder_name_is_rejected(tmp_path, name):
    with pytest.raises(ValueError, match=r"`name` names a folder and must be a plain name"):
        sweep.grid_from_mapping({"name": name, "notebook": OVERVIEW, "parameters": {"seed": 0}},
                                name="g", root=ROOT)


def test_grid_out_with_dotdot_is_rejected():
    with pytest.raises(ValueError, match=r"`out` must stay inside the checkout"):
        sweep.grid_from_mapping({"notebook": OVERVIEW, "parameters": {"seed": 0}, "out": "../../x"},
                                name="g", root=ROOT)


def test_second_sweep_on_the_same_folder_is_refused(tmp_path):
    grid = sweep.grid_from_mapping({"notebook": OVERVIEW, "parameters": {"seed": 0}}, name="g",
                                   root=ROOT, out=tmp_path / "out")
    holder = sweep._lock(grid.out)
    try:
        with pytest.raises(ValueError, match=r"another sweep \(pid \d+\) is running on"):
            sweep.run_sweep(grid, jobs=1)
    finally:
        holder.close()


def test_unwritable_out_gives_the_reason(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    grid = sweep.grid_from_mapping({"notebook": OVERVIEW, "parameters": {"seed": 0}}, name="g",
                                   root=ROOT, out=blocker / "out")
    with pytest.raises(ValueError, match=r"cannot write to the sweep folder .*a-file/out: Not a directory"):
        sweep.run_sweep(grid, jobs=1)


def test_damaged_run_record_is_named_and_rerun(tmp_path, capsys):
    folder = tmp_path / "nb-0123"
    folder.mkdir()
    (folder / "run.json").write_text('{"status": "do')
    with pytest.raises(ValueError, match=r"nb-0123/run.json is damaged .*delete .*nb-0123 to run it again"):
        sweep.read_record(folder)
    assert sweep.run_status(folder) == "pending"
    assert "nb-0123/run.json is damaged" in capsys.readouterr().err


def test_collect_refuses_a_record_pointing_outside_the_sweep(tmp_path):
    folder = tmp_path / "sweep" / "nb-0123"
    write_json(folder / "run.json", {"status": "done", "key": "nb-0123", "notebook": "notebooks/x.py",
                                     "profile": "../../../etc", "parameters": {}, "wall_s": 1.0})
    with pytest.raises(ValueError, match=r"points outside its run folder"):
        sweep.collect(tmp_path / "sweep")


def test_a_dead_worker_is_reported_with_its_error(tmp_path, monkeypatch):
    from ncbook.pipeline import executors

    grid = sweep.grid_from_mapping({"notebook": OVERVIEW, "parameters": {"seed": 0}}, name="g",
                                   root=ROOT, out=tmp_path / "out")

    def dying_pool(runs, grid, jobs, on_result):
        for run in runs:
            on_result(run, executors.died(MemoryError("out of memory\nmore")))

    monkeypatch.setattr(sweep, "_run_local", dying_pool)
    report = sweep.run_sweep(grid, jobs=1)
    assert report.count("pending") == 1
    assert list(report.errors.values()) == ["worker died: MemoryError: out of memory"]


def test_tables_are_world_readable(tmp_path):
    path = sweep.write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.csv")
    assert path.stat().st_mode & 0o777 == 0o644
