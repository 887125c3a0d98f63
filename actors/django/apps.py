"""The Django app: put ``"interlock.actors.django"`` in ``INSTALLED_APPS`` for ``manage.py runworker``."""

from __future__ import annotations

from django.apps import AppConfig

__all__ = ["InterlockConfig"]


class InterlockConfig(AppConfig):
    """interlock in a Django project: the ``runworker`` management command. No models."""

    name = "interlock.actors.django"
    label = "interlock"
    verbose_name = "interlock"
