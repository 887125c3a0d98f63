"""The pages: the room list and a room with its last 50 messages (logged-in users only)."""

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from rooms.models import MAX_ROOM_NAME, Message


@login_required
def index(request: HttpRequest) -> HttpResponse:
    """The rooms that have messages, busiest first."""
    rooms = Message.objects.values("room").annotate(messages=Count("id")).order_by("-messages")[:20]
    return render(request, "rooms/index.html", {"rooms": rooms})


@login_required
def room(request: HttpRequest, room_name: str) -> HttpResponse:
    """A room: its history from the database, then live messages over the WebSocket."""
    if len(room_name) > MAX_ROOM_NAME:
        msg = f"room names have at most {MAX_ROOM_NAME} characters"
        raise Http404(msg)
    history = list(Message.objects.filter(room=room_name).select_related("author").order_by("-sent_at", "-id")[:50])
    history.reverse()
    return render(request, "rooms/room.html", {"room_name": room_name, "history": history})
