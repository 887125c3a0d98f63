"""``manage.py runworker CHANNEL...``: serve named channels with the project's ASGI application.

The application is ``settings.INTERLOCK_ASGI_APPLICATION`` (or Channels'
``ASGI_APPLICATION``), a dotted path such as ``"mysite.asgi.application"``: a
``ProtocolTypeRouter`` whose ``"channel"`` entry is a ``ChannelNameRouter``. The layer is
the router's ``channel_layer``, else ``--layer ALIAS`` (default ``"default"``) from
``INTERLOCK_CHANNEL_LAYERS``. A handler's failure is logged and the worker goes on;
SIGINT/SIGTERM stop it (exit 0), and it exits 1 when it cannot go on.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import import_string
from interlock.actors import ProtocolTypeRouter
from interlock.actors._worker import check_worker_arguments, worker_main
from interlock.actors.django import DEFAULT_CHANNEL_LAYER, get_channel_layer
from interlock.layers import GroupLayer


def _application() -> Any:
    for name in ("INTERLOCK_ASGI_APPLICATION", "ASGI_APPLICATION"):
        path = getattr(settings, name, None)
        if path:
            try:
                return import_string(path)
            except ImportError as exc:
                msg = f"settings.{name} = {path!r} cannot be imported: {exc}"
                raise CommandError(msg) from exc
    msg = (
        "runworker needs the project's ASGI application: set INTERLOCK_ASGI_APPLICATION "
        "(or ASGI_APPLICATION) to its dotted path, e.g. 'mysite.asgi.application'"
    )
    raise CommandError(msg)


class Command(BaseCommand):
    """Serve named channels with the project's ASGI application."""

    help = "Serve named channels (workers) with the project's ASGI application until SIGINT/SIGTERM."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """``CHANNEL...``, ``--layer ALIAS``, ``--backend``."""
        parser.add_argument("channels", metavar="CHANNEL", nargs="+", help="named channels to serve")
        parser.add_argument("--layer", default=DEFAULT_CHANNEL_LAYER, help="layer alias (default: 'default')")
        parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio", help="default: asyncio")

    def handle(self, *args: Any, **options: Any) -> None:
        """Run the worker; exit 1 if it stopped (it logged why)."""
        verbosity = int(options.get("verbosity", 1))
        if not logging.getLogger().handlers:
            level = logging.DEBUG if verbosity > 2 else logging.INFO if verbosity > 0 else logging.WARNING
            logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        application = _application()
        try:
            channels = check_worker_arguments(application, options["channels"])
        except (TypeError, ValueError) as exc:
            raise CommandError(str(exc).replace("run_worker()", "runworker")) from exc
        layer: GroupLayer | None = None
        if isinstance(application, ProtocolTypeRouter):
            layer = application.channel_layer
        if layer is None:
            try:
                layer = get_channel_layer(options["layer"])
            except ImproperlyConfigured as exc:
                raise CommandError(str(exc)) from exc
        status = worker_main(application, channels, layer, backend=options["backend"])
        if status:
            sys.exit(status)
