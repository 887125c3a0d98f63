"""Settings of the chat example.

Environment (all optional): ``DJANGO_CHAT_DATA`` is the folder for ``db.sqlite3`` and the
channel layer's ``layer.sqlite3`` (default: this project's folder); ``DJANGO_CHAT_PG_SCHEMA``
switches the database to the local PostgreSQL (127.0.0.1:5432, database ``test``) in that
schema; ``DJANGO_CHAT_PG_PORT`` changes its port (the tests point it at a closed one).
"""

import os
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("DJANGO_CHAT_DATA", BASE_DIR))

SECRET_KEY = os.environ.get("DJANGO_CHAT_SECRET_KEY", "django-chat-example-only-never-in-production")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "interlock.actors.django",  # manage.py runworker
    "rooms",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "django_chat.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

ASGI_APPLICATION = "django_chat.asgi.application"  # what manage.py runworker serves

DATABASES: dict[str, dict[str, Any]] = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DATA_DIR / "db.sqlite3"},
}
if os.environ.get("DJANGO_CHAT_PG_SCHEMA"):
    DATABASES["default"] = {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": "127.0.0.1",
        "PORT": os.environ.get("DJANGO_CHAT_PG_PORT", "5432"),
        "NAME": "test",
        "USER": "postgres",
        "OPTIONS": {"options": f"-c search_path={os.environ['DJANGO_CHAT_PG_SCHEMA']}", "connect_timeout": 3},
    }

# One setting for the channel layer, in Channels' shape: the SQLite layer needs no server,
# and the web server and the worker share it through the file.
INTERLOCK_CHANNEL_LAYERS = {
    "default": {"BACKEND": "interlock.layers.SQLiteChannelLayer", "CONFIG": {"path": DATA_DIR / "layer.sqlite3"}},
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "index"
LOGOUT_REDIRECT_URL = "login"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {"interlock": {"handlers": ["console"], "level": "INFO"}},
}
