from __future__ import annotations

import sys

import pandas as pd
import pytest
import torch

import ncbook as nc
from ncbook import _checks
from ncbook.pipeline.parameters import load_parameters, notebook_parameters


def test_setup_seeds_and_resolves_cpu():
    device = nc.profiles.setup("smoke", "cpu", 3)
    first = torch.rand(3)
    nc.profiles.setup("smoke", "cpu", 3)
    assert torch.equal(first, torch.rand(3)) and device.type == "cpu"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("big", "cpu", 0), r"`profile` must be one of 'smoke', 'full'; got 'big'"),
        (("smoke", "tpu", 0), r"`device` must be one of 'auto', 'cpu', 'cuda', 'cuda:N'; got 'tpu'"),
        (("smoke", "cpu", -1), r"`seed` must be an integer in \[0, 4294967295\], got -1"),
        (("smoke", "cpu", 1.5), r"`seed` must be an integer in \[0, 4294967295\], got 1.5"),
    ],
)
def test_setup_rejects_bad_values(args, message):
    with pytest.raises(ValueError, match=message):
        nc.profiles.setup(*args)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_without_gpu_is_an_error_not_a_fallback():
    with pytest.raises(ValueError, match="CUDA is not available here"):
        nc.profiles.resolve_device("cuda")
    assert nc.profiles.resolve_device("auto").type == "cpu"


def test_checks():
    assert _checks.check_int("n", 4.0, low=1) == 4
    assert _checks.check_float_list("lam", 0.1, 3) == (0.1, 0.1, 0.1)
    with pytest.raises(ValueError, match=r"`n` must be an integer >= 1, got 0"):
        _checks.check_int("n", 0, low=1)
    with pytest.raises(ValueError, match=r"`n` must be an integer, got True"):
        _checks.check_int("n", True)
    with pytest.raises(ValueError, match=r"`x` must be a number in \(0, 1\], got 0.0"):
        _checks.check_float("x", 0.0, low=0, high=1, low_open=True)
    with pytest.raises(ValueError, match=r"`x` must be a finite number, got nan"):
        _checks.check_float("x", float("nan"))
    with pytest.raises(ValueError, match=r"`lam` must be a number or 3 numbers, got 2"):
        _checks.check_float_list("lam", [0.1, 0.2], 3)
    with pytest.raises(ValueError, match=r"`lam\[1\]` must be a number >= 0, got -0.2"):
        _checks.check_float_list("lam", [0.1, -0.2], 2, low=0)
    with pytest.raises(ValueError, match=r"`loss` must be one of 'mse', 'ce'; got 'l1'"):
        _checks.check_choice("loss", "l1", ("mse", "ce"))


def test_results_are_written_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("NCBOOK_RESULTS", str(tmp_path))
    frame = pd.DataFrame({"step": [0, 1], "loss": [1.0, 0.5]})
    path = nc.profiles.save_result("smoke", "demo", "history.csv", frame)
    assert pd.read_csv(path).equals(frame)
    assert [p.name for p in path.parent.iterdir()] == ["history.csv"]


def test_parameters_merge_all_section_then_notebook(tmp_path):
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "full.yml").write_text("_all: {device: cuda, seed: 1}\nnb: {seed: 2, steps: 9}\n")
    assert load_parameters("full", "nb", tmp_path) == {"device": "cuda", "seed": 2, "steps": 9,
                                                      "profile": "full"}
    assert load_parameters("smoke", "nb", tmp_path) == {"profile": "smoke"}


def test_shipped_parameter_files_name_existing_notebooks():
    root = nc.profiles.repo_root()
    stems = {p.stem for p in (root / "notebooks").glob("*.py")}
    import yaml

    for profile in nc.profiles.PROFILES:
        table = yaml.safe_load((root / "params" / f"{profile}.yml").read_text()) or {}
        assert set(table) - {"_all"} <= stems, f"params/{profile}.yml names unknown notebooks"
        for stem in set(table) - {"_all"}:  # every key is a parameter its notebook assigns
            load_parameters(profile, stem, root, notebook_parameters(root / "notebooks" / f"{stem}.py"))


def test_unknown_key_in_a_parameter_file_is_named(tmp_path):
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "full.yml").write_text("nb: {stpes: 9}\n")
    with pytest.raises(ValueError, match=r"params/full.yml section `nb`: unknown parameter `stpes` for "
                                         r"notebook nb; its parameters cell assigns: seed, steps"):
        load_parameters("full", "nb", tmp_path, {"profile": "smoke", "seed": 0, "steps": 1})


def test_paper_differences_are_kept_from_the_notebook(tmp_path):
    from ncbook.pipeline.parameters import paper_differences

    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "full.yml").write_text("nb: {steps: 9, _differences: \"width 64, not 2048\"}\n")
    assert load_parameters("full", "nb", tmp_path, {"steps": 1}) == {"steps": 9, "profile": "full"}
    assert paper_differences("full", "nb", tmp_path) == "width 64, not 2048"


def test_progress_bars_hide_under_batch_executors(monkeypatch):
    from ncbook import _runtime

    monkeypatch.setenv("NCBOOK_PROGRESS", "1")
    assert not _runtime.progress_disabled()
    monkeypatch.setenv("NCBOOK_PROGRESS", "0")
    assert _runtime.progress_disabled()
    monkeypatch.delenv("NCBOOK_PROGRESS")
    monkeypatch.setenv("CI", "true")
    assert _runtime.progress_disabled()
    monkeypatch.delenv("CI")
    assert _runtime.progress_disabled()  # pytest's stderr is captured: not a terminal
    monkeypatch.setitem(sys.modules, "ipykernel", sys)
    monkeypatch.setattr(_runtime, "_started_by_batch_executor", lambda: False)
    assert not _runtime.progress_disabled()  # a kernel under JupyterLab


def test_result_files_are_world_readable(tmp_path):
    from ncbook._io import write_json

    assert write_json(tmp_path / "x.json", {}).stat().st_mode & 0o777 == 0o644
