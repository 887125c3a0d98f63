"""The rooms app."""

from django.apps import AppConfig


class RoomsConfig(AppConfig):
    """Chat rooms whose messages are kept in the database."""

    name = "rooms"
    default_auto_field = "django.db.models.BigAutoField"
