"""ruff over the library, the tests, the benchmarks and the notebooks' .py sources."""

from __future__ import annotations

import shutil
import subprocess

from conftest import ROOT


def test_ruff_is_clean():
    ruff = shutil.which("ruff") or str(ROOT / ".venv" / "bin" / "ruff")
    done = subprocess.run([ruff, "check", "--output-format", "concise", "ncbook", "tests", "bench",
                           "notebooks"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
