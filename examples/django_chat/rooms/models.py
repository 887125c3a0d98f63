"""What the archive worker saves: every message said in a room."""

from django.conf import settings
from django.db import models

MAX_ROOM_NAME = 50  # characters, here and in the pages and the socket's route


class Message(models.Model):
    """One chat message, with its room, author and time."""

    room = models.SlugField(max_length=MAX_ROOM_NAME, db_index=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_messages")
    text = models.TextField(max_length=1000)
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("sent_at", "id")

    def __str__(self) -> str:
        return f"{self.room}: {self.text[:40]}"
