"""The Django project these tests run in: ``settings.configure`` once per process, SQLite on disk.

Auth, sessions (the ``db`` engine) and contenttypes, migrated into a temporary file, so
sessions and users go through real queries in real threads (an in-memory SQLite database
is per connection, hence per thread: it would hide what these tests look at).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from django.conf import settings

_ready = False


def configure() -> None:
    """Configure and set up Django for this process, once; migrate its database."""
    global _ready  # noqa: PLW0603
    if _ready:
        return
    if settings.configured:
        msg = "tests.django needs its own settings, but Django was configured by something else in this process"
        raise RuntimeError(msg)
    folder = Path(tempfile.mkdtemp(prefix="interlock-django-tests-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    settings.configure(
        DEBUG=False,
        SECRET_KEY="interlock-django-tests-only",
        ALLOWED_HOSTS=["testserver", "127.0.0.1"],
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "interlock.actors.django",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(folder / "db.sqlite3")}},
        SESSION_ENGINE="django.contrib.sessions.backends.db",
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],  # fast, for tests only
        USE_TZ=True,
        INTERLOCK_CHANNEL_LAYERS={"default": {"BACKEND": "interlock.layers.InMemoryChannelLayer"}},
    )
    import django  # noqa: PLC0415
    from django.core.management import call_command  # noqa: PLC0415

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    _ready = True
