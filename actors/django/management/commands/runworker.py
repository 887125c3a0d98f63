"""``manage.py runworker CHANNEL...``: serve named channels with the project's ASGI application.

The application is ``settings.INTERLOCK_ASGI_APPLICATION`` (or Channels'
``ASGI_APPLICATION``), a dotted path such as ``"mysite.asgi.application"``: a
``ProtocolTypeRouter`` whose ``"channel"`` entry is a ``ChannelNameRouter``. The layer is
the router's ``channel_layer``, else ``--layer ALIAS`` (default ``"default"``) from
``INTERLOCK_CHANNEL_LAYERS`` (a ``--layer`` that is not the router's own is refused). A
handler's failure is logged and the worker goes on; SIGINT/SIGTERM stop it (exit 0), and
it exits 1 when it cannot go on or the settings are wrong, 2 for a usage error (no
channel, an invalid or unrouted channel name, an unknown ``--layer``), in one line.
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

    help = (
        "Serve named channels (workers) with the project's ASGI application until SIGINT/SIGTERM. "
        "Exit status: 0 after a signal, 1 when it cannot go on (or the settings are wrong), 2 for a usage error."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """``CHANNEL...``, ``--layer ALIAS``, ``--backend``."""
        parser.add_argument("channels", metavar="CHANNEL", nargs="+", help="named channels to serve")
        parser.add_argument(
            "--layer",
            default=None,
            help="layer alias in INTERLOCK_CHANNEL_LAYERS, for an application without its own channel_layer "
            "(default: 'default')",
        )
        parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio", help="default: asyncio")

    def handle(self, *args: Any, **options: Any) -> None:
        """Run the worker; exit 1 if it stopped (it logged why), 2 for a usage error."""
        verbosity = int(options.get("verbosity", 1))
        if not logging.getLogger("interlock.actors.worker").hasHandlers():  # LOGGING may have given it one
            level = logging.DEBUG if verbosity > 2 else logging.INFO if verbosity > 0 else logging.WARNING
            logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        application = _application()
        try:
            channels = check_worker_arguments(application, options["channels"])
        except (TypeError, ValueError) as exc:
            raise CommandError(str(exc).replace("run_worker()", "runworker"), returncode=2) from exc
        layer = _layer(application, options["layer"])
        status = worker_main(application, channels, layer, backend=options["backend"])
        if status:
            sys.exit(status)


def _layer(application: Any, alias: str | None) -> GroupLayer:
    """The layer to serve from: the router's own, else ``--layer``'s (default ``"default"``)."""
    own: GroupLayer | None = application.channel_layer if isinstance(application, ProtocolTypeRouter) else None
    if alias is None and own is not None:
        return own
    try:
        layer = get_channel_layer(alias or DEFAULT_CHANNEL_LAYER)
    except ImproperlyConfigured as exc:
        # A wrong --layer is the command line's mistake (2); a missing default, the settings' (1).
        raise CommandError(f"runworker --layer: {exc}" if alias else str(exc), returncode=2 if alias else 1) from exc
    if own is not None and layer is not own:
        msg = (
            f"runworker --layer {alias!r}: the application's ProtocolTypeRouter has its own channel_layer "
            f"({own!r}), which its actors send on; drop --layer to serve from it"
        )
        raise CommandError(msg, returncode=2)
    return layer
