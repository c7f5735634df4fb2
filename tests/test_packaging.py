"""The project's promises about itself: metadata in sync, public names declared, notebooks clean."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import toolkit

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_lists_the_same_runtime_packages_as_pyproject() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = {_name(r) for r in pyproject["project"]["dependencies"]}
    conda: set[str] = set()
    in_deps = False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        if line.startswith("dependencies:"):
            in_deps = True
            continue
        match = re.match(r"^  - ([A-Za-z0-9_.\-]+)", line)
        if in_deps and match:
            conda.add(_name(match.group(1)))
    conda -= {"python", "pip"}
    assert conda == runtime
    assert "-e .[dev]" in (ROOT / "environment.yml").read_text()


def test_package_all_names_exist_and_are_unique() -> None:
    assert len(set(toolkit.__all__)) == len(toolkit.__all__)
    for name in toolkit.__all__:
        assert hasattr(toolkit, name), name


def test_py_typed_marker_ships() -> None:
    assert (ROOT / "toolkit" / "py.typed").is_file()


def test_notebooks_are_committed_without_outputs() -> None:
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        assert '"output_type"' not in notebook.read_text(), notebook.name
