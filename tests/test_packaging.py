"""What users install: the extras, the stack the suite runs on, and the README's commands."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in requirements}


def test_the_suite_runs_on_numpy_2_as_a_plain_install_gets() -> None:
    assert int(np.__version__.split(".")[0]) >= 2, np.__version__


def test_tensorflow_is_in_the_ml_extra_only() -> None:
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"]
    assert not {"tensorflow", "tensorflow-cpu", "keras"} & _names(project["dependencies"])
    assert _names(extras["ml"]) == {"tensorflow", "tensorflow-cpu"}
    assert "pm25-forecast[ml]" in extras["test"]  # `pip install -e '.[test]'` runs every test
    assert "pm25-forecast[test]" in extras["dev"]


def test_pseudonetcdf_stays_out_of_the_main_test_environment() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert "pseudonetcdf" not in _names(extras["test"] + extras["dev"] + extras["ml"])
    assert "pseudonetcdf" in _names(extras["pnc"])
    ci = (ROOT / ".ci" / "run").read_text()
    assert "--run-pseudonetcdf tests/test_pseudonetcdf.py" in ci
    assert "pip install -e '.[pnc]'" in ci


def _readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    first_screen = readme.split("\n## ", 1)[0]
    return re.findall(r"^python3\.11 -m venv .*$", first_screen, re.M)


def test_the_readme_demo_installs_the_model_and_ci_runs_the_readme_test_command() -> None:
    demo, tests = _readme_commands()
    assert demo.endswith("pip install -e '.[ml]' && pm25 demo")
    assert tests.endswith("pip install -e '.[test]' && python -m pytest -q --run-slow")
    ci_line = tests.removeprefix("python3.11 ").replace("python3.11", "$PY")
    assert f"$PY {ci_line}" in (ROOT / ".ci" / "run").read_text()
