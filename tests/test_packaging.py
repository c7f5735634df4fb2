"""The project's promises about itself: metadata in sync, public names declared, notebooks clean."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

import toolkit

ROOT = Path(__file__).resolve().parents[1]


#: conda-forge names that differ from PyPI's (conda-forge's ``redis`` is the server).
CONDA_NAMES = {"redis-py": "redis"}


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
            conda.add(CONDA_NAMES.get(_name(match.group(1)), _name(match.group(1))))
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


def _imported_top_level_names(folder: Path) -> set[str]:
    names: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.partition(".")[0])
    return names - set(sys.stdlib_module_names) - {"toolkit", "__future__"}


def test_every_package_the_code_imports_is_declared() -> None:
    """Each third-party import in toolkit/ is a runtime dependency (or a ``bench`` extra's)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    declared = {_name(r) for r in project["dependencies"]}
    declared |= {_name(r) for r in project["optional-dependencies"]["bench"]}
    distributions = importlib.metadata.packages_distributions()
    missing = {
        module: distributions.get(module, ["?"])
        for module in _imported_top_level_names(ROOT / "toolkit")
        if not {_name(d) for d in distributions.get(module, [])} & declared
    }
    assert missing == {}


def test_lazy_package_exports_resolve_to_their_modules() -> None:
    """Every name of ``toolkit.catalogue`` and ``toolkit.discogs`` is in ``__all__``, ``dir`` and
    reachable, the lazy ones from the submodule their table names (a typo fails here)."""
    import importlib

    for package in ("toolkit.catalogue", "toolkit.discogs"):
        module = importlib.import_module(package)
        homes: dict[str, str] = vars(module)["_HOME"]
        assert set(homes) <= set(module.__all__), package
        assert set(module.__all__) <= set(dir(module)), package
        for name in module.__all__:
            assert getattr(module, name) is not None, (package, name)
        for name, home in homes.items():
            assert getattr(module, name) is getattr(
                importlib.import_module(f"{package}.{home}"), name
            )
        with pytest.raises(AttributeError, match=f"{package}.*no_such_name"):
            module.no_such_name  # noqa: B018
