"""pyproject.toml is the one source of dependencies; environment.yml must mirror it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _by_name(specs: list[str]) -> dict[str, str]:
    parsed = [Requirement(spec) for spec in specs]
    return {req.name.lower(): str(req.specifier) for req in parsed}


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project["optional-dependencies"]:
        specs += project["optional-dependencies"][extra]
    return _by_name(specs)


def environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    return _by_name([spec for spec in pip_section if not spec.startswith("-e")])


def test_environment_yml_mirrors_pyproject():
    assert environment_requirements() == pyproject_requirements()


def test_mirror_check_detects_a_drift(tmp_path):
    drifted = dict(pyproject_requirements(), torch=">=1.0")
    assert drifted != environment_requirements()


def test_top_level_layout():
    for name in ("book", "notebooks", "ncbook", "tests", "bench", "params",
                 "environment.yml", "Makefile", "README.md", "pyproject.toml", "jupytext.toml"):
        assert (ROOT / name).exists(), name
    assert (ROOT / ".ci" / "run").is_file()


def test_readme_states_the_two_commands_verbatim():
    readme = (ROOT / "README.md").read_text()
    assert "make book" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
