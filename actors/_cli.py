"""The ``interlock`` command line.

* ``interlock diagram MODULE:CLASS [--format mermaid|dot|svg] [-o FILE]`` draws an
  actor class's state machine (printing to stdout unless ``-o`` is given).
* ``interlock layer ...`` looks inside a SQLite channel layer file (see ``--help``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from interlock.dsl import FORMATS, DiagramError, MachineDefinitionError
from interlock.layers._cli import add_layer_commands

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
    try:
        obj: object = importlib.import_module(module_name)
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
