"""The installed distribution: names, namespace package, typing marker, dependency direction."""

from __future__ import annotations

import ast
import importlib
import importlib.resources
import inspect
import subprocess
import sys
from pathlib import Path

import interlock
import pytest

PACKAGES = ["interlock.actors", "interlock.layers", "interlock.dsl"]
PUBLIC_MODULES = [
    *PACKAGES,
    "interlock.actors.testing",
    "interlock.actors.compat",
    "interlock.actors.security",
    "interlock.actors.django",
    "interlock.layers.testing",
    "interlock.layers.cli",
]


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run *code* in a fresh interpreter, isolated from this checkout.

    ``-I`` keeps the current directory and ``PYTHONPATH`` off ``sys.path``, so only what is
    installed can be imported; *cwd* is a scratch directory for the same reason.
    """
    return subprocess.run(
        [sys.executable, "-I", "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("name", ["actors", "layers", "dsl"])
def test_source_folders_are_not_importable_by_their_own_names(name: str, tmp_path: Path) -> None:
    result = run_python(f"import {name}", tmp_path)
    assert result.returncode != 0
    assert f"ModuleNotFoundError: No module named {name!r}" in result.stderr


def test_public_packages_import_when_installed(tmp_path: Path) -> None:
    code = "; ".join(f"import {name}" for name in PUBLIC_MODULES) + "; print('ok')"
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_interlock_is_a_namespace_package() -> None:
    assert getattr(interlock, "__file__", None) is None
    assert interlock.__spec__ is not None
    assert interlock.__spec__.origin in (None, "namespace")
    assert not any((Path(entry) / "__init__.py").exists() for entry in interlock.__path__)


def test_interlock_itself_holds_only_main_and_the_three_packages() -> None:
    found = {
        child.name for entry in interlock.__path__ for child in Path(entry).iterdir() if child.name != "__pycache__"
    }
    assert found == {"__main__.py", "actors", "layers", "dsl"}


def test_the_folder_of_interlock_main_is_no_package_of_its_own(tmp_path: Path) -> None:
    result = run_python("import interlock.actors._interlock", tmp_path)
    assert "ModuleNotFoundError: No module named 'interlock.actors._interlock'" in result.stderr


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_ships_py_typed(package: str) -> None:
    assert (importlib.resources.files(package) / "py.typed").is_file()


def imported_after(module: str, cwd: Path) -> list[str]:
    code = f"import {module}, sys; print(sorted(m for m in sys.modules if m.startswith(('interlock.', 'anyio'))))"
    result = run_python(code, cwd)
    assert result.returncode == 0, result.stderr
    names = ast.literal_eval(result.stdout.strip())
    assert isinstance(names, list)
    return [str(name) for name in names]


def test_layers_import_neither_actors_nor_dsl(tmp_path: Path) -> None:
    names = imported_after("interlock.layers", tmp_path)
    assert "interlock.layers" in names
    assert not [name for name in names if name.startswith(("interlock.actors", "interlock.dsl"))]


def test_dsl_imports_neither_actors_nor_layers_nor_anyio(tmp_path: Path) -> None:
    names = imported_after("interlock.dsl", tmp_path)
    assert "interlock.dsl" in names
    assert not [name for name in names if name.startswith(("interlock.actors", "interlock.layers", "anyio"))]


def test_actors_build_on_layers_and_dsl(tmp_path: Path) -> None:
    names = imported_after("interlock.actors", tmp_path)
    assert {"interlock.actors", "interlock.layers", "interlock.dsl", "anyio"} <= set(names)


def public_objects() -> list[tuple[str, str]]:
    return [(module, name) for module in PUBLIC_MODULES for name in importlib.import_module(module).__all__]


@pytest.mark.parametrize(("module", "name"), public_objects())
def test_public_objects_are_documented_and_claim_a_public_module(module: str, name: str) -> None:
    obj = getattr(importlib.import_module(module), name)
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        return  # constants and type aliases carry neither a docstring nor a module of their own
    assert inspect.getdoc(obj), f"{module}.{name} has no docstring"
    home = obj.__module__
    assert not any(part.startswith("_") for part in home.split(".")), (
        f"{module}.{name} claims the private module {home!r}"
    )
    assert home == module or home in PUBLIC_MODULES, f"{module}.{name}.__module__ is {home!r}"
    assert getattr(importlib.import_module(home), obj.__name__) is obj


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_all_lists_only_what_exists(module: str) -> None:
    imported = importlib.import_module(module)
    assert len(set(imported.__all__)) == len(imported.__all__)
    missing = [name for name in imported.__all__ if not hasattr(imported, name)]
    assert not missing
