"""The chat rooms: pages, the WebSocket actor, the archive worker and the message model."""
