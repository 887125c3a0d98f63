"""Client-side checks shared by the integration tests: greet, echo, exchange through the layer."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.support.servers import RunningServer
from tests.support.wsclient import WSClient


def unique(prefix: str) -> str:
    """A group or name no other test uses (the servers are shared by a module's tests)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def join(server: RunningServer, path: str) -> tuple[WSClient, dict[str, Any]]:
    """Connect to *path* and return the client with the actor's greeting."""
    client = await WSClient.connect(server.host, server.port, path)
    try:
        greeting = await client.receive_json()
    except BaseException:
        await client.close()
        raise
    assert isinstance(greeting, dict), greeting
    return client, greeting


async def echo_round_trip(client: WSClient, name: str) -> None:
    """The actor echoes a JSON message with its name."""
    await client.send_json({"n": 1, "text": "héllo"})
    assert await client.receive_json() == {"echo": {"n": 1, "text": "héllo"}, "name": name}


async def exchange_through_layer(first: WSClient, second: WSClient, first_name: str, second_name: str) -> None:
    """Both clients are in one group: each one's ``say`` reaches both, in order."""
    await first.send_json({"say": "hi from the first"})
    expected_first = {"from": first_name, "said": "hi from the first"}
    assert await second.receive_json() == expected_first
    assert await first.receive_json() == expected_first
    await second.send_json({"say": "hi back"})
    expected_second = {"from": second_name, "said": "hi back"}
    assert await first.receive_json() == expected_second
    assert await second.receive_json() == expected_second
    await first.receive_nothing(0.1)
    await second.receive_nothing(0.1)


async def notify_over_http(server: RunningServer, url_path: str, clients: list[WSClient], text: str) -> Any:
    """POST *text* to the host's notify route; every client gets ``{"notified": text}``."""
    async with httpx.AsyncClient() as http:
        response = await http.post(server.http_url(url_path), content=text.encode())
    assert response.status_code == 200, response.text
    for client in clients:
        assert await client.receive_json() == {"notified": text}
    return response.json()


def assert_clean_log(server: RunningServer) -> None:
    """The server logged no traceback (and no error from interlock)."""
    logs = server.logs()
    assert "Traceback" not in logs, logs
    assert "ERROR" not in logs, logs
