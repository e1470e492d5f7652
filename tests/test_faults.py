"""Fault injection (issue 15): kill a notebook run at a random point, stop one from inside with
SystemExit(0), fail its claims, corrupt each file a run writes; then check that nothing finished is
lost, nothing partial or stale is shown as fresh, and the message names the file.

The notebook is a tiny stand-in in a scratch checkout that follows the session contract of
PIPELINE.md (results through ``results_dir``, ``run_id`` from ``NCBOOK_RUN_ID``, raising on a failed
claim only when ``NCBOOK_STRICT=1``), so each run takes a kernel start and no computation. Killed
training runs and sweeps, and damaged checkpoints, ``run.json`` and MNIST files are tested in
test_train.py, test_sweep.py and test_data.py.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ncbook.pipeline import book, provenance

ROOT = Path(__file__).resolve().parents[1]
STEM = "zz_tiny"
NOTEBOOK = '''# %% tags=["parameters"]
profile = "smoke"
device = "cpu"
seed = 0
sleep = 0.0
exit_early = False
value = 1.0

# %%
import os
import time

from ncbook._io import write_json
from ncbook._runtime import results_dir

time.sleep(sleep)
if exit_early:
    raise SystemExit(0)

# %%
passed = value == 1.0
write_json(results_dir(profile, "zz_tiny") / "claims.json",
           [{"claim": "value is one", "source": "ours", "measured": value, "predicted": 1.0,
             "tolerance": 0.0, "kind": "abs", "passed": passed, "run_id": os.environ.get("NCBOOK_RUN_ID")}])
if os.environ.get("NCBOOK_STRICT") == "1" and not passed:
    raise AssertionError("1 of 1 claims failed: value is one")
'''


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "ncbook"\n')
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / f"{STEM}.py").write_text(NOTEBOOK)
    (tmp_path / "params").mkdir()
    _params(tmp_path, {})
    return tmp_path


def _params(root: Path, section: dict) -> None:
    import yaml

    (root / "params" / "smoke.yml").write_text(yaml.safe_dump({"_all": {"device": "cpu"}, STEM: section}))


def _start(root: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("NCBOOK_RESULTS", None)
    return subprocess.Popen([sys.executable, "-m", "ncbook.run_notebook", f"notebooks/{STEM}.py", *args],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run(root: Path, *args: str) -> subprocess.CompletedProcess:
    process = _start(root, *args)
    out, err = process.communicate(timeout=180)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _stored(root: Path) -> dict[str, bytes]:
    """Every file of the profile's stored result and executed notebook, by path."""
    paths = [*(root / "results" / "smoke" / STEM).glob("*"), root / "_executed" / "smoke" / f"{STEM}.ipynb"]
    return {str(p.relative_to(root)): p.read_bytes() for p in paths if p.is_file()}


def test_killed_runs_keep_the_last_good_result_and_a_rerun_completes(checkout):
    first = _run(checkout)
    assert first.returncode == 0, first.stderr[-2000:]
    good = _stored(checkout)
    assert {f"results/smoke/{STEM}/claims.json", f"results/smoke/{STEM}/provenance.json",
            f"_executed/smoke/{STEM}.ipynb"} <= set(good)
    _params(checkout, {"sleep": 30.0})  # a profile run, killed while it sleeps or while it starts
    for signum in (signal.SIGKILL, signal.SIGTERM):
        process = _start(checkout)
        time.sleep(random.uniform(0.5, 4.0))
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
        assert process.returncode != 0
        assert _stored(checkout) == good, f"signal {signum} changed the stored result"
        if signum == signal.SIGTERM:
            assert "interrupted; the last good results are unchanged" in err
    _params(checkout, {})
    again = _run(checkout)
    assert again.returncode == 0, again.stderr[-2000:]
    record = json.loads((checkout / "results" / "smoke" / STEM / "provenance.json").read_text())
    claims = json.loads((checkout / "results" / "smoke" / STEM / "claims.json").read_text())
    before = json.loads(good[f"results/smoke/{STEM}/provenance.json"])
    assert claims[0]["run_id"] == record["run_id"] != before["run_id"]
    assert book.find_chapter(STEM, "smoke", checkout).record["run_id"] == record["run_id"]


def test_system_exit_in_a_cell_is_not_a_result(checkout):
    assert _run(checkout).returncode == 0
    good = _stored(checkout)
    _params(checkout, {"exit_early": True})
    stopped = _run(checkout)
    assert stopped.returncode == 1
    assert "never ran" in stopped.stderr or "without writing claims.json" in stopped.stderr
    assert _stored(checkout) == good
    assert (checkout / "_executed" / "smoke" / f"{STEM}.failed.ipynb").is_file()


def test_a_failed_strict_run_keeps_the_last_good_result(checkout):
    assert _run(checkout).returncode == 0
    good = _stored(checkout)
    _params(checkout, {"value": 2.0})  # the profile itself now fails its claim: strict
    failed = _run(checkout)
    assert failed.returncode == 1 and "1 of 1 claims failed" in failed.stderr
    assert _stored(checkout) == good
    assert (checkout / "results" / "smoke" / "_scratch" / f"{STEM}-failed" / "claims.json").is_file()


def test_exploratory_run_finishes_in_its_own_folder_and_never_touches_the_profile(checkout):
    assert _run(checkout).returncode == 0
    good = _stored(checkout)
    explored = _run(checkout, "-p", "value", "2.0")
    assert explored.returncode == 0, explored.stderr[-2000:]
    assert "exploratory run" in explored.stdout
    runs = list((checkout / "results" / "smoke" / "_runs").glob(f"{STEM}-*/claims.json"))
    assert len(runs) == 1 and json.loads(runs[0].read_text())[0]["passed"] is False
    assert list((checkout / "_executed" / "smoke" / "_runs").glob(f"{STEM}-*.ipynb"))
    assert _stored(checkout) == good


@pytest.mark.parametrize(("arguments", "message"), [
    (["-p", "stpes", "10"], r"unknown parameter `stpes` for notebook zz_tiny; its parameters cell assigns: "
                            r"device, seed, sleep, exit_early, value"),
    (["-p", "__import__('os').system('touch HACKED'); x", "1"], r"is not a parameter name"),
    (["-p", "profile", "full"], r"`profile` comes only from --profile"),
])
def test_bad_parameter_names_fail_before_anything_runs(checkout, arguments, message):
    import re

    done = _run(checkout, *arguments)
    assert done.returncode == 1 and re.search(message, done.stderr), done.stderr
    assert not (checkout / "HACKED").exists() and not (checkout / "results").exists()


def test_unknown_key_in_the_params_file_is_named(checkout):
    _params(checkout, {"stpes": 10})
    done = _run(checkout)
    assert done.returncode == 1
    assert "params/smoke.yml section `zz_tiny`: unknown parameter `stpes`" in done.stderr


def test_damaged_params_file_is_named(checkout):
    (checkout / "params" / "smoke.yml").write_text("zz_tiny: {steps: [1, 2\n")
    done = _run(checkout)
    assert done.returncode == 1 and "params/smoke.yml is not valid YAML" in done.stderr


@pytest.mark.parametrize("damaged", ["claims.json", "provenance.json", "notebook"])
def test_damaged_stored_files_are_named_and_never_rendered(checkout, damaged):
    assert _run(checkout).returncode == 0
    folder = checkout / "results" / "smoke" / STEM
    path = {"notebook": checkout / "_executed" / "smoke" / f"{STEM}.ipynb"}.get(damaged, folder / damaged)
    path.write_text(path.read_text()[:40])
    with pytest.raises(ValueError, match=rf"{path.name} cannot be read .*rerun the notebook"):
        book.find_chapter(STEM, "smoke", checkout)


def test_results_of_another_run_are_refused(checkout):
    assert _run(checkout).returncode == 0
    record = checkout / "results" / "smoke" / STEM / "provenance.json"
    data = json.loads(record.read_text())
    record.write_text(json.dumps({**data, "run_id": "someone else"}))
    with pytest.raises(ValueError, match=r"has no matching claims.json and provenance.json"):
        book.find_chapter(STEM, "smoke", checkout)


def test_stored_result_is_stale_after_a_change_and_the_note_says_so(checkout):
    assert _run(checkout).returncode == 0
    assert book.stale_stems("smoke", checkout) == []
    source = checkout / "notebooks" / f"{STEM}.py"
    source.write_text(source.read_text() + "\n# an edit\n")
    assert book.stale_stems("smoke", checkout) == [STEM]
    chapter = book.find_chapter(STEM, "smoke", checkout)
    assert chapter.stale == ("notebook source",)
    note = provenance.banner_markdown(chapter.record, list(chapter.stale))
    assert "code changed since" in note and ":class: dropdown" in note


def test_result_files_are_world_readable(checkout):
    assert _run(checkout).returncode == 0
    for path in (checkout / "results" / "smoke" / STEM).glob("*"):
        assert path.stat().st_mode & 0o777 == 0o644, path
