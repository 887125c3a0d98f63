"""The URLconf of ``django_app``: a Django view, and two that reach the actors through the layer.

* ``GET /hello/`` - a plain sync view.
* ``POST /notify/<group>/`` - an async view: ``group_send`` the JSON body (a layer
  message such as ``{"type": "chat.message", "message": "..."}``) to the group.
* ``POST /notify-sync/<group>/`` - the same from a sync view, through asgiref's
  ``async_to_sync`` (the way Django code reaches Channels' layers).

No CSRF check: ``MIDDLEWARE`` is empty. Both answer
``{"members": <group size before sending>, "view": "async" | "sync"}``.
"""

from __future__ import annotations

import json

from asgiref.sync import async_to_sync
from django.http import HttpRequest, JsonResponse
from django.urls import path

from tests.integration import django_app


def hello(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"hello": "from django", "path": request.path, "method": request.method})


async def notify(request: HttpRequest, group: str) -> JsonResponse:
    layer = django_app.layer
    members = len(await layer.group_members(group))
    await layer.group_send(group, json.loads(request.body))
    return JsonResponse({"members": members, "view": "async"})


def notify_sync(request: HttpRequest, group: str) -> JsonResponse:
    layer = django_app.layer
    members = len(async_to_sync(layer.group_members)(group))
    async_to_sync(layer.group_send)(group, json.loads(request.body))
    return JsonResponse({"members": members, "view": "sync"})


urlpatterns = [
    path("hello/", hello),
    path("notify/<str:group>/", notify),
    path("notify-sync/<str:group>/", notify_sync),
]
