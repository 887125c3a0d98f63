"""Django is set up (once per process) when this folder is collected, so test modules import models freely."""

from __future__ import annotations

from tests.django.project import configure

configure()
