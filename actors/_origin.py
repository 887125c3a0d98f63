"""Origin checks: refuse WebSocket handshakes and HTTP requests a foreign page started.

A browser sends ``Origin`` on every WebSocket handshake, with the user's cookies for
the *target* site whatever page opened the socket: without a check, a page on another
site can open a socket that carries the user's session (cross-site WebSocket
hijacking). These validators run before any actor, in front of a router or an app.

Rules, in order (the same for ``websocket`` and ``http`` scopes; others pass through):

1. ``"*"`` among the allowed origins turns the check off: everything passes.
2. No ``Origin`` header: passes unless ``allow_missing=False``. Only browsers are bound
   by Origin, and they always send it on a handshake; a client that sends none is not a
   browser page, and could send any Origin it liked, so refusing it protects nothing.
3. More than one ``Origin`` header, or one that is not ``scheme://host[:port]``
   (RFC 6454's serialisation: no path, no user, ASCII only): refused as malformed.
4. ``Origin: null`` (sandboxed iframes, ``file:`` pages, some redirects): refused unless
   ``"null"`` is an allowed origin. Any site can make a browser send ``null``.
5. Otherwise the origin passes if it is the request's own origin (``same_origin=True``:
   its host and port are the ``Host`` header's) or matches an allowed pattern.

Refusals get 403 (a WebSocket gets the denial response where the server takes one,
else a close before accept, which servers answer with 403) and one WARNING line.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Iterable
from typing import Final

import attrs

from ._asgi import supports_denial
from ._refusal import refuse
from ._types import ASGIApp, Receive, Scope, Send

__all__ = [
    "AllowedHostsOriginValidator",
    "Origin",
    "OriginPattern",
    "OriginSettingsError",
    "OriginValidator",
    "SameOriginValidator",
    "parse_origin",
]

logger = logging.getLogger("interlock.actors.security")

DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}

_HOST = r"(?:\[[0-9a-f:.]+\]|[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?\.?)"
_ORIGIN: Final = re.compile(rf"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<host>{_HOST})(?::(?P<port>[0-9]{{1,5}}))?")
_PATTERN: Final = re.compile(
    rf"(?:(?P<scheme>[a-z][a-z0-9+.-]*)://)?(?P<host>\*|(?:\*\.|\.)?{_HOST})(?::(?P<port>\*|[0-9]{{1,5}}))?"
)
_HOST_HEADER: Final = re.compile(rf"(?P<host>{_HOST})(?::(?P<port>[0-9]{{1,5}}))?")


@attrs.frozen
class Origin:
    """A parsed ``Origin`` header: lower-case scheme and host, the port if one was written."""

    scheme: str
    host: str
    port: int | None

    @property
    def effective_port(self) -> int | None:
        """The port written, or the scheme's default (None for a scheme without one)."""
        return self.port if self.port is not None else DEFAULT_PORTS.get(self.scheme)


def _port(text: str | None) -> int | None:
    if text is None:
        return None
    port = int(text)
    if port > 65535:
        msg = f"port {port} is over 65535"
        raise ValueError(msg)
    return port


def parse_origin(value: str) -> Origin | None:
    """Parse a serialised origin (``https://example.com:8443``); None if it is not one.

    ``null`` is not an origin here: the caller decides what an opaque origin means.
    """
    found = _ORIGIN.fullmatch(value.lower()) if value.isascii() else None
    if found is None:
        return None
    try:
        port = _port(found["port"])
    except ValueError:
        return None
    return Origin(found["scheme"], found["host"].rstrip("."), port)


class OriginSettingsError(RuntimeError):
    """A validator cannot learn what is allowed (Django's settings are not configured)."""


class HostMatch(enum.Enum):
    """How an :class:`OriginPattern`'s host part matches."""

    ANY = "*"
    EXACT = "example.com"
    SUBDOMAINS = "*.example.com"
    DOMAIN = ".example.com"


ANY_PORT: Final = -1


@attrs.frozen
class OriginPattern:
    """One allowed-origin pattern, ``[scheme://]host[:port]`` (see :meth:`parse`)."""

    text: str
    scheme: str | None
    host: str
    host_match: HostMatch
    port: int | None
    """The port to match, :data:`ANY_PORT`, or None (no port written)."""

    @classmethod
    def parse(cls, text: str) -> OriginPattern:
        """Parse *text*; raise ``ValueError`` naming it and the grammar if it is not a pattern.

        * ``scheme://`` is optional; written, the origin's scheme must be it.
        * host: ``example.com`` (that host only), ``*.example.com`` (any subdomain, at
          any depth, not ``example.com`` itself), ``.example.com`` (``example.com`` and
          its subdomains, Django's ``ALLOWED_HOSTS`` form), ``*`` (any host), an IPv4
          address or a bracketed IPv6 one (``[::1]``). Case does not matter.
        * ``:port`` is optional; ``:*`` is any port. Without a port, a pattern with a
          scheme is an origin and means that scheme's default port (``https://a.com``
          is ``https://a.com:443``); one without a scheme matches any port.
        """
        if not isinstance(text, str):
            msg = f"an allowed origin must be a str, not {type(text).__name__} ({text!r})"
            raise TypeError(msg)
        lowered = text.strip().lower()
        found = _PATTERN.fullmatch(lowered) if lowered.isascii() else None
        if found is None:
            scheme, sep, rest = lowered.partition("://")
            if not sep:
                scheme, rest = "", lowered
            if "/" in rest:
                hint = f"an origin has no path: write {scheme + sep + rest.split('/', 1)[0]!r}"
            else:
                hint = "expected [scheme://]host[:port], e.g. 'https://example.com', '*.example.com:8443', 'localhost'"
            msg = f"{text!r} is not an origin pattern: {hint}"
            raise ValueError(msg)
        host = found["host"]
        if host == "*":
            host_match, host = HostMatch.ANY, ""
        elif host.startswith("*."):
            host_match, host = HostMatch.SUBDOMAINS, host[2:]
        elif host.startswith("."):
            host_match, host = HostMatch.DOMAIN, host[1:]
        else:
            host_match = HostMatch.EXACT
        port_text = found["port"]
        try:
            port = ANY_PORT if port_text == "*" else _port(port_text)
        except ValueError as exc:
            msg = f"{text!r} is not an origin pattern: {exc}"
            raise ValueError(msg) from exc
        return cls(text, found["scheme"], host.rstrip("."), host_match, port)

    def matches(self, origin: Origin) -> bool:
        """Whether *origin* is allowed by this pattern."""
        if self.scheme is not None and origin.scheme != self.scheme:
            return False
        if self.port == ANY_PORT:
            pass
        elif self.port is not None:
            if origin.effective_port != self.port:
                return False
        elif self.scheme is not None and origin.effective_port != DEFAULT_PORTS.get(self.scheme):
            return False
        match self.host_match:
            case HostMatch.ANY:
                return True
            case HostMatch.EXACT:
                return origin.host == self.host
            case HostMatch.SUBDOMAINS:
                return origin.host.endswith("." + self.host)
            case HostMatch.DOMAIN:
                return origin.host == self.host or origin.host.endswith("." + self.host)


def _header_values(scope: Scope, name: bytes) -> list[bytes]:
    return [value for key, value in scope.get("headers") or () if key.lower() == name]


def _same_origin(origin: Origin, scope: Scope) -> bool:
    """Whether *origin* names the host and port the request was made to (its ``Host``).

    Schemes are not compared: behind a proxy that ends TLS the app cannot know the
    scheme the client used. Ports are, with each side's default port taken as the
    origin scheme's (``Origin: https://a.com`` is ``Host: a.com`` or ``a.com:443``).
    """
    hosts = _header_values(scope, b"host")
    if len(hosts) != 1:
        return False
    try:
        found = _HOST_HEADER.fullmatch(hosts[0].decode("ascii").lower())
        port = _port(found["port"]) if found is not None else None
    except (UnicodeDecodeError, ValueError):
        return False
    if found is None:
        return False
    default = DEFAULT_PORTS.get(origin.scheme)
    return found["host"].rstrip(".") == origin.host and (port or default) == origin.effective_port


class OriginValidator:
    """ASGI middleware: let *app* serve only requests whose ``Origin`` is allowed.

    ``allowed_origins`` are :meth:`OriginPattern.parse` patterns, ``"*"`` (no check) or
    ``"null"``; ``same_origin=True`` also allows the request's own origin. Put it in
    front of a router: ``OriginValidator(URLRouter([...]), ["https://example.com"])``.
    See the module's rules for absent, malformed and ``null`` origins.
    """

    def __init__(
        self,
        app: ASGIApp,
        allowed_origins: Iterable[str] = (),
        *,
        same_origin: bool = False,
        allow_missing: bool = True,
    ) -> None:
        if isinstance(allowed_origins, str):
            msg = f"allowed_origins must be a list of patterns, not the str {allowed_origins!r}"
            raise TypeError(msg)
        patterns = list(allowed_origins)
        if not patterns and not same_origin and type(self) is OriginValidator:
            msg = (
                "OriginValidator(app) allows no origin at all: pass allowed_origins "
                "(e.g. ['https://example.com']) or same_origin=True"
            )
            raise ValueError(msg)
        self.app = app
        self.same_origin = same_origin
        self.allow_missing = allow_missing
        self.allow_any = False
        self.allow_null = False
        parsed: list[OriginPattern] = []
        for pattern in patterns:
            special = pattern.strip().lower() if isinstance(pattern, str) else None
            if special == "*":
                self.allow_any = True
            elif special == "null":
                self.allow_null = True
            else:
                parsed.append(OriginPattern.parse(pattern))
        self.patterns = tuple(parsed)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.app!r}, {self._describe()})"

    def _describe(self) -> str:
        allowed = [p.text for p in self.patterns] + ["null"] * self.allow_null + ["*"] * self.allow_any
        parts = ["the request's own origin"] if self.same_origin else []
        if allowed:
            parts.append(f"{allowed!r}")
        return " or ".join(parts) or "nothing"

    def allows(self, origin: Origin, scope: Scope) -> bool:
        """Whether a well-formed, non-null *origin* may reach the app for *scope*."""
        if self.same_origin and _same_origin(origin, scope):
            return True
        return any(pattern.matches(origin) for pattern in self.patterns)

    def refusal(self, scope: Scope) -> str | None:
        """Why *scope* is refused (a sentence for the log and the client), or None to let it in."""
        if self.allow_any:
            return None
        values = _header_values(scope, b"origin")
        if not values:
            return None if self.allow_missing else "no Origin header (this app requires one)"
        if len(values) > 1:
            return f"{len(values)} Origin headers (expected one)"
        text = values[0].decode("latin-1")
        if text.strip().lower() == "null":
            return None if self.allow_null else "Origin 'null' is not allowed"
        origin = parse_origin(text.strip())
        if origin is None:
            return f"malformed Origin {text!r} (expected scheme://host[:port])"
        if self.allows(origin, scope):
            return None
        return f"Origin {text!r} is not allowed"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        try:
            why = self.refusal(scope)
        except OriginSettingsError as exc:
            logger.error("%s; answered 500 to %s %s", exc, scope["type"], scope.get("path", ""))
            await refuse(scope, receive, send, 500, "Internal Server Error")
            return None
        if why is None:
            return await self.app(scope, receive, send)
        self._log_refusal(scope, why, send)
        await refuse(scope, receive, send, 403, f"Forbidden: {why}")
        return None

    def _log_refusal(self, scope: Scope, why: str, send: Send) -> None:
        client = scope.get("client")
        peer = f"{client[0]}:{client[1]}" if client else "unknown client"
        answer = "403" if scope["type"] == "http" or supports_denial(scope, send) else "403 (close before accept)"
        hosts = _header_values(scope, b"host")
        host = hosts[0].decode("latin-1") if hosts else None
        logger.warning(
            "refused %s %s from %s (Host %r): %s; allowed: %s; answered %s",
            scope["type"],
            scope.get("path", ""),
            peer,
            host,
            why,
            self._describe(),
            answer,
        )


class SameOriginValidator(OriginValidator):
    """An :class:`OriginValidator` that allows the request's own origin, and *allowed_origins*.

    The page's origin must name the host and port of the ``Host`` header the socket
    was opened to (schemes are not compared: behind a proxy that ends TLS the app cannot know them). It needs no
    configuration, so the examples use it; in production prefer a list of your
    origins, or :class:`AllowedHostsOriginValidator`, which also stand against DNS
    rebinding (a foreign name pointed at your server makes its own ``Host`` match).
    """

    def __init__(self, app: ASGIApp, allowed_origins: Iterable[str] = (), *, allow_missing: bool = True) -> None:
        super().__init__(app, allowed_origins, same_origin=True, allow_missing=allow_missing)


# Django's HttpRequest.get_host() allows these when DEBUG is on and ALLOWED_HOSTS is empty.
DJANGO_DEBUG_HOSTS: Final = (".localhost", "127.0.0.1", "[::1]")


class AllowedHostsOriginValidator(OriginValidator):
    """An :class:`OriginValidator` whose allowed hosts are Django's ``settings.ALLOWED_HOSTS``.

    Django's rules, as its ``HttpRequest.get_host()`` applies them to ``Host``: an
    entry ``example.com`` allows that host, ``.example.com`` it and its subdomains,
    ``*`` every origin; schemes and ports are not compared; with ``DEBUG`` on and
    ``ALLOWED_HOSTS`` empty, ``.localhost``, ``127.0.0.1`` and ``[::1]`` are allowed.
    Settings are read on every request, never at import or construction, so the
    wrapper can be built in ``asgi.py`` before Django is set up and follows
    ``override_settings`` in tests. Absent, malformed and ``null`` origins follow
    :class:`OriginValidator`'s rules. Constructing one needs Django installed.
    """

    def __init__(self, app: ASGIApp, *, allow_missing: bool = True) -> None:
        try:
            import django  # noqa: F401, PLC0415 - only to say early that it is missing
        except ImportError as exc:
            msg = (
                "AllowedHostsOriginValidator reads Django's settings.ALLOWED_HOSTS, and Django "
                "is not installed; install it, or use OriginValidator(app, ['https://example.com'])"
            )
            raise ImportError(msg) from exc
        super().__init__(app, (), allow_missing=allow_missing)

    @staticmethod
    def allowed_hosts() -> list[str]:
        """Django's ``ALLOWED_HOSTS`` as ``get_host()`` uses them (the DEBUG default included)."""
        from django.conf import settings  # noqa: PLC0415 - Django is optional, settings lazy
        from django.core.exceptions import ImproperlyConfigured  # noqa: PLC0415

        try:
            hosts = list(settings.ALLOWED_HOSTS)
            debug = bool(settings.DEBUG)
        except ImproperlyConfigured as exc:
            msg = (
                "AllowedHostsOriginValidator cannot read settings.ALLOWED_HOSTS: Django's settings "
                f"are not configured (set DJANGO_SETTINGS_MODULE or call settings.configure()): {exc}"
            )
            raise OriginSettingsError(msg) from exc
        if debug and not hosts:
            return list(DJANGO_DEBUG_HOSTS)
        return hosts

    def _describe(self) -> str:
        try:
            return f"Django's ALLOWED_HOSTS {self.allowed_hosts()!r}"
        except OriginSettingsError:
            return "Django's ALLOWED_HOSTS (settings not configured)"

    def allows(self, origin: Origin, scope: Scope) -> bool:
        """Whether *origin*'s host is one of Django's allowed hosts (``validate_host``)."""
        from django.http.request import validate_host  # noqa: PLC0415 - Django is optional

        return bool(validate_host(origin.host, self.allowed_hosts()))

    def refusal(self, scope: Scope) -> str | None:
        """As :meth:`OriginValidator.refusal`; ``"*"`` in ``ALLOWED_HOSTS`` lets everything in."""
        if "*" in self.allowed_hosts():
            return None
        return super().refusal(scope)
