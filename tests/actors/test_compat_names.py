"""Channels' Django and security names in ``interlock.actors.compat``, loaded only when used."""

from __future__ import annotations

import subprocess
import sys

import interlock.actors.compat as compat
import interlock.actors.django as django_support
import interlock.actors.security as security
import pytest

DJANGO_NAMES = [
    "AuthMiddleware",
    "AuthMiddlewareStack",
    "CookieMiddleware",
    "SessionMiddleware",
    "SessionMiddlewareStack",
    "database_sync_to_async",
    "get_channel_layer",
    "get_user",
    "login",
    "logout",
]


@pytest.mark.parametrize("name", DJANGO_NAMES)
def test_channels_django_names_are_interlocks(name: str) -> None:
    assert getattr(compat, name) is getattr(django_support, name)


def test_origin_validators_are_the_security_modules() -> None:
    assert compat.OriginValidator is security.OriginValidator
    assert compat.AllowedHostsOriginValidator is security.AllowedHostsOriginValidator


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'WebSocketConsumer'"):
        compat.WebSocketConsumer  # noqa: B018 - the attribute access is the test


def test_compat_imports_without_django() -> None:
    code = (
        "import sys; sys.modules['django'] = None\n"  # any import of django fails
        "from interlock.actors.compat import WebsocketConsumer, OriginValidator\n"
        "try:\n    from interlock.actors.compat import AuthMiddlewareStack\n"
        "except ImportError as exc:\n    print('refused:', exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout
