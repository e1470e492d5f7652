"""The command line: `ncbook --help` in plain text with examples, `--version`, `ncbook run` with a
help text for every option, and a runner that imports only what it needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ncbook import __version__
from ncbook.pipeline import cli, run_notebook

ROOT = Path(__file__).resolve().parents[1]


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as done:
        cli.main(list(argv))
    assert done.value.code == 0
    return capsys.readouterr().out


def test_top_level_help_is_plain_text_with_examples(capsys):
    text = _help(capsys, "--help")
    assert "examples:" in text and "ncbook run notebooks/00_overview.py -p steps 300" in text
    assert "``" not in text and "::" not in text  # no raw RST
    for command in ("run", "sweep", "collect"):
        assert f"  {command} " in text


def test_version(capsys):
    assert _help(capsys, "--version").strip() == f"ncbook {__version__}"


@pytest.mark.parametrize("command", ["run", "sweep", "collect"])
def test_every_option_has_a_help_text(capsys, command):
    text = _help(capsys, command, "--help")
    parser = run_notebook.parser() if command == "run" else None
    options = [a for a in (parser._actions if parser else []) if a.option_strings]
    assert all(action.help for action in options)
    for option in {"run": ("--profile", "--device", "-p NAME VALUE", "--dry-run"),
                   "sweep": ("--jobs", "--out", "--executor"), "collect": ("--out", "--runs")}[command]:
        assert option in text


def test_run_dry_run_says_where_an_exploratory_run_goes(capsys):
    assert cli.main(["run", "notebooks/00_overview.py", "-p", "steps", "300", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "exploratory (not strict)" in out and "results/smoke/_runs/00_overview-" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["-p", "stpes", "10"], r"-p: unknown parameter `stpes` for notebook 00_overview; its parameters "
                            r"cell assigns: device, seed, num_classes"),
    (["-p", "profile", "full"], r"`profile` comes only from --profile"),
    (["-p", "x; import os", "1"], r"'x; import os' is not a parameter name"),
])
def test_run_refuses_bad_names(capsys, argv, message):
    import re

    assert cli.main(["run", "notebooks/00_overview.py", *argv, "--dry-run"]) == 1
    assert re.search(message, capsys.readouterr().err)


def test_run_with_the_profile_values_is_a_profile_run(capsys):
    assert cli.main(["run", "notebooks/00_overview.py", "--device", "cpu", "--dry-run"]) == 0
    assert "smoke (strict) run" in capsys.readouterr().out


def test_the_runner_imports_neither_torch_nor_pandas():
    code = ("import sys, ncbook.pipeline.run_notebook, ncbook.pipeline.cli; "
            "print(sorted(m for m in ('torch', 'pandas', 'numpy', 'papermill') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.stdout.strip() == "[]", done.stderr
