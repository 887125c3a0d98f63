"""The ``interlock`` command line.

* ``interlock diagram MODULE:CLASS [--format mermaid|dot|svg] [-o FILE]`` draws an
  actor class's state machine (printing to stdout unless ``-o`` is given).
* ``interlock layer ...`` looks inside a SQLite channel layer file (see ``--help``).
* ``interlock --version`` prints the installed distribution's version.

``python -m interlock`` runs the same command. ``diagram`` imports the module it is given;
when ``DJANGO_SETTINGS_MODULE`` is set (and Django is installed) it calls ``django.setup()``
first, so a module of a Django project that imports its models loads as it does under
``manage.py``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from interlock.dsl import FORMATS, DiagramError, MachineDefinitionError
from interlock.layers.cli import add_layer_commands

from ._websocket import WebsocketActor

__all__ = ["load_actor_class", "main"]


class CommandError(Exception):
    """A user error on the command line: printed without a traceback, exit status 2."""


def load_actor_class(target: str) -> type[WebsocketActor]:
    """Import ``"package.module:Class"`` and check it is a connection actor class."""
    module_name, sep, qualname = target.partition(":")
    if not sep or not module_name or not qualname:
        msg = f"expected MODULE:CLASS (e.g. examples.chat:ChatActor), got {target!r}"
        raise CommandError(msg)
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    _setup_django()
    try:
        obj: object = importlib.import_module(module_name)
    except _django_not_ready() as exc:
        msg = f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}"
        if not os.environ.get("DJANGO_SETTINGS_MODULE"):
            msg += " (set DJANGO_SETTINGS_MODULE to the project's settings module, as manage.py does)"
        raise CommandError(msg) from exc
    except ImportError as exc:
        msg = f"cannot import module {module_name!r}: {exc}"
        raise CommandError(msg) from exc
    except MachineDefinitionError as exc:
        msg = f"module {module_name!r} declares an invalid state machine: {exc}"
        raise CommandError(msg) from exc
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            msg = f"module {module_name!r} has no attribute {qualname!r}"
            raise CommandError(msg) from None
    if not isinstance(obj, type) or not issubclass(obj, WebsocketActor):
        msg = f"{target} is {obj!r}, not a WebsocketActor subclass (only connection actors have a lifecycle)"
        raise CommandError(msg)
    return obj


def _setup_django() -> None:
    """Call ``django.setup()`` when ``DJANGO_SETTINGS_MODULE`` names a settings module and Django is installed."""
    settings = os.environ.get("DJANGO_SETTINGS_MODULE")
    if not settings or importlib.util.find_spec("django") is None:
        return
    import django  # noqa: PLC0415 - optional: only for a Django project's modules

    try:
        django.setup()
    except Exception as exc:  # a settings module can fail in any way: report it in one line
        msg = f"cannot set up Django with DJANGO_SETTINGS_MODULE={settings!r}: {type(exc).__name__}: {exc}"
        raise CommandError(msg) from exc


def _django_not_ready() -> tuple[type[Exception], ...]:
    """Django's errors for a model imported before ``django.setup()``, if Django was imported at all."""
    if "django.core.exceptions" not in sys.modules:
        return ()
    from django.core.exceptions import AppRegistryNotReady, ImproperlyConfigured  # noqa: PLC0415

    return (AppRegistryNotReady, ImproperlyConfigured)


def _version() -> str:
    try:
        return importlib.metadata.version("interlock")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree, not installed
        return "unknown (not installed)"


def _diagram(args: argparse.Namespace) -> int:
    actor = load_actor_class(args.target)
    try:
        text = actor.diagram(args.format)
    except DiagramError as exc:
        raise CommandError(str(exc)) from exc
    if args.output is None:
        sys.stdout.write(text)
    else:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            msg = f"cannot write {args.output}: {exc.strerror}"
            raise CommandError(msg) from exc
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``interlock`` command."""
    parser = argparse.ArgumentParser(prog="interlock", description="interlock actors and channel layers")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    diagram = commands.add_parser("diagram", help="draw an actor class's state machine")
    diagram.add_argument("target", metavar="MODULE:CLASS", help="e.g. interlock.actors:WebsocketActor")
    diagram.add_argument("--format", "-f", choices=FORMATS, default="mermaid", help="default: mermaid")
    diagram.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    diagram.set_defaults(handler=_diagram)
    add_layer_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.handler(args)
    except CommandError as exc:
        print(f"interlock: error: {exc}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
