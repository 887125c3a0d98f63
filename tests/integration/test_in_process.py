"""The same host apps driven in process by ``interlock.actors.testing``: no server, both backends.

The communicators build their own scopes; these tests show the host frameworks accept
them (root_path, path_params and the layer come out as under a real server). Django is
left to ``test_django``: its ``settings.configure`` is process-wide.
"""

from __future__ import annotations

import pytest
from interlock.actors import ASGIApp
from interlock.actors.testing import HttpCommunicator, WebsocketCommunicator

from tests.integration import fastapi_app, plain_app, starlette_app

WEBSOCKETS = [
    pytest.param(starlette_app.app, "/rt/ws/echo/ada/", "/rt", {"name": "ada"}, {}, id="starlette-mount"),
    pytest.param(
        starlette_app.app, "/outer/inner/ws/echo/ada/", "/outer/inner", {"name": "ada"}, {}, id="starlette-nested"
    ),
    pytest.param(starlette_app.app, "/bare/ws/echo/ada/", "/bare", {"name": "ada"}, {}, id="starlette-bare-router"),
    pytest.param(fastapi_app.app, "/rt/ws/echo/ada/", "/rt", {"name": "ada"}, {}, id="fastapi-mount"),
    pytest.param(fastapi_app.app, "/direct/ada", "", {}, {"name": "ada"}, id="fastapi-websocket-route"),
    pytest.param(fastapi_app.app, "/routed/ada", "", {}, {"name": "ada"}, id="fastapi-routes-append"),
    pytest.param(plain_app.app, "/ws/echo/ada/", "", {"name": "ada"}, {}, id="plain-router"),
    pytest.param(plain_app.app, "/actor/ada", "", {}, {}, id="plain-actor-app"),
]


@pytest.mark.parametrize(("app", "url_path", "root_path", "kwargs", "path_params"), WEBSOCKETS)
async def test_actor_in_host_app(
    app: ASGIApp, url_path: str, root_path: str, kwargs: dict[str, str], path_params: dict[str, str]
) -> None:
    async with WebsocketCommunicator(app, url_path + "?group=together") as ws:
        assert (await ws.connect()).accepted
        greeting = await ws.receive_json_from()
        assert greeting["hello"] == "ada"
        assert greeting["root_path"] == root_path
        assert greeting["url_route"]["kwargs"] == kwargs
        assert greeting["path_params"] == path_params
        await ws.send_json_to({"say": "in process"})
        assert await ws.receive_json_from() == {"from": "ada", "said": "in process"}
        await ws.disconnect()


@pytest.mark.parametrize(
    ("app", "url_path"),
    [(starlette_app.app, "/api/status"), (fastapi_app.app, "/api/status"), (plain_app.app, "/health")],
    ids=["starlette", "fastapi", "plain"],
)
async def test_host_http_route(app: ASGIApp, url_path: str) -> None:
    async with HttpCommunicator(app, "GET", url_path) as http:
        response = await http.get_response()
    assert response.status == 200
    assert response.header("content-type") == "application/json"
