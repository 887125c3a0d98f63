"""AllowedHostsOriginValidator follows Django's ALLOWED_HOSTS rules, read lazily.

Django's settings are configured once per process (tests/integration/django_app.py
configures them for the test run), so each case runs in a fresh interpreter, with
``override_settings`` for the variants.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest

BACKENDS = pytest.mark.parametrize("backend", ["asyncio", "trio"])

PRELUDE = textwrap.dedent(
    """
    import json, sys
    import anyio
    from interlock.actors import WebsocketActor
    from interlock.actors.security import AllowedHostsOriginValidator
    from interlock.actors.testing import WebsocketCommunicator

    class Hello(WebsocketActor):
        async def connect(self):
            await self.accept()

    async def status(app, origin):
        headers = [] if origin is None else [("Origin", origin)]
        async with WebsocketCommunicator(app, "/", headers=headers) as ws:
            result = await ws.connect()
            if result.accepted:
                await ws.disconnect()
                return "accepted"
            return result.status

    # built before Django is configured, as an asgi.py does
    app = AllowedHostsOriginValidator(Hello.as_asgi())
    """
)


def run(backend: str, body: str) -> tuple[Any, str]:
    script = PRELUDE + textwrap.dedent(body) + f"\nprint(json.dumps(anyio.run(main, backend={backend!r})))\n"
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1]), done.stderr


CASES: dict[str, list[tuple[str | None, object]]] = {
    "example.com": [
        ("https://example.com", "accepted"),
        ("http://example.com:8000", "accepted"),  # Django compares hosts, not schemes or ports
        ("https://www.example.com", 403),
        ("https://example.com.evil.example", 403),
        ("http://localhost", 403),
        (None, "accepted"),
        ("null", 403),
        ("example.com", 403),
    ],
    ".example.com": [
        ("https://example.com", "accepted"),
        ("https://chat.example.com", "accepted"),
        ("https://evilexample.com", 403),
    ],
    "*": [("http://evil.example", "accepted"), ("null", "accepted"), ("nonsense", "accepted")],
    "[::1]": [("http://[::1]:8000", "accepted"), ("http://127.0.0.1:8000", 403)],
}


@BACKENDS
def test_allowed_hosts_rules(backend: str) -> None:
    results, _ = run(
        backend,
        f"""
        from django.conf import settings
        from django.test import override_settings
        settings.configure(DEBUG=False, ALLOWED_HOSTS=[])
        CASES = {CASES!r}

        async def main():
            out = {{}}
            for host, cases in CASES.items():
                with override_settings(ALLOWED_HOSTS=[host.upper()]):
                    out[host] = [[origin, await status(app, origin)] for origin, _ in cases]
            return out
        """,
    )
    assert results == {host: [list(case) for case in cases] for host, cases in CASES.items()}


@BACKENDS
def test_debug_with_empty_allowed_hosts_allows_local_names(backend: str) -> None:
    results, _ = run(
        backend,
        """
        from django.conf import settings
        from django.test import override_settings
        settings.configure(DEBUG=True, ALLOWED_HOSTS=[])
        ORIGINS = ["http://localhost:8000", "http://app.localhost", "http://127.0.0.1:8000",
                   "http://[::1]:8000", "http://evil.example"]

        async def main():
            debug = [await status(app, origin) for origin in ORIGINS]
            with override_settings(DEBUG=False):
                production = [await status(app, origin) for origin in ORIGINS]
            with override_settings(ALLOWED_HOSTS=["example.com"]):
                listed = [await status(app, origin) for origin in ORIGINS]
            return debug, production, listed
        """,
    )
    assert results == [
        ["accepted", "accepted", "accepted", "accepted", 403],
        [403, 403, 403, 403, 403],
        [403, 403, 403, 403, 403],
    ]


@BACKENDS
def test_unconfigured_settings_give_500_and_a_clear_error(backend: str) -> None:
    results, stderr = run(
        backend,
        """
        import logging
        logging.basicConfig(level=logging.INFO)

        async def main():
            return [await status(app, "http://localhost"), await status(app, None)]
        """,
    )
    assert results == [500, 500]
    assert "AllowedHostsOriginValidator cannot read settings.ALLOWED_HOSTS" in stderr
    assert "set DJANGO_SETTINGS_MODULE or call settings.configure()" in stderr
    assert "Traceback" not in stderr


def test_importable_without_django() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["django"] = None  # as if Django were not installed
        from interlock.actors.security import AllowedHostsOriginValidator, OriginValidator
        OriginValidator(lambda s, r, x: None, ["https://example.com"])
        try:
            AllowedHostsOriginValidator(lambda s, r, x: None)
        except ImportError as exc:
            print(exc)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "Django is not installed; install it, or use OriginValidator(app, [" in done.stdout
