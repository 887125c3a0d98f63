"""``examples/django_chat`` in headless Chromium (Debian's, through Playwright), and on PostgreSQL.

The browser logs in through the login form, opens a room and chats: the page's own
WebSocket carries the session cookie. The PostgreSQL run migrates into a schema of its
own (dropped afterwards) on the local server, and a chat message reaches the database
through the archive worker.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.django.example_project import APP, PASSWORD, PROJECT, manage, prepare, project_env
from tests.integration.checks import assert_clean_log
from tests.support.servers import serve

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"
DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres"


def test_a_browser_logs_in_and_chats(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    env = project_env(tmp_path)
    prepare(env, "carol")
    room = f"room-{uuid.uuid4().hex[:8]}"
    with serve(APP, backend="asyncio", app_dir=str(PROJECT), env=env) as server, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page()
            page.goto(server.http_url(f"/accounts/login/?next=/chat/{room}/"))
            page.fill("#id_username", "carol")
            page.fill("#id_password", PASSWORD)
            page.click("#login")
            page.wait_for_url(server.http_url(f"/chat/{room}/"))
            page.wait_for_selector("#status:has-text('connected')", timeout=10_000)
            page.fill("#chat-message-input", "hello from chromium")
            page.click("#chat-message-submit")
            page.wait_for_function(
                "document.querySelector('#chat-log').value.includes('carol: hello from chromium')", timeout=10_000
            )
        finally:
            browser.close()
    assert_clean_log(server)


@pytest.fixture
def pg_schema() -> Iterator[str]:
    schema = f"interlock_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_migrations_and_the_archive_on_postgresql(tmp_path: Path, pg_schema: str) -> None:
    env = project_env(tmp_path, DJANGO_CHAT_PG_SCHEMA=pg_schema)
    prepare(env, "dave")
    with psycopg.connect(DSN) as conn:
        tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", [pg_schema])}
    assert {"django_session", "auth_user", "rooms_message"} <= tables, tables
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "runworker", "chat-archive"], cwd=PROJECT, env=env, stderr=subprocess.PIPE
    )
    try:
        code = (
            "import anyio\n"
            "from interlock.actors.django import get_channel_layer\n"
            "anyio.run(get_channel_layer().send, 'chat-archive', {'type': 'archive.message', 'room': 'pg',"
            " 'user_id': __import__('django.contrib.auth.models').contrib.auth.models.User.objects.get().pk,"
            " 'text': 'kept in postgres'})\n"
        )
        manage(env, "shell", "-c", code)
        deadline = time.monotonic() + 15
        saved: list[str] = []
        while not saved and time.monotonic() < deadline:
            with psycopg.connect(DSN) as conn:
                saved = [row[0] for row in conn.execute(f"SELECT text FROM {pg_schema}.rooms_message")]
            time.sleep(0.1)
        assert saved == ["kept in postgres"]
    finally:
        worker.terminate()
        _, stderr = worker.communicate(timeout=10)
    assert worker.returncode == 0, stderr
    assert b"Traceback" not in stderr, stderr
