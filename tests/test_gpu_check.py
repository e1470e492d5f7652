"""bench/gpu_check.py without CUDA: one line that says so, exit status 1, nothing written."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_cuda_it_says_so_in_one_line_and_fails(monkeypatch, capsys, tmp_path) -> None:
    module = _load()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert module.main(["--out", str(tmp_path / "gpu")]) == 1
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("gpu_check: no CUDA device on this machine")
    assert not (tmp_path / "gpu").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the command line on a machine without CUDA")
def test_command_line_exit_status_without_cuda(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert done.stdout.strip().splitlines() == [
        "gpu_check: no CUDA device on this machine (torch.cuda.is_available() is False); nothing was run"
    ]
