"""Security middleware for actor apps: origin checks and token authentication.

Wrap a router (or any ASGI app) before it reaches the server::

    from interlock.actors.security import OriginValidator

    app = ProtocolTypeRouter(
        {"websocket": OriginValidator(URLRouter([...]), ["https://example.com", "*.example.com"])}
    )

* :class:`OriginValidator` allows listed origins (``[scheme://]host[:port]`` patterns,
  see :meth:`OriginPattern.parse`), :class:`SameOriginValidator` the page's own origin,
  :class:`AllowedHostsOriginValidator` Django's ``ALLOWED_HOSTS``.
* :class:`TokenAuthMiddleware` finds a bearer token (a header, the query string or
  ``Sec-WebSocket-Protocol``), has your ``verify(token)`` turn it into a user, and puts
  it in ``scope["user"]``; a missing or refused token gets 401 before ``connect()`` runs.

Refusals happen before any actor runs: HTTP 403 (a WebSocket gets the denial response
where the server takes one, else a close before accept, which servers answer with 403),
logged as one line without a traceback. The rules for absent, malformed and ``null``
origins, and for where tokens are looked for, are in docs/security.md.
"""

import contextlib

from ._origin import (
    AllowedHostsOriginValidator,
    Origin,
    OriginPattern,
    OriginSettingsError,
    OriginValidator,
    SameOriginValidator,
    parse_origin,
)
from ._tokenauth import TokenAuthMiddleware, TokenRejected, Verify

__all__ = [
    "AllowedHostsOriginValidator",
    "Origin",
    "OriginPattern",
    "OriginSettingsError",
    "OriginValidator",
    "SameOriginValidator",
    "TokenAuthMiddleware",
    "TokenRejected",
    "Verify",
    "parse_origin",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("interlock.actors._"):
        with contextlib.suppress(AttributeError, TypeError):
            _obj.__module__ = __name__
del _name, _obj
