"""Test-support helpers: a backend-neutral WebSocket client and real-server runners."""
