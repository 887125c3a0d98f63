"""Settings of a bare project for ``manage.py runworker``'s error cases (``--settings tests.django.worker_settings``).

No database; the in-memory layer; ``ASGI_APPLICATION`` only if ``WORKER_TEST_APP`` is set.
"""

import os

SECRET_KEY = "interlock-runworker-tests-only"
INSTALLED_APPS = ["interlock.actors.django"]
USE_TZ = True
INTERLOCK_CHANNEL_LAYERS = {"default": {"BACKEND": "interlock.layers.InMemoryChannelLayer"}}
if os.environ.get("WORKER_TEST_APP"):
    ASGI_APPLICATION = os.environ["WORKER_TEST_APP"]
