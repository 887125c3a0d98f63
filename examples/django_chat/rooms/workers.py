"""The archive worker: serves the named channel ``chat-archive`` and saves each message through the ORM.

Run it with ``python manage.py runworker chat-archive``. Its handler is a plain ``def``:
it runs in a worker thread, where the ORM is at home, and interlock closes the thread's
stale database connections around each call, as Django does around a request.
"""

from typing import Any

from interlock.actors import Actor, handler

from rooms.models import Message

ARCHIVE_CHANNEL = "chat-archive"


class Archiver(Actor):
    """Saves every chat message it is sent."""

    @handler
    def archive_message(self, event: dict[str, Any]) -> None:
        """``{"type": "archive.message", "room", "user_id", "text"}``: one row."""
        Message.objects.create(room=event["room"], author_id=event["user_id"], text=event["text"])
