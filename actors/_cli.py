"""The ``interlock`` command line.

* ``interlock diagram MODULE:CLASS [--format mermaid|dot|svg] [-o FILE]`` draws an
  actor class's state machine (printing to stdout unless ``-o`` is given).
* ``interlock worker MODULE:APP CHANNEL... [--layer MODULE:NAME]`` serves named channels
  with an app (a ``ChannelNameRouter``, an actor app, or a ``ProtocolTypeRouter`` with a
  ``"channel"`` entry) until SIGINT/SIGTERM (exit 0); a handler's failure is logged and the
  worker goes on; it exits 1 when it cannot go on (see :func:`~interlock.actors.run_worker`).
  The layer is ``--layer``'s, else the router's ``channel_layer``, else, in a Django project,
  ``get_channel_layer()`` from its settings.
* ``interlock mqtt MODULE:APP [--broker mqtt://127.0.0.1:1883] [--layer MODULE:NAME]`` serves an MQTT
  app (an ``MqttRouter``, an ``MqttActor`` app, a ``ProtocolTypeRouter`` with ``"mqtt"``) over one broker
  connection until SIGINT/SIGTERM (exit 0); a broker that cannot be reached or refuses exits 1.
* ``interlock layer ...`` looks inside a SQLite channel layer file (see ``--help``).
* ``interlock --version`` prints the installed distribution's version.

``python -m interlock`` runs the same command. ``diagram`` and ``worker`` import the module they are given;
when ``DJANGO_SETTINGS_MODULE`` is set (and Django is installed) it calls ``django.setup()``
first, so a module of a Django project that imports its models loads as it does under
``manage.py``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from interlock.dsl import FORMATS, DiagramError, MachineDefinitionError
from interlock.layers import GroupLayer
from interlock.layers.cli import add_layer_commands

from ._base import ActorApp
from ._http import HttpActor
from ._http_machine import HttpStateActor
from ._inspect_cli import add_inspect_command
from ._routing import ProtocolTypeRouter
from ._types import ASGIApp
from ._websocket import WebsocketActor
from ._worker import check_worker_arguments, worker_main

__all__ = ["load_actor_class", "main"]


class CommandError(Exception):
    """A user error on the command line: printed without a traceback, exit status 2."""


def load_actor_class(target: str) -> type[WebsocketActor] | type[HttpActor] | type[HttpStateActor]:
    """Import ``"package.module:Class"`` and check it is an actor class with a lifecycle.

    ``MqttConnection`` (the MQTT connection's lifecycle) is drawn too.
    """
    obj = load_object(target, "MODULE:CLASS (e.g. examples.chat:ChatActor)")
    if isinstance(obj, type) and obj.__name__ == "MqttConnection" and callable(getattr(obj, "diagram", None)):
        return cast("type[WebsocketActor]", obj)  # it draws like one
    if not isinstance(obj, type) or not issubclass(obj, (WebsocketActor, HttpActor, HttpStateActor)):
        msg = (
            f"{target} is {obj!r}, not a WebsocketActor or HttpActor subclass "
            "(only connection and request actors have a lifecycle)"
        )
        raise CommandError(msg)
    return obj


def load_object(target: str, expected: str) -> object:
    """Import ``"package.module:name.attr"`` (Django set up first, if configured) and return it."""
    module_name, sep, qualname = target.partition(":")
    if not sep or not module_name or not qualname:
        msg = f"expected {expected}, got {target!r}"
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


def _worker_layer(args: argparse.Namespace, application: object) -> GroupLayer:
    """The layer a worker serves: ``--layer``, else the app's own, else the Django project's."""
    if args.layer is not None:
        layer = load_object(args.layer, "--layer MODULE:NAME (e.g. myproject.layers:layer)")
        if not isinstance(layer, GroupLayer):
            msg = f"--layer {args.layer} is {layer!r}, not a channel layer with groups"
            raise CommandError(msg)
        return layer
    own: object = None
    if isinstance(application, ProtocolTypeRouter):
        own = application.channel_layer
    elif isinstance(application, ActorApp):
        own = application.initkwargs.get("channel_layer")
    if isinstance(own, GroupLayer):
        return own
    if os.environ.get("DJANGO_SETTINGS_MODULE") and importlib.util.find_spec("django") is not None:
        from django.core.exceptions import ImproperlyConfigured  # noqa: PLC0415 - a Django project's layer

        from .django import get_channel_layer  # noqa: PLC0415

        try:
            return get_channel_layer()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
    msg = (
        f"{args.target} has no channel layer to serve: pass --layer MODULE:NAME, give its router one "
        "(ProtocolTypeRouter(..., channel_layer=layer)), or run it in a Django project with "
        "INTERLOCK_CHANNEL_LAYERS set (DJANGO_SETTINGS_MODULE)"
    )
    raise CommandError(msg)


def _worker(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    application = load_object(args.target, "MODULE:APP (e.g. myproject.workers:application)")
    if isinstance(application, type):
        msg = f"{args.target} is a class; point at an app, e.g. {args.target}.as_asgi() assigned to a module name"
        raise CommandError(msg)
    if not callable(application):
        msg = f"{args.target} is {application!r}, not an ASGI application"
        raise CommandError(msg)
    app = cast("ASGIApp", application)
    try:
        channels = check_worker_arguments(app, args.channels)
    except (TypeError, ValueError) as exc:
        raise CommandError(str(exc).replace("run_worker()", "interlock worker")) from exc
    layer = _worker_layer(args, app)
    return worker_main(app, channels, layer, backend=args.backend)


def _mqtt(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        from . import _mqtt as mqtt  # noqa: PLC0415 - needs the mqtt extra
    except ImportError as exc:
        msg = f"interlock mqtt needs the mqtt extra: pip install 'interlock[mqtt]' ({exc})"
        raise CommandError(msg) from exc
    application = load_object(args.target, "MODULE:APP (e.g. examples.iot.app:mqtt_app)")
    if isinstance(application, type):
        msg = f"{args.target} is a class; point at an app, e.g. {args.target}.as_asgi() assigned to a module name"
        raise CommandError(msg)
    layer = None
    if args.layer is not None:
        loaded = load_object(args.layer, "--layer MODULE:NAME (e.g. myproject.layers:layer)")
        if not isinstance(loaded, GroupLayer):
            msg = f"--layer {args.layer} is {loaded!r}, not a channel layer with groups"
            raise CommandError(msg)
        layer = loaded
    try:
        server = mqtt.MqttServer(
            cast("ASGIApp", application), args.broker, channel_layer=layer, client_id=args.client_id
        )
    except (TypeError, ValueError) as exc:
        raise CommandError(f"{args.target}: {exc}") from exc
    return mqtt.run_mqtt(server, backend=args.backend)


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    """The options ``interlock worker`` and ``manage.py runworker`` share (but the app)."""
    parser.add_argument("channels", metavar="CHANNEL", nargs="+", help="named channels to serve, e.g. thumbnails")
    parser.add_argument(
        "--backend", choices=["asyncio", "trio"], default="asyncio", help="event loop (default: asyncio)"
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default: INFO"
    )


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
    worker = commands.add_parser(
        "worker",
        help="serve named channels with an app until SIGINT/SIGTERM",
        description="Serve named channels with an app: a handler's failure is logged and the worker goes on; "
        "it exits 0 on SIGINT/SIGTERM, 1 when it cannot go on, 2 for a usage error.",
    )
    worker.add_argument("target", metavar="MODULE:APP", help="e.g. myproject.workers:application")
    add_worker_arguments(worker)
    worker.add_argument("--layer", metavar="MODULE:NAME", help="the channel layer (default: the app's, or Django's)")
    worker.set_defaults(handler=_worker)
    mqtt = commands.add_parser(
        "mqtt",
        help="serve an MQTT app over one broker connection until SIGINT/SIGTERM",
        description="Serve an MQTT app: one actor per topic route, fed by one connection that reconnects by itself; "
        "exits 0 on SIGINT/SIGTERM, 1 when the broker cannot be reached or refuses, 2 for a usage error.",
    )
    mqtt.add_argument("target", metavar="MODULE:APP", help="e.g. examples.iot.app:mqtt_app")
    mqtt.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="default: mqtt://127.0.0.1:1883")
    mqtt.add_argument("--layer", metavar="MODULE:NAME", help="the channel layer (default: the app's router's)")
    mqtt.add_argument("--client-id", help="the MQTT client id (default: interlock-<random>)")
    mqtt.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio", help="event loop (default: asyncio)")
    mqtt.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default: INFO"
    )
    mqtt.set_defaults(handler=_mqtt)
    add_layer_commands(commands)
    add_inspect_command(commands)
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
