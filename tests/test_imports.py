"""The import rules, read from the source with :mod:`ast` (no code is imported or run).

* **direction**: ``interlock.dsl`` imports neither ``interlock.actors`` nor ``interlock.layers``;
  ``interlock.layers`` imports neither ``interlock.actors`` nor ``interlock.dsl``;
  ``interlock.actors`` (the top layer, the command line included) may import both.
* **pure-dsl**: ``interlock.dsl`` is pure, testable without an event loop: no anyio, no other
  event loop, no threads, processes, files, sockets or databases (:data:`IMPURE`).
* **private-module**: a package imports another package's public modules only
  (``interlock.layers``, ``interlock.layers.cli``), never its private ones
  (``interlock.layers._cli``) or private names; relative imports stay inside their package.
* **bare-import**: nothing imports the source folders by their own names (``import actors``,
  ``from layers import ...``): installed, they are ``interlock.actors`` etc., and a bare
  ``actors`` is somebody else's distribution or the user's own app folder.

Module names come from ``[tool.setuptools] package-dir`` in ``pyproject.toml``, so relative
imports resolve as they do when installed. The packaging tests check the same direction at
run time (``tests/test_packaging.py``); these cover every module, imported or not.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE = ("actors", "layers", "dsl")
ELSEWHERE = ("tests", "examples", "bench")
# What each package may not import (itself excepted), by module prefix.
FORBIDDEN = {
    "interlock.actors": (),
    "interlock.layers": ("interlock.actors", "interlock.dsl"),
    "interlock.dsl": ("interlock.actors", "interlock.layers"),
}
IMPURE = frozenset(
    {
        "anyio", "asyncio", "trio", "sniffio", "aiosqlite", "sqlite3", "threading", "_thread",
        "multiprocessing", "concurrent", "subprocess", "socket", "ssl", "selectors", "select",
        "signal", "os", "io", "pathlib", "shutil", "tempfile", "http", "urllib",
    }
)  # fmt: skip


class Import(NamedTuple):
    """One imported module (or ``from`` name), resolved to its absolute dotted name."""

    line: int
    name: str
    relative: bool


def package_dirs() -> dict[str, str]:
    """``{"interlock.actors": "actors", ...}`` from pyproject.toml."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        mapping: dict[str, str] = tomllib.load(file)["tool"]["setuptools"]["package-dir"]
    return mapping


PACKAGE_DIRS = package_dirs()


def module_name(path: str) -> str | None:
    """The installed dotted name of the repository file *path* (``actors/_cli.py``), if installed."""
    parts = Path(path).with_suffix("").parts
    found = []
    for package, folder in PACKAGE_DIRS.items():
        depth = len(Path(folder).parts)
        if parts[:-1][:depth] == Path(folder).parts:
            found.append((depth, package))
    if not found:
        return None
    depth, package = max(found)
    rest = [part for part in parts[depth:] if part != "__init__"]
    return ".".join([package, *rest])


def owner(path: str) -> str | None:
    """The package whose rules apply to *path*: the code folder it lives in, as installed."""
    top = Path(path).parts[0]
    return f"interlock.{top}" if top in CODE else None


def imports(tree: ast.AST, path: str) -> Iterator[Import]:
    """Every import in *tree*, relative ones resolved against *path*'s installed name."""
    module = module_name(path)
    package = module if module is not None and Path(path).stem == "__init__" else (module or "").rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(node.lineno, alias.name, relative=False)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            elif module is None:
                continue  # a relative import in tests/ or examples/: not one of our packages
            else:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            yield Import(node.lineno, base, relative=node.level > 0)
            for alias in node.names:
                if alias.name != "*":
                    yield Import(node.lineno, f"{base}.{alias.name}", relative=node.level > 0)


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def private_prefix(name: str, package: str) -> str | None:
    """``interlock.layers._cli`` for ``interlock.layers._cli.main``: *name* up to its first private part."""
    parts = name.split(".")
    start = len(package.split("."))
    for end in range(start, len(parts)):
        if parts[end].startswith("_"):
            return ".".join(parts[: end + 1])
    return None


def violations(path: str, source: str) -> list[str]:
    """The rules *source* (the file *path*, relative to the repository) breaks, one message each."""
    tree = ast.parse(source, filename=path)
    home = owner(path)
    found = []
    for line, name, relative in imports(tree, path):
        where = f"{path}:{line}"
        top = name.partition(".")[0]
        if not relative and top in CODE:
            found.append(f"{where}: bare-import: `{name}` names a source folder; import interlock.{name} instead")
        if home is None:
            continue
        for banned in FORBIDDEN[home]:
            if within(name, banned):
                found.append(f"{where}: direction: {home} must not import {banned}")
        if home == "interlock.dsl" and top in IMPURE and not relative:
            found.append(f"{where}: pure-dsl: interlock.dsl is pure and must not import {name}")
        other = next((package for package in FORBIDDEN if within(name, package) and package != home), None)
        if other is not None:
            if relative:
                found.append(f"{where}: private-module: a relative import leaves {home} (it reaches {name})")
            elif private := private_prefix(name, other):
                found.append(
                    f"{where}: private-module: {private} is private to {other}; import from its public modules"
                )
    return list(dict.fromkeys(found))


def repository_files() -> list[Path]:
    files = [path for folder in (*CODE, *ELSEWHERE) for path in sorted((ROOT / folder).rglob("*.py"))]
    return [*files, *sorted((ROOT / "docs").glob("*.py"))]


def test_the_rules_see_every_code_folder() -> None:
    names = [path.relative_to(ROOT).as_posix() for path in repository_files()]
    for folder in CODE:
        assert f"{folder}/__init__.py" in names
        assert module_name(f"{folder}/__init__.py") == f"interlock.{folder}"
    assert module_name("actors/_cli.py") == "interlock.actors._cli"
    assert "tests/test_imports.py" in names


def test_the_code_keeps_the_import_rules() -> None:
    found = [
        message
        for path in repository_files()
        if "__pycache__" not in path.parts
        for message in violations(path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8"))
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    ("path", "source", "rule"),
    [
        (
            "dsl/_x.py",
            "from interlock.actors import WebsocketActor",
            "dsl/_x.py:1: direction: interlock.dsl must not import interlock.actors",
        ),
        ("dsl/_x.py", "import interlock.layers._wire", "direction: interlock.dsl must not import interlock.layers"),
        (
            "dsl/_x.py",
            "\n\ndef f():\n    import anyio\n",
            "dsl/_x.py:4: pure-dsl: interlock.dsl is pure and must not import anyio",
        ),
        ("dsl/_x.py", "import anyio.lowlevel", "pure-dsl"),
        ("dsl/_x.py", "from asyncio import sleep", "pure-dsl"),
        ("dsl/_x.py", "from .. import actors", "direction: interlock.dsl must not import interlock.actors"),
        (
            "layers/_x.py",
            "from interlock.dsl import State",
            "direction: interlock.layers must not import interlock.dsl",
        ),
        (
            "layers/_x.py",
            "from interlock import actors",
            "direction: interlock.layers must not import interlock.actors",
        ),
        (
            "actors/_x.py",
            "from interlock.layers._cli import add_layer_commands",
            "actors/_x.py:1: private-module: interlock.layers._cli is private",
        ),
        ("actors/_x.py", "from interlock.layers import _cli", "private-module: interlock.layers._cli is private"),
        ("actors/_x.py", "from interlock.dsl import _render", "private-module: interlock.dsl._render is private"),
        (
            "actors/_x.py",
            "from ..layers import GroupLayer",
            "private-module: a relative import leaves interlock.actors",
        ),
        ("actors/sub/_x.py", "from ...dsl._compile import x", "private-module"),
        ("actors/_x.py", "import actors", "actors/_x.py:1: bare-import: `actors` names a source folder"),
        ("tests/x.py", "from layers import InMemoryChannelLayer", "bare-import: `layers`"),
        ("examples/x.py", "import dsl._compile", "bare-import: `dsl._compile`"),
        ("docs/x.py", "\nfrom actors._cli import main", "docs/x.py:2: bare-import"),
    ],
)
def test_a_violation_is_reported_with_its_place_and_rule(path: str, source: str, rule: str) -> None:
    found = violations(path, source)
    assert any(rule in message for message in found), found


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("actors/_x.py", "from interlock.layers import GroupLayer\nfrom interlock.dsl import State"),
        ("actors/_x.py", "from interlock.layers.cli import add_layer_commands\nimport interlock.layers.testing"),
        ("actors/_x.py", "from ._websocket import WebsocketActor\nfrom . import _base\nimport anyio"),
        ("actors/_x.py", "from interlock.actors._base import Actor"),
        ("layers/_x.py", "from . import _sqlite_store as store\nimport sqlite3, anyio"),
        ("dsl/_x.py", "from ._compile import MachineSpec\nimport attrs, cattrs, inspect\nimport pygraphviz"),
        ("dsl/__init__.py", "from ._diagram import render"),
        ("tests/x.py", "from interlock.layers import _cli as cli\nfrom tests.support import servers\nfrom . import x"),
        ("examples/x.py", "import interlock.actors\nfrom myapp.layers import x"),
    ],
)
def test_what_the_rules_allow(path: str, source: str) -> None:
    assert violations(path, source) == []
